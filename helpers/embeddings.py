"""Phase 03, token and positional embeddings: the pieces that are not just ``nn.Embedding``.

GPT-2 learns its absolute position embeddings (an ``nn.Embedding`` over positions, see
``GPTModel.pos_emb``). Two other schemes are shown for comparison:

- the original Transformer's fixed sinusoids (``sinusoidal_positions``, notebook 03),
- rotary position embeddings, RoPE (``apply_rope``, notebook 04), used by Llama and most recent
  LLMs: they rotate queries and keys so that their dot product depends only on the *relative*
  distance.
"""

from __future__ import annotations

import torch

from .validate import check_int, check_number


def one_hot_lookup(weight: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """What an embedding lookup computes, written as one-hot vectors times the weight matrix.

    Same result as ``nn.functional.embedding(token_ids, weight)``, but builds a
    (…, vocab_size) one-hot tensor first: that is why real code uses the lookup.
    """
    one_hot = torch.nn.functional.one_hot(token_ids, num_classes=weight.shape[0])
    return one_hot.to(weight.dtype) @ weight


def sinusoidal_positions(num_positions: int, dim: int, base: float = 10_000.0) -> torch.Tensor:
    """The fixed position encodings of "Attention Is All You Need" (Vaswani et al., 2017).

    Even columns hold sin(pos / base^(i/dim)), odd columns the matching cos: low columns
    oscillate fast, high columns slowly, so every position gets a distinct pattern.
    """
    check_int(num_positions, "num_positions", minimum=0)
    check_int(dim, "dim", minimum=2)
    check_number(base, "base", low=1, low_open=True)  # base <= 1 gives no wavelengths to tell apart
    if dim % 2:
        raise ValueError(f"dim must be even to pair sines with cosines, got {dim}.")
    positions = torch.arange(num_positions, dtype=torch.float32)[:, None]
    frequencies = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    angles = positions * frequencies  # (num_positions, dim / 2)
    encoding = torch.empty(num_positions, dim)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles)
    return encoding


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10_000.0) -> torch.Tensor:
    """Rotate each pair of dimensions (2i, 2i+1) of ``x`` by the angle position · base^(-2i/d).

    ``x`` is (…, num_tokens, dim) and ``positions`` (num_tokens,). A rotation by angle a of the
    query and angle b of the key changes their dot product only through a - b, which is what
    makes attention scores depend on relative rather than absolute position.
    """
    dim = x.shape[-1]
    if dim % 2:
        raise ValueError(f"the last dimension must be even for RoPE, got {dim}.")
    frequencies = base ** (-torch.arange(0, dim, 2, dtype=torch.float32, device=x.device) / dim)
    angles = positions.to(torch.float32)[:, None] * frequencies  # (num_tokens, dim / 2)
    cos, sin = torch.cos(angles), torch.sin(angles)
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = torch.empty_like(x)
    rotated[..., 0::2] = even * cos - odd * sin
    rotated[..., 1::2] = even * sin + odd * cos
    return rotated


if __name__ == "__main__":
    q, k = torch.randn(1, 8), torch.randn(1, 8)
    for a, b in [(0, 3), (10, 13), (100, 103)]:  # the same offset, three places in the text
        score = apply_rope(q, torch.tensor([a])) @ apply_rope(k, torch.tensor([b])).T
        print(f"positions {a:>3} and {b:>3}: score {score.item():+.5f}")
