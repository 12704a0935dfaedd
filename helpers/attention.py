"""Phase 04, attention: from a plain weighted average to multi-head causal self-attention.

The book builds attention in steps; each step is one object here, with the book's names,
constructor signatures and attribute names (so a state dict maps page to code, both ways):

1. ``simple_self_attention``   no trainable weights: scores are dot products of the inputs (3.3)
2. ``SelfAttention_v1``        trainable query/key/value matrices as ``nn.Parameter`` (3.4)
3. ``SelfAttention_v2``        the same with ``nn.Linear`` layers (better initialisation)
4. ``CausalAttention``         batched; hides future tokens (mask) and drops weights (dropout) (3.5)
5. ``MultiHeadAttentionWrapper``  several ``CausalAttention`` heads side by side (3.6)
6. ``MultiHeadAttention``      all heads in one set of matrices, plus an output projection

The causal classes share one implementation of the attention math,
``causal_attention_weights``: scores -> scaled -> masked -> softmax -> dropout. It can record
every stage; ``recording_attention(model)`` switches that on for every attention module of
a model, which is how the attention viewer (``helpers.widgets.attention_viewer``) reads them.
When nothing is recorded, the causal classes call PyTorch's fused
``scaled_dot_product_attention``, which computes the same thing faster; set
``use_sdpa = False`` on a module, or on its class for all of them
(``MultiHeadAttention.use_sdpa = False``), to force the explicit maths.

For generating text, ``MultiHeadAttention`` can keep the keys and values of the tokens it has
already seen (a KV cache, ``forward(x, use_cache=True)``): then each new token costs one row of
attention instead of recomputing the whole sequence. The cache is a plain attribute, not a
buffer, so it never appears in the state dict; ``GPTModel`` drives it (see ``helpers.model``).

    >>> torch.manual_seed(123)
    >>> mha = MultiHeadAttention(d_in=3, d_out=2, context_length=6, dropout=0.0, num_heads=2)
    >>> mha(torch.rand(1, 6, 3)).shape
    torch.Size([1, 6, 2])
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "STAGES",
    "simple_self_attention",
    "SelfAttention_v1",
    "SelfAttention_v2",
    "causal_mask",
    "causal_attention_weights",
    "causal_attention",
    "CausalAttention",
    "MultiHeadAttentionWrapper",
    "MultiHeadAttention",
    "KVCache",
    "attention_modules",
    "recording_attention",
]

# The stages of ``causal_attention_weights``, in order, as recorded into ``module.stages``.
STAGES = ("scores", "scaled", "masked", "weights", "dropped")


# ---------------------------------------------------------------------------------------------
# 1.-3. Self-attention without a mask
# ---------------------------------------------------------------------------------------------


def simple_self_attention(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention with no trainable weights: each input is its own query, key and value.

    ``inputs`` is (num_tokens, d). Returns ``(context_vecs, attn_weights)``: row ``i`` of the
    weights says how much token ``i`` attends to every token; its context vector is the
    weighted sum of all inputs.
    """
    attn_scores = inputs @ inputs.T  # every pair's dot product: how similar they are
    attn_weights = torch.softmax(attn_scores, dim=-1)  # each row: positive, sums to 1
    return attn_weights @ inputs, attn_weights


class SelfAttention_v1(nn.Module):
    """Scaled dot-product self-attention with the weight matrices as plain parameters."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keys = x @ self.W_key
        queries = x @ self.W_query
        values = x @ self.W_value
        attn_scores = queries @ keys.T
        # dividing by sqrt(d_k) keeps the scores' spread independent of the key size, so the
        # softmax does not saturate (and its gradients vanish) for large embeddings
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        return attn_weights @ values


class SelfAttention_v2(nn.Module):
    """``SelfAttention_v1`` with ``nn.Linear`` layers: same maths, better initial weights.

    ``nn.Linear`` stores its weight transposed, so ``v1.W_query`` corresponds to
    ``v2.W_query.weight.T``.
    """

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        attn_scores = queries @ keys.T
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        return attn_weights @ values


# ---------------------------------------------------------------------------------------------
# The causal attention math, shared by every causal class below
# ---------------------------------------------------------------------------------------------


def causal_mask(context_length: int) -> torch.Tensor:
    """1.0 above the diagonal (the future a token must not see), 0.0 elsewhere; float, as the
    book registers it, so state dicts with a ``mask`` buffer load both ways."""
    return torch.triu(torch.ones(context_length, context_length), diagonal=1)


def causal_attention_weights(
    queries: torch.Tensor,
    keys: torch.Tensor,
    mask: torch.Tensor,
    dropout: nn.Module,
    stages: dict | None = None,
) -> torch.Tensor:
    """Attention weights (..., n_q, n_k) from queries (..., n_q, d) and keys (..., n_k, d).

    ``mask`` is at least (n_k, n_k), non-zero where a query must not look (``causal_mask``).
    The queries are the *last* n_q of the n_k positions: without a KV cache n_q = n_k; with
    one, the keys also cover the earlier, cached tokens. With ``stages`` a dict, each step's
    result is stored in it (detached), under the names in ``STAGES``.
    """
    scores = queries @ keys.transpose(-2, -1)
    scaled = scores / keys.shape[-1] ** 0.5
    # -inf, not 0: softmax turns exp(-inf) into exactly 0, and the remaining weights of each
    # row still sum to 1 (masking after softmax would need a second normalisation)
    masked = scaled.masked_fill(_mask_rows(mask, queries, keys).bool(), -torch.inf)
    weights = torch.softmax(masked, dim=-1)
    dropped = dropout(weights)
    if stages is not None:
        for name, value in zip(STAGES, (scores, scaled, masked, weights, dropped), strict=True):
            stages[name] = value.detach()
    return dropped


def _mask_rows(mask: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The (n_q, n_k) part of ``mask`` for queries at the last n_q of n_k positions."""
    n_q, n_k = queries.shape[-2], keys.shape[-2]
    return mask[n_k - n_q : n_k, :n_k]


def causal_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    dropout: nn.Module,
    stages: dict | None = None,
    use_sdpa: bool = True,
) -> torch.Tensor:
    """Context vectors: ``causal_attention_weights(...) @ values``.

    Unless stages are recorded or ``use_sdpa`` is False, this calls PyTorch's fused
    ``scaled_dot_product_attention`` instead: the same maths (causal mask, 1/sqrt(d) scaling,
    dropout on the weights) without materialising the n x n matrices. Its dropout draws
    different random numbers than ``nn.Dropout``, so the two paths agree exactly only when
    dropout is off (eval mode or p = 0). The fused path assumes ``mask`` is ``causal_mask``.

    As in ``causal_attention_weights``, the queries are the last n_q of the n_k positions.
    """
    if use_sdpa and stages is None:
        p = dropout.p if dropout.training else 0.0
        n_q, n_k = queries.shape[-2], keys.shape[-2]
        if n_q == n_k:  # the whole sequence: SDPA builds the causal mask itself
            return F.scaled_dot_product_attention(
                queries, keys, values, dropout_p=p, is_causal=True
            )
        # With a KV cache. SDPA's is_causal aligns the mask top-left (query 0 sees key 0
        # only), wrong when the queries are the last tokens. One new token may see every key,
        # so it needs no mask at all; several new tokens need the bottom rows of ours.
        allowed = None if n_q == 1 else _mask_rows(mask, queries, keys) == 0
        return F.scaled_dot_product_attention(
            queries, keys, values, attn_mask=allowed, dropout_p=p
        )
    return causal_attention_weights(queries, keys, mask, dropout, stages) @ values


def _check_input(x: torch.Tensor, context_length: int, who: str) -> tuple[int, int, int]:
    """(batch, num_tokens, d_in) of ``x``, or a ValueError that says what to change."""
    if x.dim() != 3:
        raise ValueError(
            f"{who} expects a batch of shape (batch, num_tokens, d_in), got {tuple(x.shape)}. "
            f"For a single sequence, add the batch dimension: x.unsqueeze(0)."
        )
    b, num_tokens, d_in = x.shape
    if num_tokens > context_length:
        raise ValueError(
            f"{who} got {num_tokens} tokens, but its context_length is {context_length}: "
            f"shorten the input (e.g. x[:, -{context_length}:]) or build the module with a "
            f"larger context_length."
        )
    return b, num_tokens, d_in


# ---------------------------------------------------------------------------------------------
# 4.-6. Causal attention, one head and many
# ---------------------------------------------------------------------------------------------


class CausalAttention(nn.Module):
    """Single-head causal self-attention: (b, num_tokens, d_in) -> (b, num_tokens, d_out).

    Set ``record_stages = True`` (or use ``recording_attention``) to keep the intermediate
    matrices of the last forward in ``self.stages`` (each (b, n, n)); ``use_sdpa = False``
    forces the explicit computation.
    """

    record_stages: bool = False
    use_sdpa: bool = True

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        qkv_bias: bool = False,
    ):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        # a buffer moves with .to(device) and is saved in the state dict, but is not trained
        self.register_buffer("mask", causal_mask(context_length))
        self.stages: dict | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.mask.shape[0], type(self).__name__)
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        stages = {} if self.record_stages else None
        context = causal_attention(
            queries, keys, values, self.mask, self.dropout, stages, self.use_sdpa
        )
        if stages is not None:
            self.stages = stages
        return context


class MultiHeadAttentionWrapper(nn.Module):
    """``num_heads`` independent ``CausalAttention`` heads; their outputs are concatenated,
    so the output has ``d_out * num_heads`` features."""

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ):
        super().__init__()
        self.heads = nn.ModuleList(
            [
                CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)
                for _ in range(num_heads)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(x) for head in self.heads], dim=-1)


class KVCache:
    """The keys and values an attention module has computed so far, kept for generation.

    Both are allocated once for ``capacity`` tokens, (batch, num_heads, capacity, head_dim),
    and filled from the left: ``append`` writes the new tokens into the next free positions
    (``torch.cat`` would copy the whole cache at every step). ``length`` counts the filled
    positions. Meant for inference: the tensors are written in place.
    """

    def __init__(self, like: torch.Tensor, capacity: int):
        batch, heads, _, head_dim = like.shape
        self.keys = like.new_empty(batch, heads, capacity, head_dim)
        self.values = like.new_empty(batch, heads, capacity, head_dim)
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.keys.shape[2]

    def append(self, keys: torch.Tensor, values: torch.Tensor):
        """Store the new tokens' keys and values (batch, heads, n, head_dim); return the keys
        and values of every token so far, (batch, heads, length, head_dim) each."""
        if keys.shape[:2] != self.keys.shape[:2] or keys.device != self.keys.device:
            raise ValueError(
                f"The KV cache holds a batch of shape {tuple(self.keys.shape[:2])} (batch, heads) "
                f"on {self.keys.device}, but this input is {tuple(keys.shape[:2])} on "
                f"{keys.device}: call model.reset_kv_cache() before starting a new batch."
            )
        start, end = self.length, self.length + keys.shape[2]
        if end > self.capacity:
            raise ValueError(
                f"The KV cache has room for {self.capacity} tokens (the context length); "
                f"{start} are cached and {keys.shape[2]} more do not fit. Call "
                f"model.reset_kv_cache() and feed the last {self.capacity} tokens again."
            )
        self.keys[:, :, start:end] = keys
        self.values[:, :, start:end] = values
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


class MultiHeadAttention(nn.Module):
    """Multi-head causal self-attention: (b, num_tokens, d_in) -> (b, num_tokens, d_out).

    One query/key/value projection of width ``d_out`` is split into ``num_heads`` heads of
    ``head_dim = d_out // num_heads`` features; each head attends on its own, then the heads
    are concatenated and mixed by ``out_proj``. Equivalent to ``MultiHeadAttentionWrapper``
    with ``d_out // num_heads`` per head (plus the projection), but one matrix multiply per
    projection instead of one per head.

    ``record_stages = True`` keeps the last forward's matrices in ``self.stages``
    (each (b, num_heads, n, n)); ``use_sdpa = False`` forces the explicit computation.

    ``forward(x, use_cache=True)`` treats ``x`` as the tokens that follow the ones already in
    ``self.kv_cache`` (a ``KVCache``, created on first use): only their queries, keys and
    values are computed, and they attend to the cached keys too. ``reset_kv_cache()`` empties
    it. The cache is a plain attribute, so ``state_dict()`` does not contain it.
    """

    record_stages: bool = False
    use_sdpa: bool = True

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ):
        super().__init__()
        if d_out % num_heads != 0:
            heads_that_fit = [h for h in range(1, d_out + 1) if d_out % h == 0]
            raise ValueError(
                f"d_out ({d_out}) must be divisible by num_heads ({num_heads}), since each "
                f"head gets d_out // num_heads features: use num_heads in {heads_that_fit}, "
                f"or a d_out that is a multiple of {num_heads} "
                f"(e.g. {max(num_heads, d_out - d_out % num_heads)})."
            )
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)  # mixes what the heads found
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", causal_mask(context_length))
        self.stages: dict | None = None
        self.kv_cache: KVCache | None = None

    def reset_kv_cache(self) -> None:
        """Forget the cached keys and values (before a new prompt, or to free the memory)."""
        self.kv_cache = None

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """(b, n, d_out) -> (b, num_heads, n, head_dim): heads become a batch dimension."""
        b, num_tokens, _ = t.shape
        return t.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, use_cache: bool = False) -> torch.Tensor:
        b, num_tokens, _ = _check_input(x, self.mask.shape[0], type(self).__name__)
        keys = self._split_heads(self.W_key(x))
        queries = self._split_heads(self.W_query(x))
        values = self._split_heads(self.W_value(x))
        if use_cache:  # the new tokens also attend to the earlier ones, kept from before
            if self.kv_cache is None:
                self.kv_cache = KVCache(keys, capacity=self.mask.shape[0])
            keys, values = self.kv_cache.append(keys, values)
        stages = {} if self.record_stages else None
        context = causal_attention(
            queries, keys, values, self.mask, self.dropout, stages, self.use_sdpa
        )
        if stages is not None:
            self.stages = stages
        # (b, num_heads, n, head_dim) -> (b, n, num_heads, head_dim) -> (b, n, d_out)
        context = context.transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context)


# ---------------------------------------------------------------------------------------------
# Looking inside: record the stages of every attention module in a model
# ---------------------------------------------------------------------------------------------


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """Every module inside ``model`` (itself included) that can record its attention stages,
    in the order ``model.modules()`` visits them (for a GPT: layer 0, 1, ...)."""
    return [m for m in model.modules() if hasattr(m, "record_stages")]


@contextmanager
def recording_attention(model: nn.Module):
    """Within the block, every attention module in ``model`` records its stages.

    Yields the list of those modules; after a forward pass each holds ``.stages``. The
    previous ``record_stages`` settings come back afterwards, even after an exception.

        with recording_attention(gpt) as modules:
            gpt(token_ids)
        weights = modules[0].stages["weights"]   # layer 0: (b, num_heads, n, n)
    """
    modules = attention_modules(model)
    before = [m.__dict__.get("record_stages") for m in modules]
    for m in modules:
        m.record_stages = True
        m.stages = None  # no leftovers from an earlier forward
    try:
        yield modules
    finally:
        for m, value in zip(modules, before, strict=True):
            if value is None:
                del m.record_stages  # back to the class default
            else:
                m.record_stages = value


if __name__ == "__main__":  # usage example: python -m helpers.attention
    inputs = torch.tensor(
        [
            [0.43, 0.15, 0.89],  # Your
            [0.55, 0.87, 0.66],  # journey
            [0.57, 0.85, 0.64],  # starts
            [0.22, 0.58, 0.33],  # with
            [0.77, 0.25, 0.10],  # one
            [0.05, 0.80, 0.55],  # step
        ]
    )
    context, weights = simple_self_attention(inputs)
    print("simple attention weights of 'journey':", weights[1])

    torch.manual_seed(123)
    mha = MultiHeadAttention(d_in=3, d_out=2, context_length=6, dropout=0.0, num_heads=2)
    batch = torch.stack((inputs, inputs))
    with recording_attention(mha):
        out = mha(batch)
    print("output", tuple(out.shape), "\n", out[0])
    print("head 0 weights\n", mha.stages["weights"][0, 0])
