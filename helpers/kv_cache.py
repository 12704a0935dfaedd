"""Phase 06, the KV cache: generate one token per step instead of recomputing the whole text.

A causal model's keys and values for a token depend only on the tokens before it, so once
computed they never change. ``CachedGPT(model)`` keeps every layer's keys and values
(``KVCache``) and, at each call, runs only the *new* tokens through the model's own
modules, with their queries attending to everything stored. Nothing is copied: the same
``GPTModel`` (same parameters, same state dict) works with and without a cache.

    cached = CachedGPT(model)          # an empty cache for this model
    logits = cached(prompt_ids)        # the prompt's keys and values go into the cache
    logits = cached(next_id)           # one token in: (batch, 1, vocab) out
    cached.length                      # tokens cached so far: the next token's position

The cache holds at most ``context_length`` tokens (there are no positions beyond).
``generate`` (``helpers.generate``) uses a cache by default, through ``NextTokenLogits``.

Works on any model with the book's layout (``tok_emb``, ``pos_emb``, ``trf_blocks`` of
``norm1``/``att``/``drop_shortcut``/``norm2``/``ff``, ``final_norm``, ``out_head``): ours,
the book's own ``GPTModel``, and LoRA-wrapped or classification versions of either.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .decoding_kernels import decoding_kernels
from .model import check_ids_in_vocabulary

__all__ = ["KVCache", "CachedGPT", "cached_attention", "supports_kv_cache", "NextTokenLogits"]


class KVCache:
    """One attention layer's keys and values so far, (batch, num_heads, tokens, head_dim).

    Allocated once for ``capacity`` tokens and filled from the left, so appending a token
    writes one slot (``torch.cat`` would copy the whole cache at every step).
    """

    def __init__(self, like: torch.Tensor, capacity: int):
        batch, heads, _, head_dim = like.shape
        self.keys = like.new_empty(batch, heads, capacity, head_dim)
        self.values = like.new_empty(batch, heads, capacity, head_dim)
        self.length = 0

    def append(self, keys: torch.Tensor, values: torch.Tensor):
        """Store the new tokens' keys and values; return those of every token so far."""
        start, end = self.length, self.length + keys.shape[2]
        self.keys[:, :, start:end] = keys
        self.values[:, :, start:end] = values
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


def _split_heads(att: nn.Module, t: torch.Tensor) -> torch.Tensor:
    """(b, n, d_out) -> (b, num_heads, n, head_dim), as ``MultiHeadAttention.split_heads``
    (spelt out here so the book's own module, which has no such method, works too)."""
    b, num_tokens, _ = t.shape
    return t.view(b, num_tokens, att.num_heads, att.head_dim).transpose(1, 2)


def cached_attention(att: nn.Module, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """``att(x)`` for new tokens ``x`` that follow the ones in ``cache``; adds theirs to it."""
    b, num_new, _ = x.shape
    queries = _split_heads(att, att.W_query(x))
    keys, values = cache.append(_split_heads(att, att.W_key(x)), _split_heads(att, att.W_value(x)))
    # The new tokens are the last of the cached ones: one token may see every key (no mask);
    # several need the bottom rows of the causal mask (SDPA's is_causal aligns it top-left).
    num_all = keys.shape[2]
    allowed = None if num_new == 1 else att.mask[num_all - num_new : num_all, :num_all] == 0
    context = F.scaled_dot_product_attention(queries, keys, values, attn_mask=allowed)
    context = context.transpose(1, 2).reshape(b, num_new, att.num_heads * att.head_dim)
    return att.out_proj(context)


class CachedGPT:
    """A GPT model plus one ``KVCache`` per layer: call it with the tokens that come next.

    Holds a reference to the model, never a copy. For inference: run it under
    ``torch.no_grad()`` with the model in eval mode (dropout would make the cache stale).
    """

    def __init__(self, model: nn.Module):
        if not supports_kv_cache(model):
            raise ValueError(
                f"CachedGPT needs a model with GPTModel's layout (tok_emb, pos_emb, trf_blocks, "
                f"final_norm, out_head); {type(model).__name__} does not have it."
            )
        self.model = model
        self.context_length = model.pos_emb.weight.shape[0]
        self.caches: list[KVCache | None] = [None] * len(model.trf_blocks)
        self.length = 0  # tokens cached: the position the next token gets

    def reset(self) -> None:
        """Forget every cached token (before a new text, or to free the memory)."""
        self.caches = [None] * len(self.caches)
        self.length = 0

    def __call__(self, new_ids: torch.Tensor) -> torch.Tensor:
        """Logits (batch, new tokens, vocab) for ``new_ids``, the tokens after the cached ones."""
        self._check(new_ids)
        model = self.model
        num_new = new_ids.shape[1]
        positions = torch.arange(self.length, self.length + num_new, device=new_ids.device)
        x = model.drop_emb(model.tok_emb(new_ids) + model.pos_emb(positions))
        for i, block in enumerate(model.trf_blocks):
            if self.caches[i] is None:
                keys_like = x.new_empty(x.shape[0], block.att.num_heads, 0, block.att.head_dim)
                self.caches[i] = KVCache(keys_like, capacity=self.context_length)
            x = x + block.drop_shortcut(cached_attention(block.att, block.norm1(x), self.caches[i]))
            x = x + block.drop_shortcut(block.ff(block.norm2(x)))
        self.length += num_new
        return model.out_head(model.final_norm(x))

    def _check(self, new_ids: torch.Tensor) -> None:
        if not isinstance(new_ids, torch.Tensor) or new_ids.dim() != 2 or new_ids.shape[1] == 0:
            raise ValueError(
                f"CachedGPT expects token ids of shape (batch, n_new) with n_new >= 1, got "
                f"{tuple(getattr(new_ids, 'shape', ()))}; for one sequence add a batch "
                "dimension: .unsqueeze(0)."
            )
        check_ids_in_vocabulary(new_ids, self.model.tok_emb.num_embeddings)
        if self.length + new_ids.shape[1] > self.context_length:
            raise ValueError(
                f"The KV cache holds {self.length} tokens; {new_ids.shape[1]} more would pass "
                f"the context length of {self.context_length}. Call reset() and feed the last "
                f"{self.context_length} tokens again."
            )
        cache = self.caches[0]
        if cache is not None and (
            cache.keys.shape[0] != new_ids.shape[0] or cache.keys.device != new_ids.device
        ):
            raise ValueError(
                f"The KV cache holds a batch of {cache.keys.shape[0]} on {cache.keys.device}, "
                f"but these ids are a batch of {new_ids.shape[0]} on {new_ids.device}: call "
                "reset() before starting a new batch."
            )


_LAYOUT = ("tok_emb", "pos_emb", "drop_emb", "trf_blocks", "final_norm", "out_head")
_BLOCK_LAYOUT = ("norm1", "att", "drop_shortcut", "norm2", "ff")
_ATTENTION_LAYOUT = ("W_query", "W_key", "W_value", "out_proj", "num_heads", "head_dim", "mask")


def supports_kv_cache(model: nn.Module) -> bool:
    """Whether ``model`` has GPTModel's layout, which ``CachedGPT`` runs piece by piece."""
    blocks = getattr(model, "trf_blocks", None)
    return (
        all(hasattr(model, name) for name in _LAYOUT)
        and isinstance(blocks, nn.Sequential)
        and len(blocks) > 0
        and all(
            all(hasattr(block, name) for name in _BLOCK_LAYOUT)
            and all(hasattr(block.att, name) for name in _ATTENTION_LAYOUT)
            for block in blocks
        )
    )


class NextTokenLogits:
    """The logits (batch, vocab) for the token after ``idx[:, -context_size:]``, step by step.

    With ``use_cache`` (and a model that supports it), only the tokens not cached yet go
    through the model, with ``decoding_kernels`` on: the prompt at the first step, then one
    token. Without, every step runs the model over the whole window.

    Past the context, the window slides and every token in it moves to a lower position.
    GPT-2 adds position embeddings to the input, so every cached key and value depends on
    its token's old position: a sliding cache would give other logits than the model
    computes on the window. So from then on each step recomputes the window in full,
    exactly what the cache-free loop does.

    A context manager: leaving it empties the cache (frees its memory) and puts the
    model's own kernels back.
    """

    def __init__(self, model: nn.Module, context_size: int, use_cache: bool = True):
        self.model, self.context_size = model, context_size
        self.cached = CachedGPT(model) if use_cache and supports_kv_cache(model) else None
        _check_context_size(model, context_size)
        self.kernels = decoding_kernels(model) if self.cached is not None else None

    def __enter__(self) -> NextTokenLogits:
        if self.kernels is not None:
            self.kernels.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.cached is not None:
            self.cached.reset()
        if self.kernels is not None:
            self.kernels.__exit__(*exc)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        if self.cached is None or idx.shape[1] > self.context_size:
            if self.cached is not None:
                self.cached.reset()  # stale: the positions have shifted
            return self.model(idx[:, -self.context_size :])[:, -1, :]
        return self.cached(idx[:, self.cached.length :])[:, -1, :]


def _check_context_size(model: nn.Module, context_size: int) -> None:
    """Refuse a window longer than the model's position embedding before the first step:
    otherwise generation fails only once the text has grown past the model's context."""
    pos_emb = getattr(model, "pos_emb", None)
    if isinstance(pos_emb, nn.Embedding) and context_size > pos_emb.num_embeddings:
        raise ValueError(
            f"context_size {context_size} is larger than this model's context length of "
            f"{pos_emb.num_embeddings}: it has no positions beyond. Pass "
            f"context_size={pos_emb.num_embeddings} or less."
        )
