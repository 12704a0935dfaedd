"""Phase 06 (book 5.5): GPT-2's tensor names -> ours, as a table that ``load_gpt2`` follows.

OpenAI's GPT-2 is our ``GPTModel`` under other names, with three twists the book's
``load_weights_into_gpt`` handles and ``gpt2_weight_map`` spells out:

    attn.c_attn     one matrix computes queries, keys and values side by side: [Q | K | V];
                    we have three (W_query, W_key, W_value), so it is split in thirds
    Conv1D weights  GPT-2 stores each matrix as (in, out), ``nn.Linear`` as (out, in): transposed
    out_head        GPT-2 has no head of its own: it reuses the token embedding ``wte`` (tied)

    >>> gpt2_weight_map(n_layers=12)["trf_blocks.0.att.W_key.weight"]
    Source(name='h.0.attn.c_attn.weight', transpose=True, third=1)
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Source(NamedTuple):
    """Where one of our parameters comes from in a weights file, and how to reshape it."""

    name: str  # the file's tensor name
    transpose: bool = False  # GPT-2's Conv1D (in, out) -> nn.Linear's (out, in)
    third: int | None = None  # c_attn holds [query | key | value]: take this third (0, 1, 2)

    def take(self, tensor: torch.Tensor) -> torch.Tensor:
        """Our parameter's value out of the file's ``tensor`` (a view: nothing is copied)."""
        if self.third is not None:
            tensor = tensor.chunk(3, dim=-1)[self.third]
        return tensor.t() if self.transpose else tensor  # .t() leaves a 1-D bias as it is

    def file_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape the file's tensor must have to fill a parameter of ``shape``."""
        shape = tuple(reversed(shape)) if self.transpose else tuple(shape)
        return shape if self.third is None else (*shape[:-1], 3 * shape[-1])


def gpt2_weight_map(n_layers: int) -> dict[str, Source]:
    """Where each parameter of our GPTModel is in GPT-2's file: the book's ``load_weights_into_gpt``
    as a table, so ``load_gpt2`` can check every shape first, then read one tensor at a time."""
    weights = {
        "tok_emb.weight": Source("wte.weight"),
        "pos_emb.weight": Source("wpe.weight"),
    }
    for i in range(n_layers):
        ours, gpt2 = f"trf_blocks.{i}.", f"h.{i}."
        weights[ours + "norm1.scale"] = Source(gpt2 + "ln_1.weight")
        weights[ours + "norm1.shift"] = Source(gpt2 + "ln_1.bias")
        # c_attn computes [queries | keys | values] in one matrix: a third for each of ours
        for third, w in enumerate(["att.W_query", "att.W_key", "att.W_value"]):
            weights[ours + w + ".weight"] = Source(
                gpt2 + "attn.c_attn.weight", transpose=True, third=third
            )
            weights[ours + w + ".bias"] = Source(gpt2 + "attn.c_attn.bias", third=third)
        # Conv1D keeps (in, out) where nn.Linear keeps (out, in): every matrix is transposed
        weights[ours + "att.out_proj.weight"] = Source(gpt2 + "attn.c_proj.weight", transpose=True)
        weights[ours + "att.out_proj.bias"] = Source(gpt2 + "attn.c_proj.bias")
        weights[ours + "norm2.scale"] = Source(gpt2 + "ln_2.weight")
        weights[ours + "norm2.shift"] = Source(gpt2 + "ln_2.bias")
        weights[ours + "ff.layers.0.weight"] = Source(gpt2 + "mlp.c_fc.weight", transpose=True)
        weights[ours + "ff.layers.0.bias"] = Source(gpt2 + "mlp.c_fc.bias")
        weights[ours + "ff.layers.2.weight"] = Source(gpt2 + "mlp.c_proj.weight", transpose=True)
        weights[ours + "ff.layers.2.bias"] = Source(gpt2 + "mlp.c_proj.bias")
    weights["final_norm.scale"] = Source("ln_f.weight")
    weights["final_norm.shift"] = Source("ln_f.bias")
    weights["out_head.weight"] = Source("wte.weight")  # tied: GPT-2's head *is* its embedding
    return weights
