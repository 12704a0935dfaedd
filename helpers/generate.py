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

``generate(model, idx, max_new_tokens, context_size, temperature, top_k, top_p, eos_id)``
runs that step in a loop, in eval mode without gradients (the model's own mode comes back
after). Details:

- Greedy (temperature 0, the default) gives the same tokens as ``generate_text_simple``;
  sampling uses torch's global generator, so ``torch.manual_seed`` repeats a run.
- A prompt longer than ``context_size`` is cropped once, with a ``PromptCroppedWarning``;
  the result holds the cropped prompt.
- ``eos_id``: each row stops on its own when it produces this token; the token is kept, and
  the row's later positions are ``eos_id`` too, so the batch stays one tensor; the loop ends
  once every row has stopped (the book's version, for one row, stops *before* appending the
  end token). ``generated_tokens`` cuts each row at its end token.
- ``use_cache=True`` (the default): only the new tokens go through the model, with its KV
  cache and the decoding kernels (``helpers.kv_cache.NextTokenLogits``); the tokens are the
  same as with ``use_cache=False``, only faster.

Usage::

    torch.manual_seed(123)
    idx = text_to_token_ids("Every effort moves you", tokenizer)
    out = generate(model, idx, max_new_tokens=15, context_size=1024, temperature=1.4, top_k=25)
    print(token_ids_to_text(out, tokenizer))
"""

from __future__ import annotations

import math
import numbers
import warnings

import torch
from torch import nn

from .decoding_kernels import SplitLinear, decoding_kernels
from .kv_cache import NextTokenLogits, supports_kv_cache
from .model import check_ids_in_vocabulary, head_outputs
from .runtime import eval_mode, model_device
from .validate import check_int

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
    "check_eos_id",
    "check_logits",
    "decoding_kernels",
    "SplitLinear",
    "PromptCroppedWarning",
]

# A running total of float32 probabilities is off by a few 1e-7 (0.7 + 0.1 = 0.79999999):
# top-p treats a total within this distance of p as having reached p.
TOP_P_TOLERANCE = 1e-6
# Dividing logits by a temperature below this overflows float32 to inf (and softmax to NaN);
# anything this cold is greedy decoding anyway, which temperature 0 does exactly.
MIN_TEMPERATURE = 1e-6


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
    if not (temperature == 0 or MIN_TEMPERATURE <= temperature < math.inf):  # NaN fails too
        raise ValueError(
            f"temperature must be >= 0 (0 = greedy, 1 = the model's own probabilities) and "
            f"finite, and if not 0 at least {MIN_TEMPERATURE}; got {temperature!r}."
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


def check_eos_id(eos_id, vocab_size: int | None = None) -> None:
    """Refuse an ``eos_id`` that no step could produce: generation would never stop on it."""
    if eos_id is None:
        return
    if isinstance(eos_id, bool) or not isinstance(eos_id, numbers.Integral):
        raise ValueError(
            f"eos_id must be a token id (an int, such as 50256 for GPT-2's <|endoftext|>) or "
            f"None, got {eos_id!r} ({type(eos_id).__name__})."
        )
    if eos_id < 0 or (vocab_size is not None and eos_id >= vocab_size):
        top = "" if vocab_size is None else f"..{vocab_size - 1}"
        raise ValueError(
            f"eos_id {eos_id} is outside this model's vocabulary (0{top}): generation would "
            "never stop on it. Use the end-of-text id of the tokenizer the model was trained with."
        )


def check_logits(logits: torch.Tensor) -> None:
    """Refuse logits with NaN or +inf: a sampled or greedy token from them means nothing.

    One max per step (NaN wins a max, and so does +inf); generation reads a value back at
    every step anyway.
    """
    if logits.numel() and not bool(logits.max() < math.inf):
        raise ValueError(
            "The model's outputs are NaN or infinite (diverged training?): nothing can be "
            "sampled from them. Load an earlier checkpoint, or train again with a lower "
            "learning rate (in float16, try bfloat16 or float32)."
        )


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
    keep_sorted[..., 0] = True  # the likeliest token, even for a p below the tolerance
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
    check_logits(logits)
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
        check_logits(logits)
        return logits.argmax(dim=-1, keepdim=True)
    probs = sampling_distribution(logits, temperature, top_k, top_p)
    flat = probs.reshape(-1, probs.shape[-1])  # multinomial takes one or two dimensions
    return torch.multinomial(flat, num_samples=1).reshape(*probs.shape[:-1], 1)


# ---------------------------------------------------------------------------------------------
# Running the model
# ---------------------------------------------------------------------------------------------


def _check_prompt(
    idx: torch.Tensor, context_size: int, max_new_tokens: int = 0, model=None, eos_id=None
) -> torch.Tensor:
    """Validate a (batch, n) prompt (given the model, its ids and ``eos_id`` against the
    vocabulary, before any work); crop it to the context with a notice if it is too long."""
    check_int(max_new_tokens, "max_new_tokens", minimum=0)
    check_int(context_size, "context_size", minimum=1)
    if not isinstance(idx, torch.Tensor):
        raise ValueError(
            f"idx must be a tensor of token ids, got a {type(idx).__name__}; make one with "
            "torch.tensor([ids]) or text_to_token_ids(text, tokenizer)."
        )
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
    vocab_size = _check_against_model(model)
    if vocab_size is not None:
        check_ids_in_vocabulary(idx, vocab_size)
    check_eos_id(eos_id, vocab_size)
    if idx.shape[1] > context_size:
        warnings.warn(
            f"The prompt has {idx.shape[1]} tokens, more than the context of {context_size}: "
            f"only its last {context_size} tokens are used.",
            PromptCroppedWarning,
            stacklevel=3,
        )
        idx = idx[:, -context_size:]
    return idx


def _check_against_model(model) -> int | None:
    """The model's vocabulary size (``None`` if it does not say), after refusing an output
    head that does not score tokens. (``NextTokenLogits`` checks ``context_size``.)"""
    if model is None or not hasattr(model, "tok_emb"):
        return None
    vocab_size = model.tok_emb.num_embeddings
    # one score per token, or the model is a classifier (a padded head reports its vocab_size)
    outputs = head_outputs(model)
    if outputs is not None and outputs != vocab_size:
        raise ValueError(
            f"This model's out_head gives {outputs} outputs, not one per token of its "
            f"{vocab_size}-token vocabulary: it is a classifier (add_classification_head), "
            "and cannot generate text. Use the model from before the head was replaced."
        )
    return vocab_size


def _as_batch_of_one(idx) -> torch.Tensor:
    if not isinstance(idx, torch.Tensor):
        try:  # no dtype forced: floats stay floats, to be refused rather than truncated
            idx = torch.tensor(list(idx))
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"Expected token ids (a list of ints or a tensor), got {idx!r:.80}."
            ) from None
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
    idx = _check_prompt(_as_batch_of_one(idx), context_size, model=model)
    device = model_device(model, default=idx.device)
    with eval_mode(model):
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
    """Append up to ``max_new_tokens`` tokens to each row of ``idx`` (batch, n), one per step:
    greedy at temperature 0, else drawn after top-k, temperature and top-p.

    A row that produces ``eos_id`` stops; its later positions repeat ``eos_id`` as padding.
    """
    temperature = check_sampling_settings(temperature, top_k, top_p)
    idx = _check_prompt(idx, context_size, max_new_tokens, model, eos_id)
    finished = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
    with eval_mode(model), NextTokenLogits(model, context_size, use_cache) as next_logits:
        for _ in range(max_new_tokens):
            logits = next_logits(idx)  # (batch, vocab): the scores for the next token
            idx_next = sample_next_token(logits, temperature, top_k, top_p).to(idx.device)
            if eos_id is not None:  # rows that have ended get eos_id as padding
                idx_next = idx_next.masked_fill(finished.unsqueeze(1), eos_id)
                finished |= idx_next.squeeze(1) == eos_id
            idx = torch.cat((idx, idx_next), dim=1)
            if finished.all():
                break
    return idx


def generated_tokens(out: torch.Tensor, prompt_length: int, eos_id: int | None = None):
    """The new token ids of each row of ``generate``'s output, as lists, each cut just
    before its first ``eos_id`` (so the padding and the end token itself are dropped)."""
    check_int(prompt_length, "prompt_length", minimum=0, maximum=out.shape[1])
    check_eos_id(eos_id)
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
