"""PyTorch's fused attention kernel for ``MultiHeadAttention``: the same maths, faster to train.

``helpers.attention.MultiHeadAttention`` spells attention out (scores, scale, mask, softmax,
dropout), as the book does, and materialises every (n, n) matrix on the way.
``torch.nn.functional.scaled_dot_product_attention`` computes the same context vectors in one
kernel, without keeping those matrices (FlashAttention-style on a GPU). ``FusedMultiHeadAttention``
is ``MultiHeadAttention`` with that kernel in its forward: same parameters, same state dict.

``fused_attention(model)`` switches every ``MultiHeadAttention`` inside a model to it (by
changing the module's class, so the parameters, the optimizer that holds them and any hooks
stay as they are) and returns a function that switches them back. ``TrainingOptions(sdpa=True)``
uses it for the training steps.

Equal up to float rounding when dropout is off. With dropout, the fused kernel draws its own
random numbers (on a CPU it falls back to the explicit maths and draws the same ones), so a
run on a GPU differs from the explicit one in which weights are dropped, not in distribution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention, check_attention_input

__all__ = ["FusedMultiHeadAttention", "fused_attention"]


class FusedMultiHeadAttention(MultiHeadAttention):
    """``MultiHeadAttention`` whose weights and weighted sum are one fused kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_attention_input(x, self.mask.shape[0], "MultiHeadAttention")
        keys = self.split_heads(self.W_key(x))
        queries = self.split_heads(self.W_query(x))
        values = self.split_heads(self.W_value(x))
        p = self.dropout.p if self.training else 0.0
        # is_causal builds the same mask as self.mask (a token sees itself and the past)
        context = F.scaled_dot_product_attention(queries, keys, values, dropout_p=p, is_causal=True)
        return self.out_proj(self.merge_heads(context))


def fused_attention(model: nn.Module, enabled: bool = True):
    """Make every ``MultiHeadAttention`` in ``model`` fused (or, ``enabled=False``, explicit);
    return a function that restores each module's previous class."""
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"fused_attention needs a torch model (nn.Module), got {type(model).__name__}."
        )
    if not isinstance(enabled, bool):  # "no" would be true, and switch the kernel on
        raise ValueError(f"enabled must be True or False, got {enabled!r}.")
    wanted = FusedMultiHeadAttention if enabled else MultiHeadAttention
    changed = []
    for module in model.modules():
        if type(module) in (MultiHeadAttention, FusedMultiHeadAttention) and type(module) is not wanted:
            changed.append((module, type(module)))
            module.__class__ = wanted

    def restore() -> None:
        for module, cls in changed:
            module.__class__ = cls

    return restore
