"""Phase 06 (book 5.5): OpenAI's pretrained GPT-2 weights in our ``GPTModel``.

``load_gpt2(source)`` takes a GPT-2 size ("gpt2-small (124M)", or short: "small", "124M",
"gpt2", "medium", "355M", ...) or a path, and returns a ``GPTModel`` in eval mode:

    size name   ``$LLM_DATA_MIRROR/<repo name>/`` (e.g. ``.../gpt2/model.safetensors``) if there,
                else Hugging Face's cache, else a download of ``openai-community/gpt2*``
    folder      Hugging Face's layout (``config.json`` + ``model.safetensors``), or ours
                (``config.json`` with ``GPT_CONFIG_124M``'s keys + ``model.safetensors``)
    file        ``.safetensors``, or a ``.pth`` state dict saved by the book's code

Hugging Face's GPT-2 -> our names (``h.N.`` -> ``trf_blocks.N.``)::

    wte, wpe               -> tok_emb, pos_emb          out_head is tied to wte (one matrix)
    ln_1, ln_2, ln_f       -> norm1, norm2, final_norm  (weight -> scale, bias -> shift)
    attn.c_attn            -> att.W_query | W_key | W_value   (split in three, transposed)
    attn.c_proj            -> att.out_proj                    (transposed)
    mlp.c_fc, mlp.c_proj   -> ff.layers.0, ff.layers.2        (transposed)

"Transposed" because GPT-2's ``Conv1D`` stores its matrix as (in, out), ``nn.Linear`` as
(out, in). The model is built without memory (on PyTorch's ``meta`` device), then allocated
once and filled one tensor at a time from the lazily read file: peak memory is about one model.

Usage::

    model = load_gpt2("gpt2-small (124M)")    # downloads ~500 MB once, then loads from the cache
    model = load_gpt2("medium", device="cuda", dtype=torch.bfloat16)
    model = load_model("gpt2-small.pth")       # torch.save(model.state_dict(), ...) from the book
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import struct
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from .attention import causal_mask
from .data import MIRROR_ENV, OFFLINE_ENV, DataError, cache_dir, mirror_dir
from .model import CONFIG_FIELDS, GPT2_SIZES, GPT_CONFIG_124M, GPTModel, gpt2_config

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"

# Where each size lives on the Hugging Face hub (and, by its last part, in the mirror).
GPT2_REPOS = {
    "gpt2-small (124M)": "openai-community/gpt2",
    "gpt2-medium (355M)": "openai-community/gpt2-medium",
    "gpt2-large (774M)": "openai-community/gpt2-large",
    "gpt2-xl (1558M)": "openai-community/gpt2-xl",
}

# emb_dim -> n_heads of OpenAI's four sizes: the one number a file's shapes cannot tell.
GPT2_HEADS = {dims["emb_dim"]: dims["n_heads"] for dims in GPT2_SIZES.values()}

CONNECT_TIMEOUT_S = 3.0  # an offline notebook should say so within seconds, not hang


class WeightsUnavailable(DataError):
    """Pretrained weights could not be found locally nor downloaded; the message says what to do."""


class WeightsMismatch(ValueError):
    """The tensors in a file do not fit the model's config (shapes differ, missing, unexpected)."""


# ---------------------------------------------------------------------------------------------
# Names: sizes and their aliases
# ---------------------------------------------------------------------------------------------


def _size_aliases() -> dict[str, str]:
    """Every accepted spelling (lower case) -> the canonical size name."""
    aliases = {}
    for size, repo in GPT2_REPOS.items():
        short, params = re.fullmatch(r"(gpt2-\w+) \((\w+)\)", size).groups()
        for alias in (size, short, short.removeprefix("gpt2-"), params, repo, repo.split("/")[1]):
            aliases[alias.lower()] = size
    return aliases


_SIZE_ALIASES = _size_aliases()


def resolve_gpt2_size(name: str) -> str:
    """A GPT-2 size in any accepted spelling ("small", "124M", "gpt2", ...) -> its full name."""
    size = _SIZE_ALIASES.get(str(name).strip().lower())
    if size is None:
        raise ValueError(
            f"Unknown GPT-2 size {name!r}; choose one of {', '.join(GPT2_SIZES)} "
            "(short names work too: small, 124M, gpt2, medium, 355M, gpt2-large, xl, ...)."
        )
    return size


# ---------------------------------------------------------------------------------------------
# Finding the files: mirror, Hugging Face cache, download
# ---------------------------------------------------------------------------------------------


def gpt2_folder_name(size: str) -> str:
    """The folder a GPT-2 size has in a mirror or the data folder: the hub repo's last part."""
    return GPT2_REPOS[resolve_gpt2_size(size)].split("/")[1]


def download_gpt2(size: str = "gpt2-small (124M)", into: Path | None = None) -> Path:
    """The local folder holding ``model.safetensors`` (and ``config.json``) of a GPT-2 size.

    Looks in ``$LLM_DATA_MIRROR/<repo name>/`` first (a classroom's USB stick), then in the
    data folder (``python -m helpers.prefetch`` puts them there), then in Hugging Face's cache
    (no network), and only then downloads with ``huggingface_hub``, which shows a progress bar,
    caches, and checks the download against the hub's hashes. ``into`` downloads into that
    folder instead of the hub's cache (how ``python -m helpers.prefetch`` fills the data folder).
    Raises ``WeightsUnavailable`` (one sentence, within seconds) when none of that works.
    """
    size = resolve_gpt2_size(size)
    repo_id = GPT2_REPOS[size]
    for folder in (mirror_dir(), cache_dir()):
        if folder is not None and (folder / gpt2_folder_name(size) / WEIGHTS_FILE).is_file():
            return folder / gpt2_folder_name(size)
    with contextlib.suppress(*_hub_errors()):
        return _hub_folder(repo_id, local_files_only=True)

    reason = _offline_reason() or _unreachable_reason()
    if reason is None:
        try:
            return _hub_folder(repo_id, local_files_only=False, local_dir=into)
        except _hub_errors() as err:
            reason = _describe_failure(err)
    raise WeightsUnavailable(_unavailable_message(size, reason))


def _hub_folder(repo_id: str, local_files_only: bool, local_dir: Path | None = None) -> Path:
    """Both files into (or from) the hub's cache, or into ``local_dir``: one folder either way."""
    from huggingface_hub import hf_hub_download  # imported late: only this path needs it

    where = {} if local_dir is None else {"local_dir": str(local_dir)}
    for filename in (CONFIG_FILE, WEIGHTS_FILE):  # the small file first: fails fast
        path = hf_hub_download(
            repo_id, filename, local_files_only=local_files_only,
            etag_timeout=CONNECT_TIMEOUT_S, **where,
        )
    return Path(path).parent


def _hub_errors() -> tuple[type[BaseException], ...]:
    """What a failed hub lookup can raise: its own errors and socket errors are ``OSError``s;
    the HTTP client's transport errors (timeouts, dropped connections) may not be."""
    errors: list[type[BaseException]] = [OSError]  # requests' errors are OSErrors too
    for client in ("httpx", "httpx2"):  # the clients of newer huggingface_hub versions
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(__import__(client).HTTPError)
    return tuple(errors)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _offline_reason() -> str | None:
    for name in (OFFLINE_ENV, "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if _flag(name):
            return f"{name} is set"
    return None


def _unreachable_reason(timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why the hub cannot be reached, from one quick TCP connection, or None if it answers.

    huggingface_hub retries a dead network for about 20 s before giving up; this check says
    "offline" within ``timeout``. Behind a proxy only the proxy knows, so the hub decides.
    """
    if urllib.request.getproxies().get("https"):
        return None
    from huggingface_hub import constants

    url = urllib.parse.urlsplit(constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    try:
        socket.create_connection((host, url.port or 443), timeout=timeout).close()
    except socket.gaierror:
        return f"{host} cannot be resolved, no internet"
    except TimeoutError:  # socket.timeout is an alias of it since Python 3.10
        return f"{host} did not answer within {timeout:g} s"
    except OSError as err:
        return f"{host} is unreachable: {err.strerror or err}"
    return None


def _describe_failure(err: BaseException) -> str:
    """A hub error in a few words, for the one-sentence message."""
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status is not None:
        return f"the hub answered HTTP {status}"
    if isinstance(err, TimeoutError) or "timeout" in type(err).__name__.lower():
        return "the connection timed out"
    if type(err).__name__ in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
        return "no connection to the hub"
    # the message must stay one sentence: keep the first line, up to its first full stop
    return re.split(r"\.\s|\n", f"{type(err).__name__}: {err}")[0][:120].rstrip(".")


def _unavailable_message(size: str, reason: str) -> str:
    folder = gpt2_folder_name(size)
    # named through the variable, not expanded: the sentence ends up in saved notebook outputs
    where = f"${MIRROR_ENV}/{folder}" + ("" if mirror_dir() else f" with {MIRROR_ENV} set")
    return (
        f"The {size} weights ({GPT2_REPOS[size]}) could not be downloaded ({reason}), so pass "
        f"load_gpt2 a local folder in Hugging Face layout ({CONFIG_FILE} + {WEIGHTS_FILE}) "
        f"or put that folder at {where}."
    )


# ---------------------------------------------------------------------------------------------
# Reading tensors lazily
# ---------------------------------------------------------------------------------------------


@dataclass
class _Tensors:
    """The names and shapes of a file's tensors, and ``get(name)`` to read one when needed."""

    path: Path
    shapes: dict[str, tuple[int, ...]]
    get: Callable[[str], torch.Tensor]
    tied_head: bool = False  # a .pth whose out_head.weight is the same tensor as tok_emb.weight
    # safetensors only: read a tensor's bytes straight into a parameter, and the file's dtypes
    read_into: Callable[[str, torch.Tensor], None] | None = None
    dtypes: dict[str, torch.dtype | None] | None = None


# safetensors' dtype names -> torch's (the ones a model checkpoint can hold)
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


class _SafetensorsReader:
    """A safetensors file read with plain file reads, one tensor at a time.

    The format is an 8-byte little-endian header length, a JSON header (each tensor's dtype,
    shape and byte range), then the bytes. Why not ``safetensors.safe_open``: it memory-maps
    the file, and the pages it reads stay resident while the model fills, so the process
    briefly holds the file *and* the model: twice the memory. Plain reads hold the model plus
    at most one tensor, or nothing extra where a tensor goes unchanged into its parameter.
    """

    def __init__(self, path: Path):
        self.path = path
        self.file = open(path, "rb")
        try:
            size = path.stat().st_size
            (header_len,) = struct.unpack("<Q", self.file.read(8))
            if header_len > size:
                raise ValueError(f"its header claims {header_len:,} bytes of {size:,}")
            header = json.loads(self.file.read(header_len))
            header.pop("__metadata__", None)
            self.data_start = 8 + header_len
            end = self.data_start + max((t["data_offsets"][1] for t in header.values()), default=0)
            if end != size:
                raise ValueError(f"{size:,} bytes where its header says {end:,}")
        except (struct.error, ValueError, KeyError, TypeError) as err:
            self.file.close()
            raise ValueError(
                f"{path} is not a readable safetensors file ({err}); it may be cut short: "
                "delete it and download or copy it again."
            ) from err
        self.entries = header
        self.shapes = {name: tuple(t["shape"]) for name, t in header.items()}
        self.dtypes = {name: _SAFETENSORS_DTYPES.get(t["dtype"]) for name, t in header.items()}

    def read_into(self, name: str, out: torch.Tensor) -> None:
        """Read tensor ``name`` straight into ``out`` (CPU, contiguous, same dtype and size)."""
        begin, end = self.entries[name]["data_offsets"]
        buffer = out.detach().view(-1).view(torch.uint8).numpy()  # out's own bytes, writable
        self.file.seek(self.data_start + begin)
        if self.file.readinto(buffer) != end - begin:
            raise ValueError(f"{self.path} ended inside tensor {name}: it is cut short.")

    def get(self, name: str) -> torch.Tensor:
        if self.dtypes[name] is None:
            raise ValueError(
                f"{self.path}: tensor {name} is of dtype {self.entries[name]['dtype']}, "
                "which a GPTModel cannot hold."
            )
        out = torch.empty(self.shapes[name], dtype=self.dtypes[name])
        self.read_into(name, out)
        return out

    def close(self) -> None:
        self.file.close()


def check_safetensors(path: Path) -> None:
    """Raise a ``ValueError`` saying what is wrong unless ``path`` is a complete safetensors
    file (reads only its header; a file cut short ends before its last tensor does)."""
    _SafetensorsReader(Path(path)).close()


@contextlib.contextmanager
def _open_tensors(path: Path) -> Iterator[_Tensors]:
    if path.suffix == ".safetensors":
        reader = _SafetensorsReader(path)
        try:
            yield _Tensors(path, reader.shapes, reader.get, read_into=reader.read_into, dtypes=reader.dtypes)
        finally:
            reader.close()
    else:
        state = _load_state_dict(path)
        head, emb = state.get("out_head.weight"), state.get("tok_emb.weight")
        tied = head is not None and emb is not None and head.data_ptr() == emb.data_ptr()
        yield _Tensors(path, {k: tuple(v.shape) for k, v in state.items()}, state.__getitem__, tied)


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A ``.pth``/``.pt`` state dict, safely (``weights_only``: no code runs) and memory-mapped
    where the file format allows it, so its tensors are read from disk only when copied."""
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # the legacy (pre-1.6) format cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, or whatever torch raises for a foreign file
        raise ValueError(
            f"{path} could not be read as a state dict of tensors ({type(err).__name__}); "
            "this project loads only weights (never pickled objects): save them with "
            "torch.save(model.state_dict(), path)."
        ) from err
    if isinstance(state, dict):  # a training checkpoint: {"model_state_dict": ..., ...}
        for key in ("model_state_dict", "state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict.")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _as_hf_names(tensors: _Tensors) -> _Tensors:
    """Drop the ``transformer.`` prefix that ``save_pretrained`` writes and the hub's files lack."""
    prefix = "transformer."
    original = {name.removeprefix(prefix): name for name in tensors.shapes}
    shapes = {short: tensors.shapes[name] for short, name in original.items()}
    read_into, dtypes = tensors.read_into, tensors.dtypes
    return _Tensors(
        tensors.path, shapes, lambda short: tensors.get(original[short]),
        read_into=read_into and (lambda short, out: read_into(original[short], out)),
        dtypes=dtypes and {short: dtypes[name] for short, name in original.items()},
    )


# ---------------------------------------------------------------------------------------------
# Configs: from config.json, or inferred from the shapes
# ---------------------------------------------------------------------------------------------

# Per layout: token embedding, position embedding, block-name pattern, a query bias.
_LAYOUTS = {
    "hf": ("wte.weight", "wpe.weight", r"h\.(\d+)\.", "h.0.attn.c_attn.bias"),
    "ours": (
        "tok_emb.weight", "pos_emb.weight", r"trf_blocks\.(\d+)\.", "trf_blocks.0.att.W_query.bias"
    ),
}


def _layout_of(tensors: _Tensors) -> str:
    names = tensors.shapes
    if "wte.weight" in names or "transformer.wte.weight" in names:
        return "hf"
    if "tok_emb.weight" in names or "out_head.weight" in names:
        return "ours"
    raise WeightsMismatch(
        f"{tensors.path} holds neither GPT-2 (Hugging Face) nor GPTModel tensors; its first "
        f"names are {', '.join(list(names)[:5]) or '(none)'}."
    )


def _implied_config(shapes: dict[str, tuple[int, ...]], layout: str) -> dict:
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


def _describe(cfg: dict) -> str:
    """``emb_dim=768, n_layers=12, ...``, plus the GPT-2 size it matches, if one does."""
    keys = ("vocab_size", "context_length", "emb_dim", "n_layers", "n_heads", "qkv_bias")
    text = ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg)
    for size, dims in GPT2_SIZES.items():
        if all(cfg.get(k) == v for k, v in dims.items() if k != "n_heads"):
            return f"{text} (like {size})"
    return text


def _read_config_json(path: Path) -> dict | None:
    """Our config from a ``config.json`` in either our format or Hugging Face's GPT-2 format."""
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
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
    return {
        "vocab_size": raw["vocab_size"],
        "context_length": raw.get("n_positions", raw.get("n_ctx")),
        "emb_dim": raw["n_embd"],
        "n_heads": raw["n_head"],
        "n_layers": raw["n_layer"],
        "drop_rate": raw.get("resid_pdrop", GPT_CONFIG_124M["drop_rate"]),
        "qkv_bias": True,  # GPT-2's c_attn always has a bias
        "tie_word_embeddings": raw.get("tie_word_embeddings", True),
    }


def _build_config(tensors, layout, config_json, config, n_heads, drop_rate) -> dict:
    """The config to build: given > config.json > inferred from shapes (n_heads: argument or
    the standard GPT-2 sizes); ``drop_rate`` overrides, default 0.1 as in the book's 5.5."""
    if config is not None:
        cfg = dict(config)
    elif config_json is not None:
        cfg = {k: v for k, v in config_json.items() if k in CONFIG_FIELDS}
    else:
        cfg = _implied_config(tensors.shapes, layout)
        if "emb_dim" not in cfg:
            raise WeightsMismatch(f"{tensors.path} has no token embedding to infer a config from.")
        cfg["n_heads"] = n_heads or GPT2_HEADS.get(cfg["emb_dim"])
        if cfg["n_heads"] is None:
            raise ValueError(
                f"The shapes in {tensors.path} give emb_dim={cfg['emb_dim']}, which is not a "
                "GPT-2 size, and shapes cannot tell the number of attention heads: pass it, "
                "e.g. load_model(path, n_heads=4)."
            )
    if n_heads is not None and cfg.get("n_heads") != n_heads:
        raise ValueError(f"n_heads={n_heads} contradicts the config's {cfg.get('n_heads')}.")
    cfg["drop_rate"] = drop_rate if drop_rate is not None else cfg.get("drop_rate", 0.1)
    return cfg


# ---------------------------------------------------------------------------------------------
# The mapping: which tensor of the file goes where
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Copy:
    """Copy (a part of) a file tensor into our parameter ``target``."""

    target: str
    transpose: bool = False  # Conv1D (in, out) -> nn.Linear (out, in)
    part: int | None = None  # c_attn's output holds [query | key | value]: take this third

    def apply(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.part is not None:
            tensor = tensor.chunk(3, dim=-1)[self.part]
        return tensor.t() if self.transpose else tensor  # .t() leaves a 1-D bias as it is


# file tensor name -> (the shape the model expects, where it goes)
_Plan = dict[str, tuple[tuple[int, ...], list[_Copy]]]


def _as_is(target: str) -> list[_Copy]:
    return [_Copy(target)]


def _transposed(target: str) -> list[_Copy]:
    return [_Copy(target, transpose=True)]


def _split_qkv(block: str, kind: str) -> list[_Copy]:
    """c_attn's weight or bias -> W_query, W_key, W_value (the weight also transposed)."""
    names = ("W_query", "W_key", "W_value")
    return [_Copy(f"{block}att.{w}.{kind}", kind == "weight", k) for k, w in enumerate(names)]


def _hf_plan(cfg: dict) -> _Plan:
    """Hugging Face GPT-2's names and shapes for ``cfg`` (Conv1D: (in, out)), mapped onto ours."""
    d = cfg["emb_dim"]
    plan: _Plan = {
        "wte.weight": ((cfg["vocab_size"], d), _as_is("tok_emb.weight")),
        "wpe.weight": ((cfg["context_length"], d), _as_is("pos_emb.weight")),
    }
    for i in range(cfg["n_layers"]):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        plan |= {
            h + "ln_1.weight": ((d,), _as_is(b + "norm1.scale")),
            h + "ln_1.bias": ((d,), _as_is(b + "norm1.shift")),
            h + "attn.c_attn.weight": ((d, 3 * d), _split_qkv(b, "weight")),
            h + "attn.c_attn.bias": ((3 * d,), _split_qkv(b, "bias")),
            h + "attn.c_proj.weight": ((d, d), _transposed(b + "att.out_proj.weight")),
            h + "attn.c_proj.bias": ((d,), _as_is(b + "att.out_proj.bias")),
            h + "ln_2.weight": ((d,), _as_is(b + "norm2.scale")),
            h + "ln_2.bias": ((d,), _as_is(b + "norm2.shift")),
            h + "mlp.c_fc.weight": ((d, 4 * d), _transposed(b + "ff.layers.0.weight")),
            h + "mlp.c_fc.bias": ((4 * d,), _as_is(b + "ff.layers.0.bias")),
            h + "mlp.c_proj.weight": ((4 * d, d), _transposed(b + "ff.layers.2.weight")),
            h + "mlp.c_proj.bias": ((d,), _as_is(b + "ff.layers.2.bias")),
        }
    plan["ln_f.weight"] = ((d,), _as_is("final_norm.scale"))
    plan["ln_f.bias"] = ((d,), _as_is("final_norm.shift"))
    return plan


def _own_plan(model: GPTModel) -> _Plan:
    """Our own names: each tensor to the parameter of the same name (masks are rebuilt)."""
    return {
        name: (tuple(p.shape), _as_is(name))
        for name, p in model.state_dict(keep_vars=True).items()
        if not name.endswith(".mask")
    }


def _ignored(name: str) -> bool:
    """Tensors in a file that are not weights: the causal masks GPT-2 and the book store."""
    return bool(re.fullmatch(r"h\.\d+\.attn\.(masked_)?bias|trf_blocks\.\d+\.att\.mask", name))


def _tie_head(plan: _Plan, tensors: _Tensors, layout: str, config_json: dict | None) -> bool:
    """Adjust ``plan`` for a shared token embedding / output head; True if the model ties them.

    GPT-2 ties them; a Hugging Face file may hold the head too (``lm_head.weight``): a copy,
    only checked for its shape, unless the config says ``tie_word_embeddings: false``. A tied
    GPTModel saved with safetensors keeps only one of the two names (safetensors refuses
    shared tensors); one saved with ``torch.save`` keeps both, sharing memory.
    """
    names = tensors.shapes
    if layout == "hf":
        if "lm_head.weight" not in names:
            return True
        untied = (config_json or {}).get("tie_word_embeddings") is False
        copies = [_Copy("out_head.weight")] if untied else []  # tied: a copy, checked only
        plan["lm_head.weight"] = (plan["wte.weight"][0], copies)
        return not untied
    if not (tensors.tied_head or ("tok_emb.weight" in names) != ("out_head.weight" in names)):
        return False
    if "out_head.weight" not in names:  # stored once, under the embedding's name
        del plan["out_head.weight"]
    elif "tok_emb.weight" not in names:  # stored once, under the head's name
        plan["out_head.weight"] = (plan.pop("tok_emb.weight")[0], _as_is("tok_emb.weight"))
    else:  # both names, one tensor: copy it once
        plan["out_head.weight"] = (plan["out_head.weight"][0], [])
    return True


def _check(tensors: _Tensors, plan: _Plan, cfg: dict, layout: str) -> None:
    """Raise ``WeightsMismatch`` naming every tensor that differs, is missing or unexpected."""
    shapes = tensors.shapes
    differ = [
        f"{name}: file has {tuple(shapes[name])}, model expects {expected}"
        for name, (expected, _) in plan.items()
        if name in shapes and tuple(shapes[name]) != expected
    ]
    missing = [name for name in plan if name not in shapes]
    unexpected = [name for name in shapes if name not in plan and not _ignored(name)]
    if not (differ or missing or unexpected):
        return
    found = {"shapes differ": differ, "missing": missing, "unexpected": unexpected}
    problems = [f"{kind} ({len(items)}): {_first(items)}" for kind, items in found.items() if items]
    raise WeightsMismatch(
        f"The tensors in {tensors.path} do not fit a GPTModel with {_describe(cfg)}; "
        f"{'; '.join(problems)}; the file implies {_describe(_implied_config(shapes, layout))}."
    )


def _first(items: list[str], n: int = 5) -> str:
    more = f", ... and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


# ---------------------------------------------------------------------------------------------
# Building and filling the model
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _skip_initialisation():
    """Building a model fills its weights at random and its causal masks with ``triu``; the
    loader overwrites the weights and rebuilds the masks anyway. On the meta device those
    calls also import ~70 MB of PyTorch's decompositions the first time, memory the load would
    hold for nothing, so they are skipped while the empty model is built."""
    from . import attention

    skipped = [(torch.nn.init, name) for name in ("normal_", "uniform_", "kaiming_uniform_")]
    saved = {(owner, name): getattr(owner, name) for owner, name in skipped}
    saved[(attention, "causal_mask")] = attention.causal_mask
    try:
        for owner, name in skipped:
            setattr(owner, name, lambda tensor, *args, **kwargs: tensor)
        attention.causal_mask = lambda context_length: torch.empty(context_length, context_length)
        yield
    finally:
        for (owner, name), original in saved.items():
            setattr(owner, name, original)


def _empty_model(cfg: dict, device, dtype: torch.dtype) -> GPTModel:
    """A GPTModel whose parameters are allocated on ``device`` but not initialised.

    Built on the ``meta`` device first: no memory, and no time spent on a random
    initialisation the file overwrites anyway. ``to_empty`` then allocates each tensor once.
    """
    with torch.device("meta"), _skip_initialisation():
        model = GPTModel(cfg)
    model = model.to(dtype=dtype).to_empty(device=device)
    for module in model.modules():  # buffers come uninitialised too: rebuild the causal masks
        if isinstance(getattr(module, "mask", None), torch.Tensor):
            module.mask.copy_(causal_mask(module.mask.shape[0]))
    return model


def _fill(model: GPTModel, tensors: _Tensors, plan: _Plan, tied: bool) -> None:
    """Copy each file tensor into its parameter(s), reading one tensor at a time."""
    filled = set()
    if tied:  # first: the head's own (never written) memory is released before filling
        model.out_head.weight = model.tok_emb.weight
        filled.add("out_head.weight")
    params = dict(model.named_parameters(remove_duplicate=False))
    scratch = _Scratch()
    with torch.no_grad():
        for name, (_, copies) in plan.items():
            if not copies:
                continue
            if _reads_straight_in(tensors, name, copies, params):
                tensors.read_into(name, params[copies[0].target])
                filled.add(copies[0].target)
                continue
            tensor = scratch.read(tensors, name)
            for copy in copies:
                params[copy.target].copy_(copy.apply(tensor))  # also casts dtype and device
                filled.add(copy.target)
            del tensor  # keep at most one file tensor in memory
    unfilled = set(params) - filled
    if unfilled:  # a mapping bug would otherwise leave uninitialised memory in the model
        raise RuntimeError(f"Not loaded from the file: {', '.join(sorted(unfilled))}")


class _Scratch:
    """One reusable buffer for the file tensors that are transposed or split on their way in.

    A fresh tensor per read would do the same, but the C allocator keeps freed blocks of a
    few MB for reuse rather than returning them, and the process's memory creeps up.
    """

    def __init__(self):
        self.buffer: torch.Tensor | None = None

    def read(self, tensors: _Tensors, name: str) -> torch.Tensor:
        dtype = tensors.dtypes[name] if tensors.dtypes else None
        if tensors.read_into is None or dtype is None:
            return tensors.get(name)  # a .pth state dict (already in memory), or a bad dtype
        n = math.prod(tensors.shapes[name])
        if self.buffer is None or self.buffer.numel() < n or self.buffer.dtype != dtype:
            self.buffer = None  # free the old one first
            self.buffer = torch.empty(n, dtype=dtype)
        out = self.buffer[:n].view(tensors.shapes[name])
        tensors.read_into(name, out)
        return out


def _reads_straight_in(tensors: _Tensors, name: str, copies: list[_Copy], params) -> bool:
    """Whether the file's bytes of ``name`` can go into its parameter unchanged: no transpose,
    no split, same dtype, on the CPU (the embedding, the largest tensor, always can)."""
    if tensors.read_into is None or len(copies) != 1 or copies[0].transpose or copies[0].part is not None:
        return False
    param = params[copies[0].target]
    return (
        param.device.type == "cpu" and param.is_contiguous()
        and param.dtype == tensors.dtypes[name] and param.shape == tensors.shapes[name]
    )


def _locate(path: Path) -> tuple[Path, Path]:
    """(weights file, config.json beside it) for a folder or a file."""
    if path.is_dir():
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            found = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
            pickled = (path / "pytorch_model.bin").exists()
            hint = " (pytorch_model.bin is a pickle: use safetensors)" if pickled else ""
            raise FileNotFoundError(
                f"{path} has no {WEIGHTS_FILE}{hint}; a model folder holds {CONFIG_FILE} + "
                f"{WEIGHTS_FILE} (found: {found})."
            )
        return weights, path / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No such file or folder: {path}")
    if path.suffix not in (".safetensors", ".pth", ".pt"):
        raise ValueError(f"{path}: expected a folder, a .safetensors file or a .pth state dict.")
    return path, path.with_name(CONFIG_FILE)


def load_model(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    *,
    config: dict | None = None,
    n_heads: int | None = None,
    drop_rate: float | None = None,
) -> GPTModel:
    """A ``GPTModel`` (in eval mode) with the weights in ``path``: a folder in Hugging Face's
    GPT-2 layout or ours (``config.json`` + ``model.safetensors``), a ``.safetensors`` file,
    or a ``.pth`` state dict with the book's parameter names.

    The config comes from ``config`` if given (the file must fit it), else ``config.json``,
    else the tensors' shapes (then ``n_heads`` is needed unless emb_dim is a GPT-2 size).
    ``dtype=None`` keeps the file's dtype; ``drop_rate`` defaults to the config's, else 0.1.
    """
    weights_file, config_file = _locate(Path(path))
    config_json = _read_config_json(config_file) if weights_file.suffix == ".safetensors" else None
    with _open_tensors(weights_file) as tensors:
        layout = _layout_of(tensors)
        if layout == "hf":
            tensors = _as_hf_names(tensors)
        cfg = _build_config(tensors, layout, config_json, config, n_heads, drop_rate)
        if layout == "hf" and not cfg["qkv_bias"]:
            raise WeightsMismatch("GPT-2's query/key/value layers have biases: set qkv_bias=True.")
        norm = "ln_f.weight" if layout == "hf" else "final_norm.scale"
        file_dtype = tensors.get(norm).dtype if norm in tensors.shapes else torch.float32
        model = _empty_model(cfg, device, dtype or file_dtype)
        plan = _hf_plan(cfg) if layout == "hf" else _own_plan(model)
        tied = _tie_head(plan, tensors, layout, config_json)
        _check(tensors, plan, cfg, layout)
        _fill(model, tensors, plan, tied)
    return model.eval()


def load_gpt2(
    source: str | os.PathLike = "gpt2-small (124M)",
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    *,
    config: dict | None = None,
    n_heads: int | None = None,
    drop_rate: float | None = None,
) -> GPTModel:
    """OpenAI's GPT-2 as a ``GPTModel`` in eval mode, its output head tied to the embedding.

    ``source``: a size ("gpt2-small (124M)" ... "gpt2-xl (1558M)", or "small", "124M", "gpt2",
    "medium", ...; see ``download_gpt2`` for where it comes from), or a path (``load_model``).
    A string that names a size is a size: write ``./gpt2`` for a folder called gpt2.
    A size is built with the book's config: ``gpt2_config(size)`` (``context_length=1024``)
    with ``qkv_bias=True``; ``drop_rate`` stays 0.1 as in ch. 5 (ch. 6-7 pass ``drop_rate=0.0``).
    Raises ``WeightsUnavailable`` when the weights can be neither found nor downloaded.
    """
    options = {"config": config, "n_heads": n_heads, "drop_rate": drop_rate}
    if isinstance(source, str) and source.strip().lower() in _SIZE_ALIASES:
        size = resolve_gpt2_size(source)
        if config is None:
            # the book's NEW_CONFIG: context_length is 1024 already, GPT-2 has qkv biases
            options["config"] = {**gpt2_config(size), "qkv_bias": True}
        return load_model(download_gpt2(size), device, dtype, **options)
    path = Path(source)
    if not path.exists() and isinstance(source, str) and not re.search(r"[/\\.]", source):
        resolve_gpt2_size(source)  # neither a path nor a size: the error lists the sizes
    return load_model(path, device, dtype, **options)


# ---------------------------------------------------------------------------------------------
# The base model for notebooks 07-09: GPT-2 when it can be had, else notebook 06's own model
# ---------------------------------------------------------------------------------------------


def base_model_dir(profile=None) -> Path:
    """Where notebook 06 saves the model it pretrains on tinyshakespeare, one per profile."""
    from .runtime import active_profile

    return cache_dir() / "models" / f"base-{(profile or active_profile()).name}"


def load_base_model(size: str = "gpt2-small (124M)", device="cpu", *, drop_rate=None):
    """GPT-2 of ``size`` if its weights can be had, else the model notebook 06 pretrained.

    Prints one sentence saying which model it is. Returns ``(model, name)``. When neither is
    available, raises ``WeightsUnavailable`` saying to run notebook 06 first.
    """
    from .checkpoint import load_model_from_checkpoint

    try:
        model = load_gpt2(size, device=device, drop_rate=drop_rate)
        print(f"Using OpenAI's {resolve_gpt2_size(size)} weights.")
        return model, resolve_gpt2_size(size)
    except WeightsUnavailable as err:
        folder = base_model_dir()
        if not (folder / WEIGHTS_FILE).is_file():
            raise WeightsUnavailable(
                f"{err} The fallback, the base model notebook 06 pretrains, is not there either "
                f"({folder.name} in the data folder): run notebook 06 once to create it."
            ) from None
        model = load_model_from_checkpoint(folder, map_location=device)
        if drop_rate is not None:
            for module in model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = drop_rate
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"GPT-2's weights are not available here, so this notebook uses the model notebook 06 "
            f"pretrained on tinyshakespeare ({n_params / 1e6:.1f}M parameters) instead."
        )
        return model, folder.name


if __name__ == "__main__":  # usage example: python -m helpers.weights [size or path]
    import sys

    from .model import generate_text_simple, text_to_token_ids, token_ids_to_text
    from .tokenizer import gpt2_tokenizer

    try:  # WeightsUnavailable is a DataError, as is a tokenizer file that cannot be fetched
        gpt2 = load_gpt2(sys.argv[1] if len(sys.argv) > 1 else "gpt2-small (124M)")
        tokenizer = gpt2_tokenizer()
    except DataError as err:
        raise SystemExit(str(err)) from None
    ids = text_to_token_ids("Every effort moves you", tokenizer)
    print(token_ids_to_text(generate_text_simple(gpt2, ids, 15, 1024), tokenizer))
