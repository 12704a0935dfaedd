"""Decoding kernels: a one-token step of generation with fewer, faster kernels.

A cached step pushes one vector per row of the batch through the model, so its cost is not
arithmetic but (1) reading every weight once and (2) launching many tiny operations. Two
changes of *how* the maths runs, not of what it computes, help both:

- The book's LayerNorm and GELU spell their formulas out in six to eight tensor operations
  each; F.layer_norm and F.gelu(approximate="tanh") compute the same formulas in one.
- On a CPU, PyTorch hands a one-row product ``x @ W.T`` to its BLAS library, which
  (measured on a 2-core AMD machine with PyTorch 2.13's MKL) runs it on one core, at about
  half the memory bandwidth. A *batched* product of the same numbers uses every core, so
  each large nn.Linear splits its weight's rows into one block per thread
  (``SplitLinear``).

Together ~1.6x faster per step here (benchmarks/generation.py measures the whole loop).

``decoding_kernels(model)`` applies both for a block of code; ``NextTokenLogits``
(``helpers.kv_cache``) uses it for every cached step of ``generate``.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .model import GELU, LayerNorm
from .validate import check_int

__all__ = ["SplitLinear", "decoding_kernels"]

SPLIT_MAX_ROWS = 16  # thicker inputs (the prompt) take the usual path: a matrix product
SPLIT_MIN_WEIGHTS = 2**16  # smaller matrices are quick either way; the split would cost more


class SplitLinear:
    """``F.linear(x, weight, bias)``, for an input of a few rows (a decoding step) computed
    as one batched product over ``blocks`` blocks of ``weight``'s rows, which PyTorch spreads
    over the CPU's cores. A remainder of ``out_features % blocks`` rows goes on its own;
    thicker inputs, or any that need gradients, take ``F.linear``. Equal up to float
    rounding: each output is the same dot product, summed in whatever order the kernel picks.

    The blocks are views into ``weight``'s own memory (no copy), made once here rather than
    at every call: a call is ~100 microseconds, so Python-side work shows.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, blocks: int = 2):
        if weight.dim() != 2 or not weight.is_contiguous():
            raise ValueError("SplitLinear needs a contiguous (out_features, in_features) weight.")
        check_int(blocks, "blocks", minimum=1)
        self.weight, self.bias = weight, bias
        self.out_features, self.in_features = weight.shape
        self.max_numel = SPLIT_MAX_ROWS * self.in_features
        self.even = self.out_features - self.out_features % blocks
        # (blocks, in, out // blocks): row block b of the weight, transposed for x @ W.T
        size = self.even // blocks
        self.blocks_t = weight[: self.even].view(blocks, size, self.in_features).mT
        self.bias_blocks = None if bias is None else bias[: self.even].view(blocks, 1, size)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() > self.max_numel or torch.is_grad_enabled():
            return F.linear(x, self.weight, self.bias)
        rows = x.reshape(-1, self.in_features)
        every_block = rows.expand(self.blocks_t.shape[0], -1, -1)  # the same rows, no copy
        if self.bias_blocks is None:
            y = torch.bmm(every_block, self.blocks_t)
        else:
            y = torch.baddbmm(self.bias_blocks, every_block, self.blocks_t)
        # (blocks, n, out // blocks) -> (n, even): the blocks side by side. For one row the
        # memory is already in that order, and a view saves a copy and a call.
        n = rows.shape[0]
        y = y.view(1, self.even) if n == 1 else y.transpose(0, 1).reshape(n, self.even)
        if self.even < self.out_features:
            bias = None if self.bias is None else self.bias[self.even :]
            y = torch.cat((y, F.linear(rows, self.weight[self.even :], bias)), dim=1)
        return y.view(*x.shape[:-1], self.out_features)


def _fused_layer_norm(norm: LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, norm.scale.shape, norm.scale, norm.shift, norm.eps)


def _fused_gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def _decoding_forward(module: nn.Module, blocks: int):
    """The faster ``forward`` for ``module`` during decoding, or None to keep its own. Only
    exact classes are matched: a subclass may compute something else."""
    kind = type(module)
    if kind is LayerNorm:
        return partial(_fused_layer_norm, module)
    if kind is GELU:
        return _fused_gelu
    if (
        kind is nn.Linear
        and blocks > 1
        and module.weight.device.type == "cpu"
        and module.weight.numel() >= SPLIT_MIN_WEIGHTS
        and module.weight.is_contiguous()
    ):
        return SplitLinear(module.weight, module.bias, blocks)
    return None


@contextmanager
def decoding_kernels(model: nn.Module, blocks: int | None = None):
    """Within the block, ``model``'s LayerNorm, GELU and (on a CPU with several threads)
    large nn.Linear layers compute their outputs with fused or core-parallel kernels: the
    same maths, equal up to float rounding. Their own ``forward`` is back afterwards, even
    after an exception. ``generate`` uses it for its cached steps.

    ``blocks``: how many row blocks ``SplitLinear`` makes (default: PyTorch's thread count;
    1 leaves nn.Linear alone).

        cached = CachedGPT(model)          # helpers.kv_cache
        with torch.no_grad(), decoding_kernels(model):
            logits = cached(next_token)
    """
    blocks = torch.get_num_threads() if blocks is None else check_int(blocks, "blocks", minimum=1)
    patched = []
    for module in model.modules():
        forward = _decoding_forward(module, blocks)
        if forward is not None and "forward" not in vars(module):  # not patched already
            module.forward = forward
            patched.append(module)
    try:
        yield model
    finally:
        for module in patched:
            del module.forward
