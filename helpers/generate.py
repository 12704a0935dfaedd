"""Phase 06, decoding strategies: from always taking the likeliest token to controlled sampling.

``generate_text_simple`` (phase 05) is greedy: the same prompt always gives the same text, and
it tends to repeat itself. Sampling from the model's probabilities adds variety; three knobs
keep the variety sensible. One decoding step, in the order ``filter_logits`` applies them::

    top-k         keep only the k largest logits (the rest become -inf)
    temperature   divide the logits by T: T < 1 sharpens the distribution, T > 1 flattens it;
                  T = 0 is the limit where only the largest survives (greedy)
    top-p         keep the smallest set of likeliest tokens whose probabilities add up to p
    softmax       -> probabilities; torch.multinomial draws the next token from them

Top-k does not care about the temperature (dividing by T > 0 keeps the order of the logits);
top-p does, so it comes after the temperature.

Usage::

    torch.manual_seed(123)
    idx = text_to_token_ids("Every effort moves you", tokenizer)
    out = generate(model, idx, max_new_tokens=15, context_size=1024, temperature=1.4, top_k=25)
    print(token_ids_to_text(out, tokenizer))
"""

from __future__ import annotations

import numbers
import warnings
from contextlib import contextmanager, nullcontext
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .model import GELU, LayerNorm

__all__ = [
    "generate",
    "supports_kv_cache",
    "next_token_logits",
    "next_token_distribution",
    "softmax_with_temperature",
    "apply_top_k",
    "apply_top_p",
    "top_p_mask",
    "filter_logits",
    "sampling_distribution",
    "sample_next_token",
    "generated_tokens",
    "check_sampling_settings",
    "decoding_kernels",
    "SplitLinear",
    "PromptCroppedWarning",
]

# A running total of float32 probabilities is off by a few 1e-7 (0.7 + 0.1 = 0.79999999):
# top-p treats a total within this distance of p as having reached p.
TOP_P_TOLERANCE = 1e-6


class PromptCroppedWarning(UserWarning):
    """The prompt was longer than the context: only its last ``context_size`` tokens are used."""


# ---------------------------------------------------------------------------------------------
# Checking the settings
# ---------------------------------------------------------------------------------------------


def check_sampling_settings(temperature=0.0, top_k=None, top_p=None) -> float:
    """Raise a ``ValueError`` that says what to fix; return the temperature as a float.

    ``temperature``: a number >= 0, or ``None`` (same as 0, greedy). ``top_k``: ``None`` (off)
    or an integer >= 1. ``top_p``: ``None`` (off) or a number in (0, 1]; 1 keeps everything.
    """
    temperature = 0.0 if temperature is None else temperature
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}.")
    if not temperature >= 0:  # written this way so that NaN fails too
        raise ValueError(
            f"temperature must be >= 0 (0 = greedy, 1 = the model's own probabilities), "
            f"got {temperature!r}."
        )
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1
    ):
        raise ValueError(
            f"top_k must be an integer >= 1, or None to keep every token; got {top_k!r}."
        )
    if top_p is not None and (
        isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0 < top_p <= 1
    ):
        raise ValueError(
            f"top_p must be in (0, 1] (1 keeps every token), or None; got {top_p!r}."
        )
    return float(temperature)


# ---------------------------------------------------------------------------------------------
# One decoding step, on logits: pure functions
# ---------------------------------------------------------------------------------------------


def softmax_with_temperature(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``softmax(logits / temperature)`` over the last dimension.

    Temperature 1 gives the model's own probabilities; below 1 the likeliest token gains
    (0.1 is almost one-hot), above 1 the distribution flattens towards uniform. Temperature 0
    is the limit: all probability on the largest logit (the first one if several are equal,
    as ``argmax`` picks), which is what greedy decoding takes.
    """
    temperature = check_sampling_settings(temperature)
    logits = logits.float()  # low-precision (bfloat16) logits would round the probabilities
    if temperature == 0:
        return _one_hot_argmax(logits)
    return torch.softmax(logits / temperature, dim=-1)


def _one_hot_argmax(logits: torch.Tensor) -> torch.Tensor:
    probs = torch.zeros_like(logits, dtype=torch.float32)
    return probs.scatter_(-1, logits.argmax(dim=-1, keepdim=True), 1.0)


def apply_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set every logit below the k-th largest to -inf (per row, over the last dimension).

    Ties: every logit equal to the k-th largest value survives, so more than k tokens can
    remain (logits [1, 3, 3, 2] with k=1 keep both 3s). This rule depends only on the values,
    not on the order of the vocabulary, and it is the book's. ``k`` >= the vocabulary size
    keeps everything.
    """
    check_sampling_settings(top_k=k)
    if k >= logits.shape[-1]:
        return logits
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_mask(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Which tokens the nucleus keeps: ``True`` for the smallest set of likeliest tokens
    whose probabilities add up to at least ``p`` (per row, over the last dimension).

    Walk down the tokens from the likeliest and keep each one as long as the tokens before
    it add up to less than p: so the top token is always kept, and the token that makes the
    sum reach p is kept too. probs [0.5, 0.3, 0.15, 0.05]: p=0.8 keeps two, p=0.81 three.
    A sum within ``TOP_P_TOLERANCE`` of p counts as reaching it (float rounding). Equal
    probabilities at the border: the lower token id comes first. p=1 keeps every token.
    """
    check_sampling_settings(top_p=p)
    if p >= 1:
        return torch.ones_like(probs, dtype=torch.bool)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    # the sum of the tokens *before* each one; float64 so 50,257 small terms add up exactly
    before = sorted_probs.double().cumsum(dim=-1) - sorted_probs.double()
    keep_sorted = before < p - TOP_P_TOLERANCE
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def apply_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: set the logits of tokens outside ``top_p_mask`` to -inf.

    Takes logits (already divided by the temperature), so it chains with ``apply_top_k``;
    the probabilities it judges by are ``softmax(logits)``. For probabilities, pass
    ``probs.log()`` or use ``top_p_mask(probs, p)``.
    """
    check_sampling_settings(top_p=p)
    if p is None or p >= 1:
        return logits
    keep = top_p_mask(torch.softmax(logits.float(), dim=-1), p)
    return logits.masked_fill(~keep, float("-inf"))


def filter_logits(logits: torch.Tensor, temperature=1.0, top_k=None, top_p=None) -> torch.Tensor:
    """The logits one sampling step draws from: top-k, then ÷ temperature, then top-p.

    Tokens that cannot be drawn get -inf; ``torch.isfinite(result)`` says which remain.
    Temperature 0 (greedy) leaves only the largest logit (as 0, the rest -inf): top-k and
    top-p never remove the largest, so they change nothing then.
    """
    temperature = check_sampling_settings(temperature, top_k, top_p)
    logits = logits.float()
    if temperature == 0:
        return torch.log(_one_hot_argmax(logits))  # log 1 = 0, log 0 = -inf
    if top_k is not None:
        logits = apply_top_k(logits, top_k)  # on the raw logits, as the book does
    logits = logits / temperature
    if top_p is not None:
        logits = apply_top_p(logits, top_p)
    return logits


def sampling_distribution(
    logits: torch.Tensor, temperature=1.0, top_k=None, top_p=None
) -> torch.Tensor:
    """The probabilities a sampling step draws from: ``softmax(filter_logits(...))``.

    Filtered tokens get probability 0; the kept ones are renormalised to sum to 1.
    """
    return torch.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)


def sample_next_token(logits: torch.Tensor, temperature=0.0, top_k=None, top_p=None):
    """Pick the next token from logits (..., vocab): returns ids of shape (..., 1).

    Temperature 0 (or ``None``): the argmax, as ``generate_text_simple`` does; no random
    numbers are used. Otherwise one ``torch.multinomial`` draw per row from
    ``sampling_distribution``: it uses the global random generator, so ``torch.manual_seed``
    makes the draws repeatable.
    """
    temperature = check_sampling_settings(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    probs = sampling_distribution(logits, temperature, top_k, top_p)
    flat = probs.reshape(-1, probs.shape[-1])  # multinomial takes one or two dimensions
    return torch.multinomial(flat, num_samples=1).reshape(*probs.shape[:-1], 1)


# ---------------------------------------------------------------------------------------------
# Running the model
# ---------------------------------------------------------------------------------------------


@contextmanager
def _evaluating(model: nn.Module):
    """``model.eval()`` and no gradients for the block; afterwards every submodule gets its
    own previous mode back (some may have been in eval mode on purpose, e.g. frozen parts)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def _check_prompt(idx: torch.Tensor, context_size: int) -> torch.Tensor:
    """Validate a (batch, n) prompt; crop it to the context with a notice if it is too long."""
    if not isinstance(context_size, numbers.Integral) or context_size < 1:
        raise ValueError(f"context_size must be a positive integer, got {context_size!r}.")
    if idx.dim() != 2:
        raise ValueError(
            f"idx must hold token ids of shape (batch, n_tokens), got shape {tuple(idx.shape)}; "
            "for a single sequence add a batch dimension with .unsqueeze(0)."
        )
    if idx.shape[1] == 0:
        raise ValueError(
            "The prompt is empty (0 tokens): the model needs at least one token to predict the "
            "next. Start from some text, or from the <|endoftext|> token (50256 for GPT-2)."
        )
    if idx.shape[1] > context_size:
        warnings.warn(
            f"The prompt has {idx.shape[1]} tokens, more than the context of {context_size}: "
            f"only its last {context_size} tokens are used.",
            PromptCroppedWarning,
            stacklevel=3,
        )
        idx = idx[:, -context_size:]
    return idx


def _as_batch_of_one(idx) -> torch.Tensor:
    idx = idx if isinstance(idx, torch.Tensor) else torch.tensor(list(idx), dtype=torch.long)
    if idx.dim() == 1:
        idx = idx.unsqueeze(0)
    if idx.dim() != 2 or idx.shape[0] != 1:
        raise ValueError(
            f"Expected one sequence of token ids, (n,) or (1, n), got shape {tuple(idx.shape)}."
        )
    return idx


def next_token_logits(model: nn.Module, idx, context_size: int) -> torch.Tensor:
    """The model's raw scores (vocab,) for the token after one sequence of ids.

    ``idx``: a list, (n,) or (1, n) tensor; longer than ``context_size`` is cropped to its
    last ``context_size`` tokens (with a ``PromptCroppedWarning``). Runs in eval mode.
    """
    idx = _check_prompt(_as_batch_of_one(idx), context_size)
    device = next((p.device for p in model.parameters()), idx.device)
    with _evaluating(model):
        return model(idx.to(device))[0, -1, :].float().cpu()


def next_token_distribution(
    model: nn.Module, idx, context_size: int, temperature=1.0, top_k=None, top_p=None
) -> torch.Tensor:
    """The probabilities (vocab,) that ``generate`` would draw the next token from.

    Temperature 1 without top-k/top-p is the model's own distribution; temperature 0 puts
    everything on the greedy choice.
    """
    logits = next_token_logits(model, idx, context_size)
    return sampling_distribution(logits, temperature, top_k, top_p)


def supports_kv_cache(model: nn.Module) -> bool:
    """Whether ``model`` has a KV cache (``GPTModel`` does; a scripted test model may not)."""
    return callable(getattr(model, "reset_kv_cache", None))


# ---------------------------------------------------------------------------------------------
# One-token steps: the same maths with fewer, faster kernels
# ---------------------------------------------------------------------------------------------

# A cached step pushes one vector per row of the batch through the model, so its cost is not
# arithmetic but (1) reading every weight once and (2) launching many tiny operations. Two
# changes of *how* the maths runs, not of what it computes, help both:
#
# - The book's LayerNorm and GELU spell their formulas out in six to eight tensor operations
#   each; F.layer_norm and F.gelu(approximate="tanh") compute the same formulas in one.
# - On a CPU, PyTorch hands a one-row product ``x @ W.T`` to its BLAS library, which
#   (measured on a 2-core AMD machine with PyTorch 2.13's MKL) runs it on one core, at about
#   half the memory bandwidth. A *batched* product of the same numbers uses every core, so
#   each large nn.Linear splits its weight's rows into one block per thread
#   (``SplitLinear``).
#
# Together ~1.6x faster per step here (benchmarks/generation.py measures the whole loop).
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

        with torch.no_grad(), decoding_kernels(model):
            logits = model(next_token, use_cache=True)
    """
    blocks = torch.get_num_threads() if blocks is None else blocks
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


class _NextTokenLogits:
    """The logits (batch, vocab) for the token after ``idx[:, -context_size:]``, step by step.

    Without the cache, every step runs the model over the whole window. With it, the model
    only sees the tokens it has not cached yet: the prompt at the first step, then one token.

    Past the context: once the text is longer than ``context_size``, the window slides and
    every token in it moves to a lower position. GPT-2's position embeddings are added to
    the input, so every cached key and value (in every layer) depends on its token's old
    position, and deeper layers on tokens that have left the window: a sliding cache would
    give other logits than the model computes on the window. So from then on each step
    recomputes the window in full, exactly what the cache-free loop does.
    """

    def __init__(self, model: nn.Module, context_size: int, use_cache: bool):
        self.model = model
        self.context_size = context_size
        self.use_cache = use_cache and supports_kv_cache(model)
        if self.use_cache:
            model.reset_kv_cache()  # nothing left over from an earlier text

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        if not self.use_cache or idx.shape[1] > self.context_size:
            if self.use_cache:
                self.model.reset_kv_cache()  # stale: the positions have shifted
            return self.model(idx[:, -self.context_size :])[:, -1, :]
        new_tokens = idx[:, self.model.kv_cache_length :]
        return self.model(new_tokens, use_cache=True)[:, -1, :]

    def close(self) -> None:
        if self.use_cache:
            self.model.reset_kv_cache()  # frees the memory


def generate(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    context_size: int,
    temperature: float | None = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    *,
    use_cache: bool = True,
) -> torch.Tensor:
    """Append up to ``max_new_tokens`` tokens to each row of ``idx`` (batch, n).

    Each step feeds the last ``context_size`` tokens to the model and picks the next token
    with ``sample_next_token``: greedy at temperature 0 (the default; the same tokens as
    ``generate_text_simple``), otherwise drawn at random after top-k, temperature and top-p
    (seed with ``torch.manual_seed`` to repeat a run). A prompt longer than ``context_size``
    is cropped once at the start, with a ``PromptCroppedWarning``; the result holds the
    cropped prompt.

    ``eos_id``: each row stops on its own when it produces this token. The token is kept
    and every later position of that row is ``eos_id`` too (padding, so the batch stays
    one tensor); the loop ends early once every row has stopped. So the result can be
    shorter than n + max_new_tokens. (The book's version, for one row, stops *before*
    appending the end token.) ``generated_tokens`` cuts each row at its end token.

    ``use_cache``: reuse the keys and values of earlier tokens (the model's KV cache, if it
    has one), so each step computes one token instead of the whole window; the tokens are
    the same as with ``use_cache=False``, only faster. Once the text outgrows
    ``context_size``, every step recomputes the window (see ``_NextTokenLogits``). The
    cached steps run with ``decoding_kernels``: fused LayerNorm and GELU, and on a CPU,
    matrix-vector products split over the cores.

    Runs the model in eval mode without gradients; its previous mode is restored after.
    Returns a (batch, n + generated) tensor of token ids.
    """
    temperature = check_sampling_settings(temperature, top_k, top_p)
    if not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}.")
    idx = _check_prompt(idx, context_size)
    with _evaluating(model):
        next_logits = _NextTokenLogits(model, context_size, use_cache)
        # one-token steps: the same maths, with fewer and (on a CPU) core-parallel kernels
        kernels = decoding_kernels(model) if next_logits.use_cache else nullcontext()
        try:
            with kernels:
                idx = _decode(next_logits, idx, max_new_tokens, temperature, top_k, top_p, eos_id)
        finally:
            next_logits.close()
    return idx


def _decode(next_logits, idx, max_new_tokens, temperature, top_k, top_p, eos_id):
    """The loop of ``generate``: append one token per step to every row of ``idx``."""
    finished = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
    for _ in range(max_new_tokens):
        logits = next_logits(idx)
        idx_next = sample_next_token(logits, temperature, top_k, top_p).to(idx.device)
        if eos_id is not None:
            # rows that already ended get padding, whatever the model would say
            idx_next = idx_next.masked_fill(finished.unsqueeze(1), eos_id)
            finished |= idx_next.squeeze(1) == eos_id
        idx = torch.cat((idx, idx_next), dim=1)
        if finished.all():
            break
    return idx


def generated_tokens(out: torch.Tensor, prompt_length: int, eos_id: int | None = None):
    """The new token ids of each row of ``generate``'s output, as lists, each cut just
    before its first ``eos_id`` (so the padding and the end token itself are dropped)."""
    rows = []
    for row in out[:, prompt_length:].tolist():
        if eos_id is not None and eos_id in row:
            row = row[: row.index(eos_id)]
        rows.append(row)
    return rows


if __name__ == "__main__":  # usage example: python -m helpers.generate
    # The book's toy example: nine words, the logits a model gave for the next one.
    vocab = ["closer", "every", "effort", "forward", "inches", "moves", "pizza", "toward", "you"]
    logits = torch.tensor([4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79])
    for t in (1, 0.1, 5):
        probs = softmax_with_temperature(logits, t)
        print(f"T={t:<4}", " ".join(f"{w}={p:.3f}" for w, p in zip(vocab, probs.tolist())))
    print("top-k 3 keeps:", [vocab[i] for i in torch.isfinite(apply_top_k(logits, 3)).nonzero()])
    torch.manual_seed(123)
    draws = [sample_next_token(logits, temperature=1.0).item() for _ in range(1000)]
    print({word: draws.count(i) for i, word in enumerate(vocab)})
