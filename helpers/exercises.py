"""Checkers for the exercises at the end of each notebook.

Each checker takes the student's answer and returns a ``Feedback`` that shows at once whether
it is right, with a hint when it is not. A checker never raises on a wrong answer: a wrong
answer is part of learning, not an error. An answer left as ``None`` gets a reminder.
"""

from __future__ import annotations

import contextlib
import functools
import html
import math
import numbers
import random
from dataclasses import dataclass


@dataclass
class Feedback:
    correct: bool | None  # None: not answered yet
    message: str

    def __bool__(self) -> bool:
        return bool(self.correct)

    @property
    def symbol(self) -> str:
        return {True: "✅ Correct", False: "❌ Not yet", None: "✋ Not answered"}[self.correct]

    def __repr__(self) -> str:
        return f"{self.symbol}: {self.message}"

    def _repr_html_(self) -> str:
        colour = {True: "#1e7d32", False: "#b3261e", None: "#555"}[self.correct]
        return (
            f'<div style="border-left:4px solid {colour};padding:4px 10px">'
            f'<b style="color:{colour}">{self.symbol}</b>: {html.escape(self.message)}</div>'
        )


def _unanswered(answer) -> Feedback | None:
    if answer is None or answer is ...:
        return Feedback(None, "replace the None with your answer and run the cell again.")
    return None


def _short(value) -> str:
    """An argument as the feedback shows it: tensors by shape, long lists cut."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"<tensor of shape {tuple(value.shape)}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _try(fn, *args):
    """Run the student's function; a Feedback instead of a crash when it fails."""
    call = f"{getattr(fn, '__name__', 'your function')}({', '.join(map(_short, args))})"
    try:
        result = fn(*args)
    except Exception as err:  # the student's code may fail; say how
        return None, Feedback(False, f"{call} raised {type(err).__name__}: {err}")
    if result is None:
        return None, Feedback(False, f"{call} returned None: is the body written, with a `return`?")
    return result, None


def _as_float(value) -> float:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise Unreadable(f"{_short(value)} is not a number: write it as one, e.g. 0.5.")
    return float(value)


def _close(a, b, tol=1e-3) -> bool:
    return math.isclose(_as_float(a), b, abs_tol=tol)


class Unreadable(ValueError):
    """An answer of a form the checker cannot compare (a string for a number, 6.5 for a
    count): reported as feedback, never raised to the student."""


def never_raises(checker):
    """Wrap a checker so that any answer, however malformed, gives a ``Feedback``."""

    @functools.wraps(checker)
    def check(*answers):
        try:
            return checker(*answers)
        except Unreadable as err:
            return Feedback(False, str(err))
        except Exception as err:  # a form nobody foresaw: still feedback, not a traceback
            shown = ", ".join(map(_short, answers))
            return Feedback(False, f"could not check {shown} ({type(err).__name__}: {err}).")

    return check


def _whole(value) -> int:
    """A count as an int: 5, 5.0 or a one-element integer tensor; not 6.5, "5" or True,
    which ``int()`` would quietly turn into a right answer."""
    if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Unreadable(f"{_short(value)} is not a number: write it as one, e.g. 42.")
    if not math.isfinite(value) or value != int(value):
        raise Unreadable(f"{_short(value)} is not a whole number: a count has no fraction.")
    return int(value)


def _shape(value) -> tuple[int, ...]:
    """A shape as a tuple of ints: (4, 2, 5), [4, 2, 5] or a torch.Size; not "(4, 2, 5)" or 4."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise Unreadable(f"{_short(value)} is not a shape: write it as a tuple, e.g. (2, 3).")
    return tuple(_whole(size) for size in value)


# --- 00 basic concepts ------------------------------------------------------------------------

GRADIENT_EXERCISE = dict(x=2.0, y=0.0, w=-0.5, b=0.5)


@never_raises
def check_gradients(dL_dw, dL_db) -> Feedback:
    """00, exercise 1: the gradients of the logistic-regression loss at GRADIENT_EXERCISE."""
    for answer in (dL_dw, dL_db):
        if (missing := _unanswered(answer)) is not None:
            return missing
    p = GRADIENT_EXERCISE
    a = 1 / (1 + math.exp(-(p["x"] * p["w"] + p["b"])))
    want_w, want_b = (a - p["y"]) * p["x"], a - p["y"]
    if _close(dL_dw, want_w) and _close(dL_db, want_b):
        return Feedback(True, f"∂L/∂w = {want_w:.4f} and ∂L/∂b = {want_b:.4f}.")
    if _close(dL_dw, -want_w) and _close(dL_db, -want_b):
        return Feedback(False, "right size, wrong sign: dL/dz = a - y (prediction minus label).")
    if _close(dL_db, want_b):
        return Feedback(False, "∂L/∂b is right; ∂L/∂w is ∂L/∂z times ∂z/∂w, and ∂z/∂w = x.")
    return Feedback(False, "compute z = x·w + b, a = σ(z); then ∂L/∂z = a - y.")


@never_raises
def check_matmul_shape(shape) -> Feedback:
    """00, exercise 2: the shape of ``torch.rand(4, 2, 3) @ torch.rand(3, 5)``."""
    if (missing := _unanswered(shape)) is not None:
        return missing
    answer = _shape(shape)
    if answer == (4, 2, 5):
        return Feedback(True, "(4, 2, 5): the batch dimension 4 is kept, (2, 3) @ (3, 5) -> (2, 5).")
    if answer == (2, 5):
        return Feedback(False, "the inner matmul is right, but the leading dimension 4 stays.")
    return Feedback(False, "matmul contracts the last dimension of the left with the first of the right.")


@never_raises
def check_parameter_count(count) -> Feedback:
    """00, exercise 3: trainable parameters of ``SimpleNet(10, 2)``."""
    if (missing := _unanswered(count)) is not None:
        return missing
    want = (10 * 30 + 30) + (30 * 20 + 20) + (20 * 2 + 2)
    if _whole(count) == want:
        return Feedback(True, f"{want:,} = (10·30 + 30) + (30·20 + 20) + (20·2 + 2).")
    if _whole(count) == 10 * 30 + 30 * 20 + 20 * 2:
        return Feedback(False, "you counted the weights; each Linear layer also has one bias per output.")
    return Feedback(False, "each nn.Linear(n_in, n_out) has n_in·n_out weights plus n_out biases.")


# --- 01 tokenizing ------------------------------------------------------------------------------

@never_raises
def check_merge_function(merge) -> Feedback:
    """01, exercise 1: ``merge(ids, pair, new_id)`` replaces each occurrence of ``pair``."""
    if (missing := _unanswered(merge)) is not None:
        return missing
    from .tokenizer import merge_pair
    cases = [
        ([1, 2, 3, 1, 2], (1, 2), 99),
        ([5, 5, 5], (5, 5), 7),  # overlapping: left to right gives [7, 5]
        ([], (1, 2), 3),
        ([1], (1, 2), 3),
        ([1, 3, 2], (1, 2), 3),
    ]
    rng = random.Random(0)
    cases += [([rng.randrange(4) for _ in range(12)], (rng.randrange(4), rng.randrange(4)), 9) for _ in range(20)]
    for ids, pair, new_id in cases:
        want = merge_pair(ids, pair, new_id)
        got, failed = _try(merge, list(ids), pair, new_id)
        if failed is not None:
            return failed
        if list(got) != want:
            return Feedback(False, f"merge({ids}, {pair}, {new_id}) gave {list(got)}, expected {want}.")
    return Feedback(True, f"all {len(cases)} cases pass, including the overlapping [5, 5, 5].")


@never_raises
def check_pair_counts(count_pairs) -> Feedback:
    """01, exercise 2: ``count_pairs(ids)`` -> {pair: count} of adjacent pairs."""
    if (missing := _unanswered(count_pairs)) is not None:
        return missing
    from collections import Counter

    rng = random.Random(1)
    cases = [[1, 2, 3, 1, 2], [5, 5, 5], [], [7]] + [[rng.randrange(5) for _ in range(15)] for _ in range(10)]
    for ids in cases:
        want = Counter(zip(ids, ids[1:]))
        got, failed = _try(count_pairs, list(ids))
        if failed is not None:
            return failed
        if dict(got) != dict(want):
            return Feedback(False, f"count_pairs({ids}) gave {dict(got)}, expected {dict(want)}.")
    return Feedback(True, "adjacent pairs counted right; this is the inner loop of BPE training.")


@never_raises
def check_three_token_word(word) -> Feedback:
    """01, exercise 3: a single word (no spaces) that GPT-2 splits into at least 3 tokens."""
    if (missing := _unanswered(word)) is not None:
        return missing
    from .tokenizer import gpt2_tokenizer

    if not isinstance(word, str) or not word.isalpha():
        return Feedback(False, "give one word made of letters, as a string, e.g. \"tokenizer\".")
    tokenizer = gpt2_tokenizer()
    # mid-sentence a word comes with its leading space, and GPT-2 learnt most words that way
    ids = tokenizer.encode(" " + word, disallowed_special=())
    pieces = [tokenizer.decode([i]) for i in ids]
    alone = len(tokenizer.encode(word, disallowed_special=()))
    note = f" (alone, without the space, {alone})" if alone != len(ids) else ""
    if len(ids) >= 3:
        return Feedback(True, f"' {word}' mid-sentence -> {len(ids)} tokens {pieces}{note}.")
    return Feedback(False, f"' {word}' mid-sentence is only {len(ids)} token(s) {pieces}{note}: try a rarer or longer word.")


# --- 02 data sampling ---------------------------------------------------------------------------

@never_raises
def check_num_windows(count) -> Feedback:
    """02, exercise 1: windows from 100 tokens with max_length=8, stride=4."""
    if (missing := _unanswered(count)) is not None:
        return missing
    want = len(range(0, 100 - 8, 4))
    if _whole(count) == want:
        return Feedback(True, f"{want}: starts 0, 4, …, 88; a window at 92 would need token 100 as a target.")
    if _whole(count) == len(range(0, 100 - 8 + 1, 4)):
        return Feedback(False, "one too many: the targets reach one token past the input window.")
    return Feedback(False, "starts run 0, stride, 2·stride, … while start + max_length + 1 <= 100.")


@never_raises
def check_no_overlap_stride(stride) -> Feedback:
    """02, exercise 2: the stride for max_length=6 that neither overlaps nor skips tokens."""
    if (missing := _unanswered(stride)) is not None:
        return missing
    if _whole(stride) == 6:
        return Feedback(True, "stride = max_length: each token is an input exactly once per epoch.")
    if _whole(stride) < 6:
        return Feedback(False, f"with stride {_whole(stride)} consecutive windows share {6 - _whole(stride)} tokens.")
    return Feedback(False, f"with stride {_whole(stride)}, {_whole(stride) - 6} tokens between windows are never inputs.")


@never_raises
def check_make_windows(make_windows) -> Feedback:
    """02, exercise 3: ``make_windows(ids, max_length, stride)`` -> [(inputs, targets), ...]."""
    if (missing := _unanswered(make_windows)) is not None:
        return missing
    from .dataset import window_starts

    rng = random.Random(2)
    cases = [(list(range(10)), 4, 1), (list(range(10)), 4, 4), (list(range(5)), 4, 2)]
    cases += [([rng.randrange(50) for _ in range(rng.randrange(6, 30))], rng.randrange(1, 6), rng.randrange(1, 6)) for _ in range(20)]
    for ids, max_length, stride in cases:
        want = [(ids[s : s + max_length], ids[s + 1 : s + max_length + 1]) for s in window_starts(len(ids), max_length, stride)]
        got, failed = _try(make_windows, list(ids), max_length, stride)
        if failed is not None:
            return failed
        got = [(list(x), list(y)) for x, y in got]
        if got != want:
            return Feedback(False, f"make_windows({ids}, {max_length}, {stride}): {_first_difference(got, want)}")
    return Feedback(True, f"matches GPTDatasetV1 on {len(cases)} cases.")


def _first_difference(got: list, want: list) -> str:
    """Where two lists of windows part: the counts, then the first window that differs."""
    counts = "" if len(got) == len(want) else f"{len(got)} windows, expected {len(want)}; "
    for index, (mine, right) in enumerate(zip(got, want)):
        if mine != right:
            return f"{counts}window {index} is {mine}, expected {right}."
    return f"{counts}the first {min(len(got), len(want))} agree, so look at where your loop stops."


# --- 03 token embeddings ------------------------------------------------------------------------

@never_raises
def check_embedding_shape(shape) -> Feedback:
    """03, exercise 1: token + position embeddings for batch 2, max_length 6, dimension 16."""
    if (missing := _unanswered(shape)) is not None:
        return missing
    answer = _shape(shape)
    if answer == (2, 6, 16):
        return Feedback(True, "(2, 6, 16): (batch, tokens, embedding dimension); positions broadcast over the batch.")
    if answer == (6, 16):
        return Feedback(False, "that is the positional embedding alone; adding it to the tokens keeps the batch dimension.")
    return Feedback(False, "each of the 2 × 6 token ids becomes a vector of 16 numbers.")


@never_raises
def check_embedding_parameters(count) -> Feedback:
    """03, exercise 2: parameters in GPT-2 small's token and position embedding layers."""
    if (missing := _unanswered(count)) is not None:
        return missing
    want = 50_257 * 768 + 1_024 * 768
    if _whole(count) == want:
        return Feedback(True, f"{want:,} = 50,257 · 768 + 1,024 · 768: about a third of the 124M.")
    if _whole(count) == 50_257 * 768:
        return Feedback(False, "that is the token embedding; add the position embedding (1,024 positions).")
    return Feedback(False, "an Embedding(num, dim) holds num · dim numbers; GPT-2 small has 50,257 tokens, 1,024 positions, 768 dims.")


@never_raises
def check_lookup_function(lookup) -> Feedback:
    """03, exercise 3: ``lookup(weight, ids)`` without nn.Embedding, same result as the lookup."""
    if (missing := _unanswered(lookup)) is not None:
        return missing
    import torch

    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(10, 4, generator=generator)
    for ids in (torch.tensor([3]), torch.tensor([2, 3, 5, 1]), torch.tensor([[0, 9], [9, 0]])):
        with _forbidden(torch.nn.functional, "embedding"), _forbidden(torch, "embedding"):
            got, failed = _try(lookup, weight, ids)
        if failed is not None:
            return failed
        want = torch.nn.functional.embedding(ids, weight)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return Feedback(False, f"for ids of shape {tuple(ids.shape)} expected shape {tuple(want.shape)}, got {getattr(got, 'shape', type(got).__name__)}.")
        if not torch.allclose(got.float(), want, atol=1e-6):
            return Feedback(False, f"wrong values for ids {ids.tolist()}: each id should pick its row of weight.")
    return Feedback(True, "same as nn.Embedding, for single ids, a sequence and a batch.")


@contextlib.contextmanager
def _forbidden(module, name: str):
    """While the student's function runs, ``module.name`` raises: the exercise is to do its
    work by hand (indexing rows), not to call it."""
    original = getattr(module, name)

    def refuse(*args, **kwargs):
        raise RuntimeError(f"this exercise is to do it without {module.__name__}.{name}: index the rows of weight")

    setattr(module, name, refuse)
    try:
        yield
    finally:
        setattr(module, name, original)


# --- 04 attention -------------------------------------------------------------------------------

ATTENTION_INPUTS = [  # "Your journey starts with one step", 3-d embeddings
    [0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64],
    [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55],
]


@never_raises
def check_attention_weights(weights) -> Feedback:
    """04, exercise 1: simple attention weights of the query "starts" (row 2) over all six."""
    if (missing := _unanswered(weights)) is not None:
        return missing
    import torch

    inputs = torch.tensor(ATTENTION_INPUTS)
    want = torch.softmax(inputs @ inputs[2], dim=0)
    got = torch.as_tensor(weights, dtype=torch.float32).flatten()
    if got.shape == want.shape and torch.allclose(got, want, atol=1e-3):
        return Feedback(True, f"{[round(w, 4) for w in want.tolist()]}: they sum to 1.")
    if got.shape == want.shape and torch.allclose(got, torch.softmax(inputs @ inputs[2] / math.sqrt(3), dim=0), atol=1e-3):
        return Feedback(False, "that is scaled attention (÷ √3); simple attention takes the softmax of the raw dot products, no scaling.")
    if got.shape == want.shape and torch.allclose(got, inputs @ inputs[2], atol=1e-3):
        return Feedback(False, "those are the scores; normalise them with a softmax.")
    if got.shape == want.shape and torch.allclose(got, torch.softmax(inputs @ inputs[1], dim=0), atol=1e-3):
        return Feedback(False, "that is the query 'journey' (row 1); 'starts' is row 2.")
    return Feedback(False, "scores are the dot products of row 2 with every row; then softmax.")


@never_raises
def check_causal_mask(mask) -> Feedback:
    """04, exercise 2: a (4, 4) boolean mask, True where attention must be blocked."""
    if (missing := _unanswered(mask)) is not None:
        return missing
    import torch

    want = torch.triu(torch.ones(4, 4, dtype=torch.bool), diagonal=1)
    got = torch.as_tensor(mask)
    if got.shape != (4, 4):
        return Feedback(False, f"the mask should be (4, 4), one row per query, got {tuple(got.shape)}.")
    if torch.equal(got.bool(), want):
        return Feedback(True, "True above the diagonal: token i may not see tokens after i.")
    if torch.equal(got.bool(), ~want):
        return Feedback(False, "inverted: True should mark the *blocked* positions (the future).")
    if torch.equal(got.bool(), torch.triu(torch.ones(4, 4, dtype=torch.bool))):
        return Feedback(False, "the diagonal must stay visible: a token may attend to itself.")
    return Feedback(False, "try torch.triu(torch.ones(4, 4, dtype=torch.bool), diagonal=1).")


@never_raises
def check_split_heads_shape(shape) -> Feedback:
    """04, exercise 3: queries of MultiHeadAttention(d_out=768, 12 heads), batch 2, 10 tokens,
    after ``view`` into heads and ``transpose(1, 2)``."""
    if (missing := _unanswered(shape)) is not None:
        return missing
    answer = _shape(shape)
    if answer == (2, 12, 10, 64):
        return Feedback(True, "(2, 12, 10, 64): batch, heads, tokens, head_dim = 768 / 12.")
    if answer == (2, 10, 12, 64):
        return Feedback(False, "that is after view; transpose(1, 2) swaps tokens and heads.")
    return Feedback(False, "head_dim = d_out / num_heads; the heads become a batch-like dimension.")


# --- 05 the GPT architecture -------------------------------------------------------------------

@never_raises
def check_block_parameters(count) -> Feedback:
    """05, exercise 1: trainable parameters of one TransformerBlock of GPT-2 small."""
    if (missing := _unanswered(count)) is not None:
        return missing
    attention = 3 * 768 * 768 + (768 * 768 + 768)
    feed_forward = (768 * 3072 + 3072) + (3072 * 768 + 768)
    norms = 2 * (768 + 768)
    want = attention + feed_forward + norms
    if _whole(count) == want:
        return Feedback(True, f"{want:,} = attention {attention:,} + feed-forward {feed_forward:,} + two LayerNorms {norms:,}.")
    if _whole(count) == attention + feed_forward:
        return Feedback(False, "almost: each LayerNorm has a scale and a shift of 768 values.")
    return Feedback(False, "add W_query, W_key, W_value (no bias), out_proj (with bias), the two feed-forward layers and two LayerNorms.")


@never_raises
def check_gelu_function(gelu) -> Feedback:
    """05, exercise 2: GELU with the tanh approximation, for any tensor."""
    if (missing := _unanswered(gelu)) is not None:
        return missing
    import torch

    x = torch.linspace(-6, 6, 101)
    got, failed = _try(gelu, x)
    if failed is not None:
        return failed
    want = torch.nn.functional.gelu(x, approximate="tanh")
    if isinstance(got, torch.Tensor) and got.shape == x.shape and torch.allclose(got, want, atol=1e-5):
        return Feedback(True, "matches torch's gelu(approximate='tanh') on [-6, 6].")
    if isinstance(got, torch.Tensor) and got.shape == x.shape and torch.allclose(got, torch.relu(x), atol=1e-5):
        return Feedback(False, "that is ReLU; GELU is smooth and slightly negative just below 0.")
    return Feedback(False, "0.5 · x · (1 + tanh(sqrt(2/π) · (x + 0.044715 · x³))).")


@never_raises
def check_output_shape(shape) -> Feedback:
    """05, exercise 3: logits of GPTModel(GPT_CONFIG_124M) for a batch of 3 texts of 7 tokens."""
    if (missing := _unanswered(shape)) is not None:
        return missing
    answer = _shape(shape)
    if answer == (3, 7, 50257):
        return Feedback(True, "(3, 7, 50257): a score for every vocabulary entry, at every position.")
    if answer == (3, 50257):
        return Feedback(False, "the model predicts a next token at every position, not only the last.")
    return Feedback(False, "(batch, tokens, vocab_size).")


# --- 06 pretraining -----------------------------------------------------------------------------

@never_raises
def check_perplexity(value) -> Feedback:
    """06, exercise 1: the perplexity of a cross-entropy loss of 10.7940."""
    if (missing := _unanswered(value)) is not None:
        return missing
    want = math.exp(10.7940)
    if math.isclose(_as_float(value), want, rel_tol=1e-3):
        return Feedback(True, f"e^10.7940 ≈ {want:,.0f}: as unsure as choosing among ~48,700 tokens.")
    if math.isclose(_as_float(value), math.log(10.7940), rel_tol=1e-3):
        return Feedback(False, "perplexity is exp(loss), not log(loss).")
    return Feedback(False, "perplexity = exp(cross-entropy loss), e.g. torch.exp(torch.tensor(10.7940)).")


@never_raises
def check_top_k_filter(top_k_filter) -> Feedback:
    """06, exercise 2: ``top_k_filter(logits, k)`` keeps the k largest logits, others -inf."""
    if (missing := _unanswered(top_k_filter)) is not None:
        return missing
    import torch

    logits = torch.tensor([4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79])
    for k in (1, 3, 9):
        got, failed = _try(top_k_filter, logits.clone(), k)
        if failed is not None:
            return failed
        threshold = torch.topk(logits, k).values[-1]
        want = torch.where(logits < threshold, torch.tensor(-torch.inf), logits)
        if not isinstance(got, torch.Tensor) or not torch.equal(got, want):
            return Feedback(False, f"for k={k} expected {want.tolist()}, got {got.tolist() if isinstance(got, torch.Tensor) else got}.")
    return Feedback(True, "the k largest logits survive, the rest become -inf, so softmax gives them 0.")


@never_raises
def check_overfitting_diagnosis(answer) -> Feedback:
    """06, exercise 3: train loss 0.39, validation loss 6.45: 'underfitting', 'overfitting' or 'good fit'?"""
    if (missing := _unanswered(answer)) is not None:
        return missing
    text = str(answer).strip().lower()
    if "over" in text:
        return Feedback(True, "the model memorises the training text (loss 0.39) but predicts new text badly (6.45).")
    if "under" in text:
        return Feedback(False, "an underfit model is bad on its training data too; 0.39 is very low.")
    return Feedback(False, "compare the two losses: which data does the model do well on?")


# --- 07 LoRA -------------------------------------------------------------------------------------

@never_raises
def check_lora_parameters(count) -> Feedback:
    """07, exercise 1: LoRA parameters of rank 8 on an nn.Linear(768, 3072)."""
    if (missing := _unanswered(count)) is not None:
        return missing
    want = 8 * (768 + 3072)
    if _whole(count) == want:
        return Feedback(True, f"{want:,} = 8 · (768 + 3072): A is 768 × 8, B is 8 × 3072; the full matrix has {768 * 3072:,}.")
    if _whole(count) == 8 * 768 * 3072:
        return Feedback(False, "that is rank × in × out; A and B each have only one dimension of size r.")
    return Feedback(False, "A has in_dim × r entries and B has r × out_dim.")


@never_raises
def check_lora_scaling(scaling) -> Feedback:
    """07, exercise 2: the scaling of an adapter with alpha = 32 and rank = 8."""
    if (missing := _unanswered(scaling)) is not None:
        return missing
    if math.isclose(_as_float(scaling), 4.0):
        return Feedback(True, "alpha / rank = 32 / 8 = 4: the update A·B is multiplied by 4.")
    if math.isclose(_as_float(scaling), 0.25):
        return Feedback(False, "upside down: it is alpha divided by rank.")
    return Feedback(False, "scaling = alpha / rank.")


@never_raises
def check_why_b_is_zero(answer) -> Feedback:
    """07, exercise 3: why B starts at zero: 'a', 'b' or 'c'."""
    if (missing := _unanswered(answer)) is not None:
        return missing
    choice = str(answer).strip().lower()[:1]
    if choice == "b":
        return Feedback(True, "A·B = 0 at the start, so the adapted model begins exactly as the base model.")
    if choice == "a":
        return Feedback(False, "zeros do not make training faster; what do they do to the model's first outputs?")
    if choice == "c":
        return Feedback(False, "A is random, so gradients still flow to B; think about A·B at step 0.")
    return Feedback(False, "answer 'a', 'b' or 'c'.")


# --- 08 classification ---------------------------------------------------------------------------

@never_raises
def check_last_token_reason(answer) -> Feedback:
    """08, exercise 1: why classify from the last token: 'a', 'b' or 'c'."""
    if (missing := _unanswered(answer)) is not None:
        return missing
    choice = str(answer).strip().lower()[:1]
    if choice == "c":
        return Feedback(True, "with the causal mask only the last token has attended to every token of the message.")
    if choice == "a":
        return Feedback(False, "the last token is often just punctuation or padding; its position is what matters.")
    if choice == "b":
        return Feedback(False, "all positions have the same size of output; think about what each position can see.")
    return Feedback(False, "answer 'a', 'b' or 'c'.")


@never_raises
def check_accuracy(accuracy) -> Feedback:
    """08, exercise 2: accuracy of 270 correct answers out of 300, as a fraction."""
    if (missing := _unanswered(accuracy)) is not None:
        return missing
    value = _as_float(accuracy)
    if math.isclose(value, 0.9):
        return Feedback(True, "270 / 300 = 0.9, i.e. 90%.")
    if math.isclose(value, 90.0):
        return Feedback(False, "that is the percentage; give the fraction between 0 and 1.")
    return Feedback(False, "accuracy = correct predictions / all predictions.")


@never_raises
def check_trainable_choice(answer) -> Feedback:
    """08, exercise 3: which parameters to train for a small base model trained on little text."""
    if (missing := _unanswered(answer)) is not None:
        return missing
    text = str(answer).strip().lower()
    if "all" in text:
        return Feedback(True, "a weak base model's lower layers have little useful to keep; training all of them helps most.")
    if "last" in text or "head" in text:
        return Feedback(False, "that suits a strong base like GPT-2; a small model trained on 1 MB has little worth freezing.")
    return Feedback(False, "answer 'all layers' or 'last block'.")


# --- 09 instruction fine-tuning -----------------------------------------------------------------

@never_raises
def check_ignored_targets(count) -> Feedback:
    """09, exercise 1: how many -100s ``custom_collate_fn`` puts in the targets of the batch
    [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]]."""
    if (missing := _unanswered(count)) is not None:
        return missing
    if _whole(count) == 5:
        return Feedback(True, "5: row 2 gets three, row 3 two; each row keeps its first end-of-text token as a target.")
    if _whole(count) == 7:
        return Feedback(False, "the first padding token of each shorter row stays a target: the model must learn to stop.")
    return Feedback(False, "pad every row to 6 with 50256, shift by one, then replace all but the first padding target by -100.")


@never_raises
def check_rouge_l(score) -> Feedback:
    """09, exercise 2: ROUGE-L F1 of "the cat sat" against the reference "the cat sat on the mat"."""
    if (missing := _unanswered(score)) is not None:
        return missing
    if math.isclose(_as_float(score), 2 / 3, abs_tol=1e-3):
        return Feedback(True, "precision 3/3, recall 3/6, F1 = 2·1·0.5 / 1.5 = 0.667.")
    if math.isclose(_as_float(score), 0.5, abs_tol=1e-3):
        return Feedback(False, "that is the recall; ROUGE-L here is the F1 of precision and recall.")
    return Feedback(False, "longest common subsequence = 3 words; precision = 3/3, recall = 3/6, then F1.")


@never_raises
def check_template_mismatch(answer) -> Feedback:
    """09, exercise 3: a model trained on Alpaca prompts is asked in Phi-3 style. 'a', 'b' or 'c'?"""
    if (missing := _unanswered(answer)) is not None:
        return missing
    choice = str(answer).strip().lower()[:1]
    if choice == "b":
        return Feedback(True, "it learnt to answer after '### Response:'; an unfamiliar template gives worse, often rambling answers.")
    if choice == "a":
        return Feedback(False, "the template is text the model learnt from; it is not translated automatically.")
    if choice == "c":
        return Feedback(False, "nothing crashes: any text is valid input, the answers just get worse.")
    return Feedback(False, "answer 'a', 'b' or 'c'.")
