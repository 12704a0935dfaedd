"""Phase 05, the GPT architecture: a whole GPT-2-style model on one page, and what it costs.

The pieces, in the order the notebook builds them::

    LayerNorm         normalise each token's vector to mean 0, variance 1, then scale and shift
    GELU              the smooth activation GPT-2 uses (tanh approximation)
    FeedForward       Linear(d, 4d) -> GELU -> Linear(4d, d), applied to each token on its own
    TransformerBlock  attention + feed-forward, each with pre-norm and a shortcut connection
    GPTModel          token + position embeddings -> n_layers blocks -> final norm -> logits

Module and parameter names are the book's (``tok_emb``, ``trf_blocks.0.att.W_query``,
``trf_blocks.0.ff.layers.0``, ``norm1.scale``, ``final_norm``, ``out_head``), so a state dict
saved by the book's ``GPTModel`` loads here with ``strict=True``, and ours loads there.

Counting by formula (no model is built, so even GPT-2 xl is instant):
``parameter_breakdown(cfg)``, ``model_memory(cfg, dtype)``, ``flops_per_token(cfg)``.

Usage::

    torch.manual_seed(123)
    model = GPTModel(GPT_CONFIG_124M).eval()
    ids = text_to_token_ids("Hello, I am", tokenizer)             # tensor([[15496, 11, 314, 716]])
    out = generate_text_simple(model, ids, max_new_tokens=6, context_size=1024)
    count_parameters(model)                                       # 163,009,536
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .attention import MultiHeadAttention
from .validate import check_known_keys, check_number

# ---------------------------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------------------------

GPT_CONFIG_124M = {
    "vocab_size": 50257,  # GPT-2's BPE vocabulary: 50,000 merges + 256 bytes + <|endoftext|>
    "context_length": 1024,  # the most tokens the model can look at in one pass
    "emb_dim": 768,  # width of every token's vector through the whole model
    "n_heads": 12,  # attention heads per layer (768 / 12 = 64 dimensions each)
    "n_layers": 12,  # transformer blocks stacked on top of each other
    "drop_rate": 0.1,  # dropout probability while training
    "qkv_bias": False,  # bias in the query/key/value projections (GPT-2's weights have one)
}

# The larger GPT-2 sizes differ only in width, depth and heads.
GPT2_SIZES = {
    "gpt2-small (124M)": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},
    "gpt2-medium (355M)": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},
    "gpt2-large (774M)": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},
    "gpt2-xl (1558M)": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},
}

CONFIG_FIELDS = {
    "vocab_size": "how many different tokens the model knows; the size of its first and last layer",
    "context_length": "the longest input, in tokens; positions beyond it have no embedding",
    "emb_dim": "the embedding (hidden) dimension: each token is a vector of this many numbers",
    "n_heads": "attention heads per block; each looks at the sequence in its own subspace",
    "n_layers": "transformer blocks; more layers, more steps of refinement",
    "drop_rate": "share of activations zeroed at random while training, against overfitting",
    "qkv_bias": "whether the query, key and value projections add a learnt bias vector",
}


def gpt2_config(size: str) -> dict:
    """``GPT_CONFIG_124M`` resized to one of ``GPT2_SIZES`` (short names like "medium" work)."""
    matches = [name for name in GPT2_SIZES if name == size or name.startswith(f"gpt2-{size}")]
    if len(matches) != 1:
        raise ValueError(f"Unknown GPT-2 size {size!r}; choose one of {', '.join(GPT2_SIZES)}.")
    return {**GPT_CONFIG_124M, **GPT2_SIZES[matches[0]]}


GPT_CONFIG_355M = gpt2_config("medium")
GPT_CONFIG_774M = gpt2_config("large")
GPT_CONFIG_1558M = gpt2_config("xl")


def check_config(cfg: dict) -> None:
    """Raise a ``ValueError`` that says what to fix if ``cfg`` cannot describe a GPTModel.

    Refused: a missing key, an unknown one (``"n_layer"`` next to ``"n_layers"`` would be
    ignored and the default kept), and values of the wrong type (``"0.1"``, ``"False"``,
    ``None``, ``2.0`` for a size), which Python would otherwise coerce or treat as true.
    """
    if not isinstance(cfg, Mapping):
        raise ValueError(
            f"A GPT config must be a dict such as GPT_CONFIG_124M, got {type(cfg).__name__}: "
            "for a named size use gpt2_config('small')."
        )
    missing = [key for key in CONFIG_FIELDS if key not in cfg]
    if missing:
        raise ValueError(
            f"The config is missing {', '.join(map(repr, missing))}. A GPT config needs all of: "
            f"{', '.join(CONFIG_FIELDS)} (start from a copy of GPT_CONFIG_124M: "
            "{**GPT_CONFIG_124M, 'n_layers': 4})."
        )
    check_known_keys(cfg, CONFIG_FIELDS, "the model config")
    for key in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
        if not isinstance(cfg[key], numbers.Integral) or isinstance(cfg[key], bool) or cfg[key] < 1:
            raise ValueError(f"cfg[{key!r}] must be a positive integer, got {cfg[key]!r}.")
    if cfg["emb_dim"] % cfg["n_heads"]:
        raise ValueError(
            f"emb_dim ({cfg['emb_dim']}) must be divisible by n_heads ({cfg['n_heads']}): "
            "the heads split each token's vector into equal parts."
        )
    check_number(cfg["drop_rate"], "drop_rate", low=0, high=1, high_open=True)
    if not isinstance(cfg["qkv_bias"], bool):  # "False" or 0 would be read as a bool silently
        raise ValueError(f"qkv_bias must be True or False, got {cfg['qkv_bias']!r}.")


# ---------------------------------------------------------------------------------------------
# The building blocks
# ---------------------------------------------------------------------------------------------


class LayerNorm(nn.Module):
    """Normalise the last dimension to mean 0 and variance 1, then a learnt scale and shift.

    Uses the biased variance (divide by n, not n - 1), as GPT-2's TensorFlow code and
    ``torch.nn.LayerNorm`` do; ``eps`` keeps the division safe when the variance is 0.
    """

    def __init__(self, emb_dim: int):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        normed = (x - mean) / torch.sqrt(var + self.eps)
        return self.scale * normed + self.shift


class GELU(nn.Module):
    """Gaussian error linear unit, in the tanh approximation GPT-2 was trained with.

    Like ReLU for large |x|, but smooth, and slightly negative for small negative x, so
    those inputs still get a gradient.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


class FeedForward(nn.Module):
    """Widen each token's vector 4x, apply GELU, project back: ``layers`` = Linear, GELU, Linear.

    The wider middle gives the model room to compute features of each token on its own
    (attention is the only place where tokens exchange information).
    """

    def __init__(self, cfg: dict):
        super().__init__()
        emb_dim = cfg["emb_dim"]
        self.layers = nn.Sequential(
            nn.Linear(emb_dim, 4 * emb_dim),
            GELU(),
            nn.Linear(4 * emb_dim, emb_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TransformerBlock(nn.Module):
    """Causal multi-head attention, then a feed-forward network, each wrapped the same way.

    Pre-norm (as in GPT-2): normalise the input of each sub-layer, not its output, and add
    the sub-layer's result to its input (a shortcut), so gradients reach early layers intact.
    """

    def __init__(self, cfg: dict):
        super().__init__()
        check_config(cfg)
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            num_heads=cfg["n_heads"],
            dropout=cfg["drop_rate"],
            qkv_bias=cfg["qkv_bias"],
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x)))
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x


class GPTModel(nn.Module):
    """GPT-2's architecture: token ids (batch, n_tokens) -> next-token logits (batch, n_tokens, vocab)."""

    def __init__(self, cfg: dict):
        super().__init__()
        check_config(cfg)
        # The creation order decides which random numbers each layer gets from the seed:
        # keep it as in the book, so torch.manual_seed(123) gives the book's numbers.
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        check_token_ids(in_idx, self.pos_emb.num_embeddings, self.tok_emb.num_embeddings)
        batch_size, seq_len = in_idx.shape
        tok_embeds = self.tok_emb(in_idx)
        pos_embeds = self.pos_emb(torch.arange(seq_len, device=in_idx.device))
        x = tok_embeds + pos_embeds  # (batch, n, d) + (n, d) broadcasts over the batch
        x = self.drop_emb(x)
        x = self.trf_blocks(x)
        x = self.final_norm(x)
        return self.out_head(x)


def check_token_ids(
    in_idx: torch.Tensor, context_length: int, vocab_size: int | None = None
) -> None:
    """Raise a ValueError that says what to change if ``in_idx`` is not (batch, n <= context)
    integer ids, each in ``range(vocab_size)`` (when given)."""
    if not isinstance(in_idx, torch.Tensor):
        raise ValueError(
            f"GPTModel expects a tensor of token ids, got a {type(in_idx).__name__}; make one "
            "with torch.tensor([ids]) or text_to_token_ids(text, tokenizer)."
        )
    if in_idx.dim() != 2:
        raise ValueError(
            f"GPTModel expects token ids of shape (batch, n_tokens), got shape "
            f"{tuple(in_idx.shape)}; for a single sequence add a batch dimension with "
            ".unsqueeze(0)."
        )
    n_tokens = in_idx.shape[1]
    if n_tokens > context_length:
        raise ValueError(
            f"The input has {n_tokens} tokens, but this model's context_length is "
            f"{context_length}: there is no position embedding beyond that. Crop the "
            f"input to its last {context_length} tokens first, "
            f"in_idx[:, -{context_length}:], as generate_text_simple does."
        )
    if vocab_size is not None:
        check_ids_in_vocabulary(in_idx, vocab_size)


def check_ids_in_vocabulary(ids: torch.Tensor, vocab_size: int) -> None:
    """Raise a ValueError if ``ids`` are not integers in ``range(vocab_size)``.

    The embedding would fail with torch's "index out of range in self" on a CPU, and on a
    GPU with a device-side assert that breaks the whole session, so the ids are checked
    first: one min and max over the batch, a single read back from the device.
    """
    if ids.dtype not in (torch.long, torch.int32):
        raise ValueError(
            f"Token ids must be integers (torch.long), got {ids.dtype}; convert them with "
            ".long(), or check that these are ids and not embeddings or probabilities."
        )
    if ids.numel() == 0 or _is_compiling():  # a compiled graph cannot read values back
        return
    low, high = torch.stack(torch.aminmax(ids)).tolist()
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise ValueError(
            f"Token id {bad} is outside this model's vocabulary (0..{vocab_size - 1}): was the "
            "text encoded with another tokenizer, or the model built with a smaller "
            "vocab_size?"
        )


def _is_compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and getattr(compiler, "is_compiling", lambda: False)())


# ---------------------------------------------------------------------------------------------
# Generating text (greedy; phase 06 adds temperature and top-k)
# ---------------------------------------------------------------------------------------------


def generate_text_simple(
    model: nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int
) -> torch.Tensor:
    """Append ``max_new_tokens`` tokens to ``idx`` (batch, n), each the most likely next one.

    Only the last ``context_size`` tokens are fed to the model, so the text can grow beyond
    its context length. Call ``model.eval()`` first, or dropout makes every run different.
    """
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]
        with torch.no_grad():
            logits = model(idx_cond)
        # Only the last position predicts the next token. Softmax would not change which
        # logit is largest, so greedy decoding can take the argmax of the logits directly.
        idx_next = logits[:, -1, :].argmax(dim=-1, keepdim=True)  # (batch, 1)
        idx = torch.cat((idx, idx_next), dim=1)
    return idx


def text_to_token_ids(text: str, tokenizer) -> torch.Tensor:
    """Text -> a (1, n_tokens) tensor of ids, the batch of one a model expects."""
    try:
        ids = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    except TypeError:  # the book's SimpleTokenizerV1/V2 take the text only
        ids = tokenizer.encode(text)
    return torch.tensor(ids, dtype=torch.long).unsqueeze(0)  # long even when empty


def token_ids_to_text(token_ids, tokenizer) -> str:
    """A (1, n) or (n,) tensor or list of ids -> text (drops the batch dimension)."""
    if isinstance(token_ids, torch.Tensor):
        token_ids = token_ids.squeeze(0).tolist()
    return tokenizer.decode(list(token_ids))


def head_outputs(model: nn.Module) -> int | None:
    """How many scores ``model.out_head`` gives at each position: the vocabulary size for a
    language model (a padded head from ``helpers.train_options`` reports it as ``vocab_size``),
    the number of classes after ``add_classification_head``; ``None`` if the model has no such head."""
    head = getattr(model, "out_head", None)
    return getattr(head, "out_features", getattr(head, "vocab_size", None))


# ---------------------------------------------------------------------------------------------
# Size: parameters, memory and compute, by formula
# ---------------------------------------------------------------------------------------------


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of an instantiated model.

    A tensor shared by two layers (tied weights: ``model.out_head.weight = model.tok_emb.weight``)
    is counted once, because ``model.parameters()`` yields each tensor once.
    """
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class Component:
    """One kind of layer in the model: ``per_block`` parameters, repeated ``copies`` times."""

    name: str
    per_block: int
    copies: int
    formula: str  # how per_block is computed, e.g. "50257 × 768"

    @property
    def count(self) -> int:
        return self.per_block * self.copies


@dataclass(frozen=True)
class ParameterBreakdown:
    """Parameter counts of a GPT config, component by component.

    ``total``: as ``GPTModel`` builds it (separate output head, 163,009,536 for 124M).
    ``total_tied``: with the output head sharing the token embedding's matrix, as in OpenAI's
    GPT-2 (124,412,160 for 124M; the name "124M" refers to this count).
    ``non_embedding``: everything but the token and position embeddings and the output head.
    """

    components: tuple[Component, ...]

    @property
    def total(self) -> int:
        return sum(c.count for c in self.components)

    @property
    def output_head(self) -> int:
        return self["output head"].count

    @property
    def total_tied(self) -> int:
        return self.total - self.output_head

    @property
    def non_embedding(self) -> int:
        embedding = ("token embedding", "position embedding", "output head")
        return sum(c.count for c in self.components if c.name not in embedding)

    def __getitem__(self, name: str) -> Component:
        for component in self.components:
            if component.name == name:
                return component
        raise KeyError(f"no component {name!r}; there are {[c.name for c in self]}")

    def __iter__(self):
        return iter(self.components)

    def to_dict(self) -> dict[str, int]:
        """``{component: parameters}`` in model order."""
        return {c.name: c.count for c in self.components}

    def records(self) -> list[dict]:
        """One dict per component, ready for ``pandas.DataFrame(breakdown.records())``."""
        return [
            {
                "component": c.name,
                "per block": c.per_block,
                "copies": c.copies,
                "parameters": c.count,
                "share": c.count / self.total,
                "formula": c.formula,
            }
            for c in self.components
        ]

    def __str__(self) -> str:
        lines = [f"{'component':<22}{'formula':<32}{'copies':>7}{'parameters':>16}"]
        for c in self.components:
            lines.append(f"{c.name:<22}{c.formula:<32}{c.copies:>7}{c.count:>16,}")
        lines.append(f"{'total':<61}{self.total:>16,}")
        lines.append(f"{'total, output head tied to token embedding':<61}{self.total_tied:>16,}")
        return "\n".join(lines)


def parameter_breakdown(cfg: dict) -> ParameterBreakdown:
    """Count a config's parameters by formula, without building the model.

    With d = emb_dim, V = vocab_size, C = context_length, L = n_layers (biases included):

    - token embedding V·d, position embedding C·d
    - attention per block: query, key, value 3·d·d (+ 3·d with qkv_bias), out_proj d·d + d
    - feed-forward per block: d·4d + 4d + 4d·d + d = 8·d² + 5·d
    - layer norms per block: 2 norms × (scale d + shift d) = 4·d; final norm 2·d
    - output head V·d (no bias)
    """
    check_config(cfg)
    d, vocab, ctx = cfg["emb_dim"], cfg["vocab_size"], cfg["context_length"]
    n_layers = cfg["n_layers"]
    qkv = 3 * d * d + (3 * d if cfg["qkv_bias"] else 0)
    qkv_text = "3·d² + 3·d" if cfg["qkv_bias"] else "3·d²"
    return ParameterBreakdown(
        (
            Component("token embedding", vocab * d, 1, f"{vocab} × {d}"),
            Component("position embedding", ctx * d, 1, f"{ctx} × {d}"),
            Component("attention", qkv + d * d + d, n_layers, f"{qkv_text} + d² + d, d={d}"),
            Component("feed-forward", 8 * d * d + 5 * d, n_layers, f"8·d² + 5·d, d={d}"),
            Component("layer norms", 4 * d, n_layers, f"2 × (scale + shift), d={d}"),
            Component("final norm", 2 * d, 1, f"scale + shift, d={d}"),
            Component("output head", vocab * d, 1, f"{d} × {vocab}"),
        )
    )


def bytes_per_parameter(dtype) -> int:
    """Bytes one number takes: ``torch.float32``, or a name like "bfloat16" or "int8"."""
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype, None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"Unknown dtype {dtype!r}; try 'float32', 'bfloat16' or 'int8'.")
        dtype = resolved
    if not isinstance(dtype, torch.dtype):
        raise ValueError(
            f"dtype must be a torch.dtype or its name, such as 'bfloat16'; got {dtype!r}."
        )
    return torch.empty((), dtype=dtype).element_size()


def model_memory(cfg_or_model, dtype="float32", tied: bool = False) -> int:
    """Bytes the parameters take in ``dtype`` (weights only: no gradients, optimizer, activations).

    For a config, counts by formula (``tied`` drops the output head); for a model, counts its
    parameters. Divide by 1024**2 for the book's MB: the 124M model in float32 is
    163,009,536 × 4 bytes = 621.83 MB.
    """
    if isinstance(cfg_or_model, nn.Module):
        n_params = count_parameters(cfg_or_model)
    else:
        breakdown = parameter_breakdown(cfg_or_model)
        n_params = breakdown.total_tied if tied else breakdown.total
    return n_params * bytes_per_parameter(dtype)


def flops_per_token(cfg: dict, include_output_head: bool = False) -> int:
    """Approximate floating-point operations of one forward pass, per token.

    Kaplan et al. (2020), "Scaling Laws for Neural Language Models", table 1:
    ``2·N + 2·n_layers·context_length·emb_dim``, where N is the non-embedding parameter count.
    Each weight takes part in one multiply and one add per token (2·N); the second term is
    attention comparing a token with ``context_length`` others (queries × keys, then weights ×
    values). Kaplan leaves out the embeddings and the output head; the head alone costs
    another ``2·vocab_size·emb_dim``, a large share for small models (``include_output_head``).
    A backward pass costs about twice the forward, so training takes ≈ 3× this per token.
    """
    breakdown = parameter_breakdown(cfg)
    attention = 2 * cfg["n_layers"] * cfg["context_length"] * cfg["emb_dim"]
    flops = 2 * breakdown.non_embedding + attention
    if include_output_head:
        flops += 2 * breakdown.output_head
    return flops


if __name__ == "__main__":  # usage example: python -m helpers.model
    from .tokenizer import gpt2_tokenizer

    print(parameter_breakdown(GPT_CONFIG_124M))
    print(f"float32: {model_memory(GPT_CONFIG_124M) / 1024**2:.2f} MB")
    torch.manual_seed(123)
    tiny_cfg = {**GPT_CONFIG_124M, "context_length": 32, "emb_dim": 64, "n_layers": 2, "n_heads": 4}
    tiny = GPTModel(tiny_cfg).eval()
    tokenizer = gpt2_tokenizer()
    out = generate_text_simple(tiny, text_to_token_ids("Hello, I am", tokenizer), 6, 32)
    print(out.tolist(), repr(token_ids_to_text(out, tokenizer)))
