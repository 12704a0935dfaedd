"""Phase 06: which ``GPTModel`` config a weights file needs, and which layout its names are in.

A file's config comes from, in order: the ``config`` a caller passes, the ``config.json`` beside
it (ours, with ``GPT_CONFIG_124M``'s keys, or Hugging Face's GPT-2 one: ``n_embd``, ``n_layer``,
...), or its tensors' shapes (all but the number of heads, which the four GPT-2 sizes fix).
The names are in one of two layouts: ``"hf"`` (GPT-2's ``wte``, ``h.N.``) or ``"ours"``
(``tok_emb``, ``trf_blocks.N.``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .model import CONFIG_FIELDS, GPT2_SIZES, GPT_CONFIG_124M

# emb_dim -> n_heads of OpenAI's four sizes: the one number a file's shapes cannot tell.
GPT2_HEADS = {dims["emb_dim"]: dims["n_heads"] for dims in GPT2_SIZES.values()}

# Per layout: token embedding, position embedding, block-name pattern, a query bias.
_LAYOUTS = {
    "hf": ("wte.weight", "wpe.weight", r"h\.(\d+)\.", "h.0.attn.c_attn.bias"),
    "ours": (
        "tok_emb.weight", "pos_emb.weight", r"trf_blocks\.(\d+)\.", "trf_blocks.0.att.W_query.bias"
    ),
}


class WeightsMismatch(ValueError):
    """The tensors in a file do not fit the model's config (shapes differ, missing, unexpected)."""


def layout_of(names, path: Path) -> str:
    """``"hf"`` or ``"ours"``: whose names the tensors ``names`` of the file ``path`` have."""
    if "wte.weight" in names or "transformer.wte.weight" in names:
        return "hf"
    if "tok_emb.weight" in names or "out_head.weight" in names:
        return "ours"
    raise WeightsMismatch(
        f"{path} holds neither GPT-2 (Hugging Face) nor GPTModel tensors; its first "
        f"names are {', '.join(list(names)[:5]) or '(none)'}."
    )


def implied_config(shapes: dict[str, tuple[int, ...]], layout: str) -> dict:
    """What the tensors' shapes say about the config (all but n_heads and drop_rate)."""
    tok, pos, block, query_bias = _LAYOUTS[layout]
    implied = {}
    if layout == "ours" and tok not in shapes:  # a tied model saved under out_head's name only
        tok = "out_head.weight"
    if tok in shapes:
        implied["vocab_size"], implied["emb_dim"] = shapes[tok]
    if pos in shapes:
        implied["context_length"] = shapes[pos][0]
    blocks = {int(m.group(1)) for name in shapes if (m := re.match(block, name))}
    implied["n_layers"] = max(blocks) + 1 if blocks else 0
    implied["qkv_bias"] = query_bias in shapes
    return implied


def describe_config(cfg: dict) -> str:
    """``emb_dim=768, n_layers=12, ...``, plus the GPT-2 size it matches, if one does."""
    keys = ("vocab_size", "context_length", "emb_dim", "n_layers", "n_heads", "qkv_bias")
    text = ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg)
    for size, dims in GPT2_SIZES.items():
        if all(cfg.get(k) == v for k, v in dims.items() if k != "n_heads"):
            return f"{text} (like {size})"
    return text


def read_config_json(path: Path) -> dict | None:
    """Our config from a ``config.json`` in either our format or Hugging Face's GPT-2 format
    (plus ``tie_word_embeddings`` from the latter); None if there is no such file."""
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError(
            f"{path} is not valid JSON; fix it, or delete it and download or copy the model "
            "folder again."
        ) from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} holds a JSON {type(raw).__name__}, not a model config object.")
    if all(key in raw for key in CONFIG_FIELDS):
        return {key: raw[key] for key in CONFIG_FIELDS}
    if "n_embd" not in raw:
        raise ValueError(
            f"{path} is neither a Hugging Face GPT-2 config (n_embd, n_layer, n_head, ...) nor "
            f"ours (keys {', '.join(CONFIG_FIELDS)})."
        )
    activation = raw.get("activation_function", "gelu_new")
    eps = raw.get("layer_norm_epsilon", 1e-5)
    if activation not in ("gelu_new", "gelu_pytorch_tanh") or eps != 1e-5:
        raise ValueError(
            f"{path} describes a GPT-2 variant (activation {activation!r}, layer norm eps {eps}) "
            "that GPTModel does not implement: it has OpenAI GPT-2's tanh GELU and eps=1e-5."
        )
    missing = [key for key in ("vocab_size", "n_head", "n_layer") if key not in raw]
    if missing:
        raise ValueError(f"{path} is a Hugging Face GPT-2 config without {', '.join(missing)}.")
    tied = raw.get("tie_word_embeddings", True)
    if not isinstance(tied, bool):  # "false" as a string would silently tie the head
        raise ValueError(f"{path}: tie_word_embeddings must be true or false, got {tied!r}.")
    return {
        "vocab_size": raw["vocab_size"],
        "context_length": raw.get("n_positions", raw.get("n_ctx")),
        "emb_dim": raw["n_embd"],
        "n_heads": raw["n_head"],
        "n_layers": raw["n_layer"],
        "drop_rate": raw.get("resid_pdrop", GPT_CONFIG_124M["drop_rate"]),
        "qkv_bias": True,  # GPT-2's c_attn always has a bias
        "tie_word_embeddings": tied,
    }


def build_config(
    shapes: dict[str, tuple[int, ...]],
    path: Path,
    layout: str,
    config_json: dict | None,
    config: dict | None,
    n_heads: int | None,
    drop_rate: float | None,
) -> dict:
    """The config to build: given > config.json > inferred from shapes (n_heads: argument or
    the standard GPT-2 sizes); ``drop_rate`` overrides, default 0.1 as in the book's 5.5."""
    if config is not None:
        cfg = dict(config)
    elif config_json is not None:
        cfg = {k: v for k, v in config_json.items() if k in CONFIG_FIELDS}
    else:
        cfg = implied_config(shapes, layout)
        if "emb_dim" not in cfg:
            raise WeightsMismatch(f"{path} has no token embedding to infer a config from.")
        cfg["n_heads"] = n_heads or GPT2_HEADS.get(cfg["emb_dim"])
        if cfg["n_heads"] is None:
            raise ValueError(
                f"The shapes in {path} give emb_dim={cfg['emb_dim']}, which is not a "
                "GPT-2 size, and shapes cannot tell the number of attention heads: pass it, "
                "e.g. load_model(path, n_heads=4)."
            )
    if n_heads is not None and cfg.get("n_heads") != n_heads:
        raise ValueError(f"n_heads={n_heads} contradicts the config's {cfg.get('n_heads')}.")
    cfg["drop_rate"] = drop_rate if drop_rate is not None else cfg.get("drop_rate", 0.1)
    return cfg
