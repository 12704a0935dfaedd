"""Phase 04, attention: from a plain weighted average to multi-head causal self-attention.

The book builds attention in steps; each step is one object here, with the book's names,
constructor signatures and attribute names (so a state dict maps page to code, both ways):

1. ``simple_self_attention``   no trainable weights: scores are dot products of the inputs (3.3)
2. ``SelfAttention_v1``        trainable query/key/value matrices as ``nn.Parameter`` (3.4)
3. ``SelfAttention_v2``        the same with ``nn.Linear`` layers (better initialisation)
4. ``CausalAttention``         batched; hides future tokens (mask) and drops weights (dropout) (3.5)
5. ``MultiHeadAttentionWrapper``  several ``CausalAttention`` heads side by side (3.6)
6. ``MultiHeadAttention``      all heads in one set of matrices, plus an output projection

The causal classes share one function for the attention weights, ``causal_attention_weights``:
scores -> scaled -> masked -> softmax -> dropout, the stages of ``STAGES``.

These classes compute attention the explicit way, to be read. The engine extends them from
its own modules, on the same parameters: ``helpers.kv_cache`` (generation with cached keys
and values), ``helpers.fused_attention`` (PyTorch's fused kernel, for training speed) and
``helpers.widgets.attention_viewer`` (every stage of a forward pass, for the viewer).

    >>> torch.manual_seed(123)
    >>> mha = MultiHeadAttention(d_in=3, d_out=2, context_length=6, dropout=0.0, num_heads=2)
    >>> mha(torch.rand(1, 6, 3)).shape
    torch.Size([1, 6, 2])
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "STAGES",
    "simple_self_attention",
    "SelfAttention_v1",
    "SelfAttention_v2",
    "causal_mask",
    "causal_attention_weights",
    "CausalAttention",
    "MultiHeadAttentionWrapper",
    "MultiHeadAttention",
    "check_attention_input",
]

# The steps of ``causal_attention_weights``, in order (the attention viewer shows each).
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
# The causal attention weights, shared by every causal class below
# ---------------------------------------------------------------------------------------------


def causal_mask(context_length: int) -> torch.Tensor:
    """1.0 above the diagonal (the future a token must not see), 0.0 elsewhere; float, as the
    book registers it, so state dicts with a ``mask`` buffer load both ways."""
    return torch.triu(torch.ones(context_length, context_length), diagonal=1)


def causal_attention_weights(
    queries: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor, dropout: nn.Module
) -> torch.Tensor:
    """How much each token attends to each earlier one: (..., n, d) twice -> (..., n, n).

    ``mask`` is ``causal_mask(context_length)``, non-zero where a token must not look.
    """
    num_tokens = queries.shape[-2]
    attn_scores = queries @ keys.transpose(-2, -1)  # every query with every key
    attn_scores = attn_scores / keys.shape[-1] ** 0.5  # keeps softmax out of saturation
    # -inf, not 0: softmax turns exp(-inf) into exactly 0, and each row still sums to 1
    future = mask.bool()[:num_tokens, :num_tokens]
    attn_scores = attn_scores.masked_fill(future, -torch.inf)
    attn_weights = torch.softmax(attn_scores, dim=-1)
    return dropout(attn_weights)  # while training, zero some weights at random


def check_attention_input(x: torch.Tensor, context_length: int, who: str) -> tuple[int, int, int]:
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
    """Self-attention that only looks back: (b, num_tokens, d_in) -> (b, num_tokens, d_out)."""

    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        # a buffer moves with .to(device) and is saved in the state dict, but is not trained
        self.register_buffer("mask", causal_mask(context_length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_attention_input(x, self.mask.shape[0], "CausalAttention")
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        attn_weights = causal_attention_weights(queries, keys, self.mask, self.dropout)
        return attn_weights @ values


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


def _check_heads(d_out: int, num_heads: int) -> None:
    if d_out % num_heads != 0:
        heads_that_fit = [h for h in range(1, d_out + 1) if d_out % h == 0]
        raise ValueError(
            f"d_out ({d_out}) must be divisible by num_heads ({num_heads}), since each "
            f"head gets d_out // num_heads features: use num_heads in {heads_that_fit}, "
            f"or a d_out that is a multiple of {num_heads} "
            f"(e.g. {max(num_heads, d_out - d_out % num_heads)})."
        )


class MultiHeadAttention(nn.Module):
    """Causal attention in ``num_heads`` heads at once, each on its own ``head_dim`` slice of
    one set of projections; ``out_proj`` mixes what the heads found."""

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        _check_heads(d_out, num_heads)
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", causal_mask(context_length))

    def split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """(b, n, d_out) -> (b, num_heads, n, head_dim): the heads become a batch dimension."""
        b, num_tokens, _ = t.shape
        return t.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

    def merge_heads(self, t: torch.Tensor) -> torch.Tensor:
        """(b, num_heads, n, head_dim) -> (b, n, d_out): the heads side by side again."""
        b, _, num_tokens, _ = t.shape
        return t.transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_attention_input(x, self.mask.shape[0], "MultiHeadAttention")
        keys = self.split_heads(self.W_key(x))  # (b, num_heads, num_tokens, head_dim)
        queries = self.split_heads(self.W_query(x))
        values = self.split_heads(self.W_value(x))
        attn_weights = causal_attention_weights(queries, keys, self.mask, self.dropout)
        context_vecs = attn_weights @ values  # each head's weighted sum of its values
        return self.out_proj(self.merge_heads(context_vecs))


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
    out = mha(torch.stack((inputs, inputs)))
    print("output", tuple(out.shape), "\n", out[0])
