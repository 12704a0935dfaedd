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
import re
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
    if _is_placeholder(answer):
        return Feedback(None, "write the function's body (where it says `...`) and run the cell again.")
    return None


def _placeholder(*args):
    ...  # your code here


def _is_placeholder(fn) -> bool:
    """A function still as the exercise cell gives it: a body of ``...`` and nothing else.
    Compared by bytecode, so the argument names and the comment do not matter."""
    code = getattr(fn, "__code__", None)
    return (code is not None and code.co_name != "<lambda>"  # a lambda is an answer, however empty
            and code.co_code == _placeholder.__code__.co_code)


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


def _choice(value, options: str = "abc") -> str:
    """A multiple-choice answer as one letter: 'b', 'B', '(b)', 'b)' or ' b. ' all read as 'b';
    'because of c', 'a or b' and 'bc' are refused, not read by their first character."""
    if not isinstance(value, str):
        raise Unreadable(f"{_short(value)} is not a choice: answer with one letter, e.g. \"{options[0]}\".")
    letter = re.fullmatch(r"\s*\(?\s*([a-z])\s*[).:]?\s*", value.lower())
    if letter is None or letter.group(1) not in options:
        listed = ", ".join(f"'{o}'" for o in options)
        raise Unreadable(f"{_short(value)} is not one of {listed}: answer with a single letter.")
    return letter.group(1)


def _one_of(value, phrases: dict[str, tuple[str, ...]]) -> str:
    """A free-text answer matched to exactly one named phrase, as whole words: {'all':
    ('all', 'all layers')} reads 'All layers' as 'all' but not 'small' or 'not all'."""
    if not isinstance(value, str):
        raise Unreadable(f"{_short(value)} is not text: answer in words, e.g. \"{next(iter(phrases))}\".")
    words = " ".join(re.findall(r"[a-z0-9-]+", value.lower()))
    found = {name for name, forms in phrases.items() if words in forms}
    if len(found) != 1:
        listed = ", ".join(f"'{name}'" for name in phrases)
        raise Unreadable(f"{_short(value)}: answer with one of {listed}.")
    return found.pop()


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


def _center_hint(x, got) -> str:
    """What a wrong ``center(x)`` did, judged against the usual slips."""
    import torch

    candidates = [
        (x, "it returned x unchanged: subtract each vector's mean from it."),
        (torch.zeros_like(x), ("it returned zeros: subtract the mean of each whole vector (along dim=-1), "
                               "not of each number; x may have any number of dimensions, so a loop over "
                               "rows will not do.")),
        (x - x.mean(), "that subtracts the mean of all the numbers; take one mean per vector, along dim=-1."),
    ]
    candidates += [((x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True, correction=c),
                    "that also divides by the standard deviation: only subtract the mean.")
                   for c in (0, 1) if x.shape[-1] > 1]  # one number has no spread (and torch warns)
    if x.ndim == 2 and x.shape[0] == x.shape[1]:
        candidates.append((x - x.mean(-1), (
            f"x.mean(dim=-1) has shape {tuple(x.mean(-1).shape)}; broadcasting lines it up with the "
            "last dimension, so each row's mean went down a column. Keep the dimension: keepdim=True.")))
    candidates += [(x - x.mean(d, keepdim=True), f"that is the mean along dim={d}; average along the last, dim=-1.")
                   for d in range(x.ndim - 1)]
    if x.ndim > 2:  # a loop over x's first dimension, written for 2-D input
        candidates.append((x - x.mean(tuple(range(1, x.ndim)), keepdim=True), (
            "that subtracts one mean per x[i], a whole matrix; x may have any number of dimensions: "
            "a loop over rows will not do, take the mean along dim=-1 only.")))
    for wrong, hint in candidates:
        if got.shape == wrong.shape and torch.allclose(got, wrong, atol=1e-5):
            return hint
    return "each vector along the last dimension should have its own mean subtracted (x.mean(dim=-1, keepdim=True))."


@never_raises
def check_center(center) -> Feedback:
    """00, exercise 2: ``center(x)`` subtracts from every vector along the last dimension its mean."""
    if (missing := _unanswered(center)) is not None:
        return missing
    import torch

    if not callable(center):
        return Feedback(False, f"{_short(center)} is not a function: define center(x) and pass center.")
    generator = torch.Generator().manual_seed(0)
    # the square case first: forgetting keepdim runs without an error there and is silently wrong
    shapes = [(4, 4), (2, 3, 5), (6,), (3, 1), (2, 2, 3, 4)]
    for shape in shapes:
        x = torch.randn(shape, generator=generator) * 3 + 1
        got, failed = _try(center, x.clone())
        if failed is not None:
            if "must match the size" in failed.message:
                return Feedback(False, failed.message + " (x.mean(dim=-1) drops the last dimension;"
                                " keepdim=True keeps it as size 1.)")
            return failed
        if not isinstance(got, torch.Tensor):
            return Feedback(False, f"center returned {type(got).__name__}; return a tensor.")
        if got.shape != x.shape:
            return Feedback(False, f"for x of shape {tuple(x.shape)} it returned shape {tuple(got.shape)}: keep x's shape.")
        want = x - x.mean(dim=-1, keepdim=True)
        if not torch.allclose(got.float(), want, atol=1e-5):
            return Feedback(False, f"for x of shape {tuple(x.shape)}: " + _center_hint(x, got.float()))
    return Feedback(True, f"right for shapes {', '.join(map(str, shapes))}: the (…, 1) mean is stretched over each vector.")


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

# Two texts for check_bpe_trainer: English with runs of one letter ("zzz", "baaa"), where a
# merge that reuses a merged token goes wrong; and a seeded jumble of a few letters, full of
# ties, that no list copied from the first text fits.
_BPE_TEXT = ("Mmm, the cat sat on the mat. Aaah, zzz... The bees buzzz, buzzz, buzzz! "
             "I saw a baaaad sheep: baaa, baaa. That is the end of the story, the end.")


def _bpe_cases() -> list[tuple[str, int]]:
    rng = random.Random(17)
    jumble = " ".join("".join(rng.choice("aabc") for _ in range(rng.randint(1, 6))) for _ in range(60))
    return [(_BPE_TEXT, 12), (jumble, 20)]


def _overlapping_merge(ids, pair, new_id):
    """A typical wrong merge: every position that starts the pair becomes new_id, so "aaa"
    gives two new tokens (and keeps a stray byte) instead of [new_id, a]."""
    return [new_id if tuple(ids[i:i + 2]) == tuple(pair) else t for i, t in enumerate(ids)]


def _naive_bpe(text, num_merges, *, split=True, weighted=True, smallest_on_ties=True, merge=None):
    """Notebook 01's loop, with switches that reproduce typical mistakes. Returns the merged
    pairs and, for each step, the pair counts it chose from."""
    from collections import Counter
    from itertools import pairwise

    import regex

    from .tokenizer import GPT2_SPLIT_PATTERN, merge_pair

    chunk_counts = Counter(regex.findall(GPT2_SPLIT_PATTERN, text) if split else [text])
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    weights = list(chunk_counts.values()) if weighted else [1] * len(words)
    merges, history = [], []
    for new_id in range(256, 256 + num_merges):
        counts = Counter()
        for word, weight in zip(words, weights):
            for pair in pairwise(word):
                counts[pair] += weight
        if not counts:
            break
        if smallest_on_ties:
            best = min(counts, key=lambda pair: (-counts[pair], pair))
        else:
            best = max(counts, key=counts.get)  # the tied pair met first
        words = [(merge or merge_pair)(word, best, new_id) for word in words]
        merges.append(best)
        history.append(counts)
    return merges, history


_BPE_MISTAKES = [
    ({"split": False}, ("your merges cross word borders: pre-split the text first, "
     "chunks = regex.findall(GPT2_SPLIT_PATTERN, text), and merge only inside each chunk.")),
    ({"weighted": False}, ("each distinct chunk counted once: weight its pairs by how often "
     "the chunk occurs in the text (' the' occurs far more often than ' mat').")),
    ({"smallest_on_ties": False}, ("ties broken another way: when pairs are equally frequent, take "
     "the smallest (left, right), as BPETokenizer does: min(counts, key=lambda p: (-counts[p], p)).")),
    ({"merge": _overlapping_merge}, ("a run such as 'zzz' must become [new, 'z'], not two new "
     "tokens: after merging a pair, skip both of its tokens (as the notebook's `merge` does).")),
]


def _read_merges(got, num_merges) -> list[tuple[int, int]]:
    """The student's merges as (left, right) pairs; ((left, right), new_id) is read too."""
    form = "return a list of the merged pairs of ids, e.g. [(32, 116), (104, 101), ...]"
    if isinstance(got, (str, bytes, dict)) or not hasattr(got, "__iter__"):
        raise Unreadable(f"train_bpe returned {_short(got)}: {form}.")
    pairs = []
    for k, item in enumerate(got):
        try:
            if isinstance(item, (str, bytes)):
                raise TypeError
            if len(item) == 2 and hasattr(item[0], "__len__"):  # ((left, right), new_id)
                item, new_id = item
                if _whole(new_id) != 256 + k:
                    raise Unreadable(f"merge {k + 1} has the new id {new_id!r}; new ids count "
                                     f"up from 256, so it should be {256 + k}.")
            if isinstance(item, (str, bytes)) or len(item) != 2:
                raise TypeError
            pairs.append((_whole(item[0]), _whole(item[1])))
        except (TypeError, Unreadable) as err:
            reason = str(err) if isinstance(err, Unreadable) and "new id" in str(err) else ""
            raise Unreadable(reason or f"item {k} is {_short(item)}: {form}.") from None
    if len(pairs) != num_merges:
        raise Unreadable(f"train_bpe(text, {num_merges}) returned {len(pairs)} merges; "
                         f"it should make {num_merges} (new ids 256 to {255 + num_merges}).")
    return pairs


def _bpe_hint(text, num_merges, pairs, want) -> str:
    """What is wrong with the student's merges, as specifically as it can be said."""
    from .tokenizer import render_token

    repeated = next((p for k, p in enumerate(pairs) if p in pairs[:k]), None)
    if repeated is not None:
        return (f"you merged the pair {repeated} twice: keep the merged words, "
                "words = [merge(word, pair, new_id) for word in words], so each merge builds on the last.")
    if all(max(p) < 256 for p in pairs) and any(max(p) >= 256 for p in want):
        return ("all your merges join two single bytes (ids below 256), but BPE builds on its own "
                "merges (' t' + 'he' -> ' the'): count the pairs again after each merge.")
    for switches, hint in _BPE_MISTAKES:
        with contextlib.suppress(Exception):
            if _naive_bpe(text, num_merges, **switches)[0] == pairs:
                return hint
    k = next(i for i, (a, b) in enumerate(zip(pairs, want)) if a != b)
    if max(pairs[k]) >= 256 + k:
        return (f"merge {k + 1} uses the id {max(pairs[k])}, which no merge has made yet: the "
                f"first merge makes 256, the next 257, so merge {k + 1} can use ids up to {255 + k}.")
    pieces = {i: bytes([i]) for i in range(256)}
    for i, (left, right) in enumerate(want[:k]):
        pieces[256 + i] = pieces[left] + pieces[right]

    def show(pair):
        return " + ".join(repr(render_token(pieces[i])) for i in pair)

    counts = _naive_bpe(text, k + 1)[1][k]
    yours, best = counts.get(pairs[k], 0), counts[want[k]]
    agree = f" (the first {k} agree)" if k else ""
    start = f"merge {k + 1}{agree}: you merged {show(pairs[k])}, expected {show(want[k])}"
    if yours == best:
        return (f"{start}; both occur {best} times, a tie: take the smallest (left, right), "
                "min(counts, key=lambda p: (-counts[p], p)).")
    return f"{start}, which occurs {best} times (yours {yours})."


@never_raises
def check_bpe_trainer(train_bpe) -> Feedback:
    """01, exercise 1: ``train_bpe(text, num_merges)`` -> the merged pairs, in the order learnt;
    compared with ``BPETokenizer().train`` on two texts."""
    if (missing := _unanswered(train_bpe)) is not None:
        return missing
    if not callable(train_bpe):
        return Feedback(False, "pass your function itself, check_bpe_trainer(train_bpe), without calling it.")
    from .tokenizer import BPETokenizer

    for text, num_merges in _bpe_cases():
        got, failed = _try(train_bpe, text, num_merges)
        if failed is not None:
            return failed
        pairs = _read_merges(got, num_merges)
        tokenizer = BPETokenizer().train(text, vocab_size=256 + num_merges, special_tokens=())
        want = [pair for pair, _ in tokenizer.merges]
        if pairs != want:
            hint = _bpe_hint(text, num_merges, pairs, want)
            return Feedback(False, f"on the text {text[:24]!r}... ({num_merges} merges): {hint}")
    return Feedback(True, "the same merges as BPETokenizer.train on both texts: you have written a BPE trainer.")

def _verdict_words() -> frozenset[str]:
    """Every run of letters in The Verdict: what makes a word real for exercise 01.2 (read
    each time: 20 kB, and a missing file then gives feedback, not a stale answer)."""
    import re

    from .data import fetch

    text = fetch("the-verdict.txt", quiet=True).read_text(encoding="utf-8")
    return frozenset(re.findall(r"[^\W\d_]+", text))


@never_raises
def check_three_token_word(word) -> Feedback:
    """01, exercise 2: a word of The Verdict that GPT-2 splits into at least 3 tokens, counted
    as it stands in a sentence, with its leading space."""
    if (missing := _unanswered(word)) is not None:
        return missing
    from .tokenizer import gpt2_tokenizer

    if not isinstance(word, str) or not word.isalpha():
        return Feedback(False, "give one word made of letters, as a string, e.g. \"tokenizer\".")
    try:
        story = _verdict_words()
    except (OSError, RuntimeError) as err:  # no copy of the story (DataError): say so, not guess
        return Feedback(False, f"could not read the-verdict.txt to check that '{word}' is in it ({err}).")
    if word not in story:
        other = sorted(w for w in story if w.lower() == word.lower())
        spelt = f" (it has {', '.join(other)}: mind the capitals)" if other else ""
        return Feedback(False, f"'{word}' does not occur in The Verdict{spelt}: search the story's "
                        "words, e.g. those of split_text(raw_text), instead of guessing.")
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
def check_num_windows_function(num_windows) -> Feedback:
    """02, exercise 2: ``num_windows(n_tokens, max_length, stride)`` as arithmetic, checked
    against ``len(window_starts(...))`` on short texts, exact fits and long ones."""
    if (missing := _unanswered(num_windows)) is not None:
        return missing
    from .dataset import window_starts

    cases = [(100, 8, 4), (100, 8, 8), (101, 8, 4), (9, 8, 1), (8, 8, 1), (3, 8, 2), (0, 4, 1)]
    cases += [(n, m, s) for n in (17, 33, 64, 65, 1000) for m in (1, 4, 16) for s in (1, 3, 4, 16, 20)]
    for n, max_length, stride in cases:
        got, failed = _try(num_windows, n, max_length, stride)
        if failed is not None:
            return failed
        want = len(window_starts(n, max_length, stride))
        if _whole(got) != want:
            return Feedback(False, f"num_windows({n}, {max_length}, {stride}) = {_short(got)}, expected {want}: {_window_count_hint(n, max_length, stride, _whole(got))}")
    return Feedback(True, f"right on {len(cases)} cases, including texts too short for any window.")


def _window_count_hint(n: int, max_length: int, stride: int, got: int) -> str:
    """Why a window count is off, for the usual slips: no guard for short texts, or counting
    the window whose target would run past the text."""
    if n <= max_length:
        return "a text needs max_length + 1 tokens for one window, so this one has none (not a negative count)."
    if got == (n - max_length) // stride + 1:
        return "one too many: the last window's targets need the token after its inputs, so the last start is n - max_length - 1."
    return "count the starts 0, stride, 2·stride, … that are at most n - max_length - 1."


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
    instead = "index the rows of weight"
    for ids in (torch.tensor([3]), torch.tensor([2, 3, 5, 1]), torch.tensor([[0, 9], [9, 0]])):
        with _forbidden(torch.nn.functional, "embedding", instead), _forbidden(torch, "embedding", instead):
            got, failed = _try(lookup, weight, ids)
        if failed is not None:
            return failed
        want = torch.nn.functional.embedding(ids, weight)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return Feedback(False, f"for ids of shape {tuple(ids.shape)} expected shape {tuple(want.shape)}, got {getattr(got, 'shape', type(got).__name__)}.")
        if not torch.allclose(got.float(), want, atol=1e-6):
            return Feedback(False, f"wrong values for ids {ids.tolist()}: each id should pick its row of weight.")
    return Feedback(True, "same as nn.Embedding, for single ids, a sequence and a batch.")


@never_raises
def check_input_embeddings(input_embeddings) -> Feedback:
    """03, exercise 4: ``input_embeddings(ids, tok_weight, pos_weight)`` for ids of shape
    (batch, num_tokens): each token's row plus the row of its position 0, 1, …"""
    if (missing := _unanswered(input_embeddings)) is not None:
        return missing
    import torch

    generator = torch.Generator().manual_seed(4)
    tok_weight, pos_weight = torch.randn(12, 5, generator=generator), torch.randn(7, 5, generator=generator)
    for ids in (torch.tensor([[3, 1, 4, 1]]), torch.tensor([[2, 7, 1], [8, 2, 8]]), torch.tensor([[5, 5, 5, 5, 5, 5, 5]])):
        got, failed = _try(input_embeddings, ids, tok_weight, pos_weight)
        if failed is not None:
            return failed
        want = tok_weight[ids] + pos_weight[torch.arange(ids.shape[1])]
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return Feedback(False, f"for ids of shape {tuple(ids.shape)} expected shape {tuple(want.shape)}, got {_short(got) if not isinstance(got, torch.Tensor) else tuple(got.shape)}.")
        if not torch.allclose(got.float(), want, atol=1e-5):
            return Feedback(False, f"wrong values for ids {ids.tolist()}: {_input_embedding_hint(got.float(), ids, tok_weight, pos_weight)}")
    return Feedback(True, "token rows plus position rows, broadcast over the batch: what GPTModel's first line computes.")


def _input_embedding_hint(got, ids, tok_weight, pos_weight) -> str:
    """Name the usual slip: positions looked up by token id, or left out, or no token rows."""
    import torch

    positions = pos_weight[torch.arange(ids.shape[1])]
    slips = {
        "the positions are looked up by token id; look them up by place in the sequence, 0, 1, …, num_tokens - 1.": tok_weight[ids] + pos_weight[ids.clamp(max=pos_weight.shape[0] - 1)],
        "those are the token vectors alone: add the position vectors.": tok_weight[ids],
        "those are the position vectors alone: add them to the token vectors.": positions.expand_as(tok_weight[ids]),
    }
    for hint, slip in slips.items():
        if slip.shape == got.shape and slip.allclose(got, atol=1e-5):
            return hint
    return "each id picks its row of tok_weight, and position p adds row p of pos_weight."


@contextlib.contextmanager
def _forbidden(module, name: str, instead: str):
    """While the student's function runs, ``module.name`` raises: the exercise is to do its
    work by hand (``instead`` says how), not to call it."""
    original = getattr(module, name)

    def refuse(*args, **kwargs):
        raise RuntimeError(f"this exercise is to do it without {module.__name__}.{name}: {instead}")

    setattr(module, name, refuse)
    try:
        yield
    finally:
        setattr(module, name, original)


# --- 04 attention -------------------------------------------------------------------------------

@never_raises
def check_split_heads_shape(shape) -> Feedback:
    """04, exercise 2: queries of MultiHeadAttention(d_out=768, 12 heads), batch 2, 10 tokens,
    after ``view`` into heads and ``transpose(1, 2)``."""
    if (missing := _unanswered(shape)) is not None:
        return missing
    answer = _shape(shape)
    if answer == (2, 12, 10, 64):
        return Feedback(True, "(2, 12, 10, 64): batch, heads, tokens, head_dim = 768 / 12.")
    if answer == (2, 10, 12, 64):
        return Feedback(False, "that is after view; transpose(1, 2) swaps tokens and heads.")
    return Feedback(False, "head_dim = d_out / num_heads; the heads become a batch-like dimension.")


ATTENTION_FORBIDDEN = ("scaled_dot_product_attention", "causal_attention_weights")


def _causal_cases():
    """(queries, keys, values) for one sequence, a batch, and a batch of heads; d_k = 4 and
    d_v = 3 differ from each other and from the 5 tokens, so each wrong scale shows."""
    import torch

    generator = torch.Generator().manual_seed(17)
    return [
        tuple(torch.randn(*lead, 5, d, generator=generator) for d in (4, 4, 3))
        for lead in ((), (2,), (2, 3))
    ]


def _causal_mistakes(queries, keys, values) -> dict:
    """What typical slips compute, each with the hint that names it."""
    import torch

    n, d_k, d_v = queries.shape[-2], keys.shape[-1], values.shape[-1]
    scores = queries @ keys.transpose(-2, -1)
    future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)

    def attend(scaled, blocked, dim=-1):
        return torch.softmax(scaled.masked_fill(blocked, -torch.inf), dim=dim) @ values

    scaled = scores / d_k**0.5
    return {
        "no scaling: divide the scores by √d_k (keys.shape[-1]) before the softmax.": attend(scores, future),
        "divide by √d_k, the square root, not by d_k itself.": attend(scores / d_k, future),
        "scale by √d_k, the keys' last dimension (keys.shape[-1]), not by the number of tokens.": attend(scores / n**0.5, future),
        "scale by √d_k, the keys' dimension (keys.shape[-1]), not the values'.": attend(scores / d_v**0.5, future),
        "no mask: each token sees the future; set the scores above the diagonal to -inf.": attend(scaled, future & False),
        "the mask is on the wrong side: it hides the past and shows the future. Block the keys *after* the query: torch.triu(..., diagonal=1).": attend(scaled, future.T),
        "softmax over the wrong dimension: each query's row of weights (dim=-1, over the keys) must sum to 1.": attend(scaled, future, dim=-2),
        "you zeroed the future after the softmax, so the rows no longer sum to 1: mask the scores with -inf before the softmax.": (torch.softmax(scaled, dim=-1) * ~future) @ values,
    }


def _causal_hint(got, queries, keys, values) -> str:
    import torch

    n = queries.shape[-2]
    if torch.isnan(got).any():
        return ("some outputs are NaN: either 0 · (-inf) (mask with masked_fill, not a multiplication) "
                "or a row with every key masked (keep the diagonal: torch.triu(..., diagonal=1)).")
    want_shape = (*queries.shape[:-1], values.shape[-1])
    if tuple(got.shape) == (*queries.shape[:-1], n) and n != values.shape[-1]:
        return f"shape {tuple(got.shape)} is that of the attention weights: return weights @ values, {want_shape}."
    if tuple(got.shape) != want_shape:
        return f"the context vectors have shape {want_shape} (one per query, as wide as the values), got {tuple(got.shape)}."
    for hint, mistake in _causal_mistakes(queries, keys, values).items():
        if torch.allclose(got, mistake, atol=1e-4):
            return hint
    return "follow the steps: scores = q @ kᵀ, ÷ √d_k, future scores -> -inf, softmax over the keys, @ values."


@never_raises
def check_causal_attention(my_causal_attention) -> Feedback:
    """04, exercise 1: ``my_causal_attention(queries, keys, values)`` -> context vectors, written
    without scaled_dot_product_attention; checked on one sequence, a batch and a batch of heads."""
    if (missing := _unanswered(my_causal_attention)) is not None:
        return missing
    if not callable(my_causal_attention):
        return Feedback(False, "write a function: def my_causal_attention(queries, keys, values): ... return context")
    code = getattr(my_causal_attention, "__code__", None)
    used = set(getattr(code, "co_names", ())) | set(getattr(code, "co_freevars", ()))
    if used & set(ATTENTION_FORBIDDEN):
        return Feedback(False, f"this exercise is to write the steps yourself, without {min(used & set(ATTENTION_FORBIDDEN))}.")
    import torch
    from torch import nn

    from .attention import causal_attention_weights, causal_mask

    for queries, keys, values in _causal_cases():
        with _forbidden(torch.nn.functional, "scaled_dot_product_attention", "write the steps yourself"):
            got, failed = _try(my_causal_attention, queries.clone(), keys.clone(), values.clone())
        if failed is not None:
            if queries.dim() > 2:  # a slip that only shows on a batch
                failed.message += " (On a batch use keys.transpose(-2, -1), not .T, and queries.shape[-2] tokens.)"
            return failed
        if not isinstance(got, torch.Tensor):
            return Feedback(False, f"return a tensor (weights @ values), not {type(got).__name__}.")
        want = causal_attention_weights(queries, keys, causal_mask(5), nn.Dropout(0.0)) @ values
        if got.shape != want.shape or not torch.allclose(got.float(), want, atol=1e-4):
            where = f"with queries of shape {tuple(queries.shape)}"
            return Feedback(False, f"{where}: {_causal_hint(got.float(), queries, keys, values)}")
    return Feedback(True, "the same context vectors as CausalAttention, for one sequence, a batch and a batch of heads.")


@never_raises
def check_copy_weights(copy_weights) -> Feedback:
    """04, exercise 3 (the book's exercise 3.1): ``copy_weights(sa_v2, sa_v1)`` sets sa_v1's three
    matrices from sa_v2's layers, so that both give the same outputs."""
    if (missing := _unanswered(copy_weights)) is not None:
        return missing
    if not callable(copy_weights):
        return Feedback(False, "write a function: def copy_weights(sa_v2, sa_v1): ...")
    for d_in, d_out in ((3, 2), (4, 4)):  # a square case too, where a missing .T runs silently
        feedback = _check_copy_once(copy_weights, d_in, d_out)
        if feedback is not None:
            return feedback
    return Feedback(True, "sa_v1 now computes what sa_v2 does: W_query = W_query.weight.T, and so for keys and values.")


V1_MATRICES = ("W_query", "W_key", "W_value")


def _check_copy_once(copy_weights, d_in: int, d_out: int) -> Feedback | None:
    import torch

    from .attention import SelfAttention_v1, SelfAttention_v2

    with torch.random.fork_rng(devices=[]):  # leave the student's random state alone
        torch.manual_seed(789)
        v2 = SelfAttention_v2(d_in, d_out)
        torch.manual_seed(123)
        v1 = SelfAttention_v1(d_in, d_out)
    before_v1 = {name: getattr(v1, name).detach().clone() for name in V1_MATRICES}
    before_v2 = {name: p.detach().clone() for name, p in v2.named_parameters()}
    try:
        result = copy_weights(v2, v1)
    except Exception as err:  # noqa: BLE001 - the student's code may fail; say how
        return Feedback(False, _copy_error_hint(err, d_in, d_out))
    target = result if isinstance(result, SelfAttention_v1) else v1
    if any(not torch.equal(p.detach(), before_v2[name]) for name, p in v2.named_parameters()):
        return Feedback(False, "sa_v2 changed: copy from sa_v2 into sa_v1, not the other way round.")
    wrong = _copy_mismatches(target, v2, before_v1)
    if wrong:
        return Feedback(False, wrong)
    x = torch.rand(6, d_in, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        same = torch.allclose(SelfAttention_v1.forward(target, x), v2(x), atol=1e-5)
    return None if same else Feedback(False, "the matrices look right but the outputs differ: set each of W_query, W_key, W_value.")


def _copy_error_hint(err: Exception, d_in: int, d_out: int) -> str:
    text = f"copy_weights raised {type(err).__name__}: {str(err).rstrip('.')}"
    if "leaf Variable" in str(err) or "requires grad" in str(err):
        return text + ". Wrap the copies in `with torch.no_grad():`, since the parameters track gradients."
    if "size" in str(err) or "shape" in str(err):
        return (text + f". nn.Linear stores its weight as (d_out, d_in) = ({d_out}, {d_in}), "
                f"sa_v1's matrices are (d_in, d_out) = ({d_in}, {d_out}): copy the transpose, .weight.T.")
    return text


def _copy_mismatches(v1, v2, before_v1) -> str:
    """The first thing wrong with v1's matrices, or '' when each is v2's layer transposed."""
    import torch

    unchanged, transposed, other = [], [], []
    for name in V1_MATRICES:
        got = getattr(v1, name, None)
        want = getattr(v2, name).weight.detach()
        if not isinstance(got, torch.Tensor):
            other.append(name)
        elif got.shape == want.T.shape and torch.allclose(got.detach(), want.T):
            continue
        elif got.shape == want.shape and torch.allclose(got.detach(), want):
            transposed.append(name)
        elif got.shape == before_v1[name].shape and torch.equal(got.detach(), before_v1[name]):
            unchanged.append(name)
        else:
            other.append(name)
    if transposed:
        return (f"{', '.join(transposed)} not transposed: nn.Linear stores its weight as (d_out, d_in); "
                f"sa_v1 multiplies x @ W with W of shape (d_in, d_out): use .weight.T.")
    if len(unchanged) == len(V1_MATRICES):
        return "sa_v1 is unchanged: set its W_query, W_key and W_value from sa_v2 (inside torch.no_grad())."
    if unchanged:
        return f"{', '.join(unchanged)} still hold sa_v1's own values: copy all three matrices, not only {', '.join(n for n in V1_MATRICES if n not in unchanged)}."
    if other:
        return f"{', '.join(other)} do not match: each of sa_v1's matrices comes from the layer of the same name in sa_v2."
    return ""


# --- 05 the GPT architecture -------------------------------------------------------------------

@never_raises
def check_block_parameters(count) -> Feedback:
    """05, exercise 1: trainable parameters of one TransformerBlock of GPT-2 small."""
    if (missing := _unanswered(count)) is not None:
        return missing
    if isinstance(count, str):  # "7,085,568" reads as text, not as a number
        raise Unreadable(f"{_short(count)} is text: write the number without quotes, e.g. 1_234_567.")
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
    exact = torch.nn.functional.gelu(x)
    if isinstance(got, torch.Tensor) and got.shape == x.shape and torch.allclose(got, exact, atol=1e-6):
        return Feedback(False, "that is exact GELU (with erf); use the tanh approximation the book and GPT-2 use.")
    return Feedback(False, "0.5 · x · (1 + tanh(sqrt(2/π) · (x + 0.044715 · x³))).")


@never_raises
def check_output_shape(shape) -> Feedback:
    """05, exercise 3: logits of GPTModel(GPT_CONFIG_124M) for a batch of 3 texts of 7 tokens."""
    if (missing := _unanswered(shape)) is not None:
        return missing
    if isinstance(shape, str):  # "3,7,50257" or "(3, 7, 50257)": text, not a shape
        raise Unreadable(f"{_short(shape)} is text: write the shape as a tuple without quotes, e.g. (2, 4, 10).")
    answer = _shape(shape)
    if answer == (3, 7, 50257):
        return Feedback(True, "(3, 7, 50257): a score for every vocabulary entry, at every position.")
    if answer == (3, 50257):
        return Feedback(False, "the model predicts a next token at every position, not only the last.")
    return Feedback(False, "(batch, tokens, vocab_size).")


# --- 06 pretraining -----------------------------------------------------------------------------

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


PIZZA_LOGITS = (4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79)  # the book's toy next-token logits
PIZZA_ID = 6


@never_raises
def check_pizza_count(count_pizza) -> Feedback:
    """06, exercise 1 (the book's 5.1): ``count_pizza(temperature)``, how many of 1,000 tokens
    drawn at that temperature are "pizza". Compared with the expected count, within the spread
    of a binomial, so any seed and any correct way of sampling passes."""
    if (missing := _unanswered(count_pizza)) is not None:
        return missing
    import torch

    logits = torch.tensor(PIZZA_LOGITS, dtype=torch.float64)
    for temperature in (0.1, 1.0, 5.0, 2.0):
        got, failed = _try(count_pizza, temperature)
        if failed is not None:
            return failed
        count = _whole(got)
        p = torch.softmax(logits / temperature, dim=0)[PIZZA_ID].item()
        expected, spread = 1000 * p, 5 * math.sqrt(1000 * p * (1 - p)) + 2
        if abs(count - expected) <= spread:
            continue
        if count <= 1 and p > 0.01:
            return Feedback(False, f"at temperature {temperature} you drew 'pizza' {count} times; expected about "
                            f"{expected:.0f}: are the logits divided by the temperature before the softmax?")
        q = torch.softmax(logits * temperature, dim=0)[PIZZA_ID].item()  # multiplied by the temperature
        if abs(count - 1000 * q) <= 5 * math.sqrt(1000 * q * (1 - q)) + 2:
            return Feedback(False, f"at temperature {temperature}: divide the logits by the temperature, do not multiply.")
        return Feedback(False, f"at temperature {temperature} expected 'pizza' about {expected:.0f} times in 1,000 "
                        f"draws, you counted {count}: draw 1,000 tokens from softmax(logits / temperature) and "
                        "count those equal to vocab['pizza'].")
    return Feedback(True, "'pizza' almost never comes up at temperatures 0.1 and 1, but about 4% of the time at 5: "
                    "a high temperature lets nonsense through.")


KV_CACHE_EXERCISE = {"n_layers": 24, "emb_dim": 1024, "n_heads": 16, "context": 1024, "batch": 4,
                     "bytes_per_number": 4}


@never_raises
def check_kv_cache_bytes(value) -> Feedback:
    """06, exercise 3: bytes of the KV cache of GPT-2 medium for a batch of 4 at full context."""
    if (missing := _unanswered(value)) is not None:
        return missing
    c = KV_CACHE_EXERCISE
    per_pair = c["n_layers"] * c["context"] * c["emb_dim"] * c["batch"]
    want = 2 * per_pair * c["bytes_per_number"]
    got = _as_float(value)
    if got == want:
        return Feedback(True, f"2 x 24 x 1,024 x 1,024 x 4 x 4 bytes = {want:,} bytes ≈ {want / 1e6:,.0f} MB.")
    slips = {per_pair * c["bytes_per_number"]: "a key AND a value per token: multiply by 2.",
             # leaving out the batch and leaving out the 4 bytes give the same number
             want // 4: "one factor of 4 is missing: each sequence of the batch has its own cache, "
                        "and each float32 number takes 4 bytes.",
             want * c["n_heads"]: "the heads split emb_dim (16 x 64 = 1,024): do not multiply by the heads too.",
             want / 1e6: "in bytes, please, not MB.", want / 2**20: "in bytes, please, not MiB."}
    for slip, hint in slips.items():
        if math.isclose(got, slip, rel_tol=1e-3):
            return Feedback(False, hint)
    return Feedback(False, "count the numbers stored: keys and values x layers x tokens x emb_dim x batch, "
                    "then 4 bytes each.")


def _checkpoint_for_exercise(path):
    """What ``check_continued_training`` compares against, read off the checkpoint at ``path``:
    (metadata, the optimizer's step count when saved, batches per epoch), or a Feedback that
    says why the checkpoint cannot be used."""
    from pathlib import Path

    from safetensors import safe_open

    from .checkpoint import OPTIMIZER_FILE, read_checkpoint_metadata

    if not isinstance(path, (str, Path)):
        return None, Feedback(False, f"{_short(path)} is not a folder: pass the checkpoint's path, "
                              "`checkpoint_dir`, as the third argument.")
    try:
        meta = read_checkpoint_metadata(path)
    except (OSError, ValueError) as err:
        return None, Feedback(False, f"cannot read the checkpoint ({err}). Run section 3's training "
                              "cell first: it saves the checkpoint this exercise starts from.")
    info, training = meta.get("optimizer"), meta.get("training") or {}
    per_epoch = training.get("steps_per_epoch")
    if info is None or not isinstance(per_epoch, int) or per_epoch < 1:
        return None, Feedback(False, f"the checkpoint at {path} lacks the optimizer state or the "
                              "batches per epoch: run section 3's training cell again to rewrite it.")
    first = info["param_groups"][0]["params"][0] if info["param_groups"][0]["params"] else 0
    saved = info["state"].get(str(first), {}).get("step")
    with safe_open(str(Path(path) / OPTIMIZER_FILE), framework="pt") as f:
        if f"state.{first}.step" in f.keys():
            saved = f.get_tensor(f"state.{first}.step").item()
    return (meta, int(saved or 0), per_epoch), None


def _fits_checkpoint(model, path, meta) -> str | None:
    """None if ``model`` has the checkpoint's tensors and shapes, else what differs. Only the
    shapes are read (as empty "meta" tensors), so a 124M model is not loaded a second time."""
    from pathlib import Path

    import torch
    from safetensors import safe_open

    from .checkpoint import MODEL_FILE, mismatch_report

    with safe_open(str(Path(path) / MODEL_FILE), framework="pt") as f:
        found = {name: torch.empty(f.get_slice(name).get_shape(), device="meta") for name in f.keys()}
    for name, same_as in meta["model"]["aliases"].items():
        if same_as in found:
            found[name] = found[same_as]
    return "; ".join(mismatch_report(found, model.state_dict())[:2]) or None


def _weights_moved(model, path) -> tuple[bool, bool]:
    """(whether any weight differs from the checkpoint's, whether all weights are finite),
    comparing one tensor at a time so a 124M model is never held twice in memory."""
    from pathlib import Path

    import torch
    from safetensors import safe_open

    from .checkpoint import MODEL_FILE

    ours = model.state_dict()
    moved, finite = False, True
    with safe_open(str(Path(path) / MODEL_FILE), framework="pt") as f:
        for name in f.keys():
            mine = ours[name].detach().cpu()
            if mine.is_floating_point():
                finite = finite and bool(torch.isfinite(mine).all())
                moved = moved or not torch.equal(mine, f.get_tensor(name))
    return moved, finite


def _moments_continue(optimizer, path, meta, new_steps: int) -> bool:
    """Whether each running average of squared gradients (``exp_avg_sq``) grew from the
    checkpoint's: each step multiplies it by beta2 and adds a square, so after ``new_steps``
    steps from a restored state it is at least beta2**new_steps times the saved one, element by
    element. An optimizer that started afresh breaks this somewhere."""
    from pathlib import Path

    import torch
    from safetensors import safe_open

    from .checkpoint import OPTIMIZER_FILE

    saved_groups = meta["optimizer"]["param_groups"]
    indices = [index for group in saved_groups for index in group["params"]]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    beta2 = float(saved_groups[0].get("betas", (0.9, 0.999))[1])
    floor = beta2**new_steps * (1 - 1e-3)  # float32 rounding over the steps
    with safe_open(str(Path(path) / OPTIMIZER_FILE), framework="pt") as f:
        names = set(f.keys())
        for index, p in zip(indices, params, strict=False):
            name, now = f"state.{index}.exp_avg_sq", optimizer.state.get(p, {}).get("exp_avg_sq")
            if name not in names:
                continue
            if not isinstance(now, torch.Tensor) or now.shape != p.shape:
                return False
            if not bool((now.detach().cpu() >= floor * f.get_tensor(name)).all()):
                return False
    return True


@never_raises
def check_continued_training(model, optimizer=None, checkpoint_path=None) -> Feedback:
    """06, exercise 4 (the book's 5.4): a fresh ``GPTModel`` and ``AdamW``, both restored from
    the checkpoint at ``checkpoint_path``, then trained one more epoch. What counts is read off
    the checkpoint: AdamW's per-weight step count must be the saved one plus one epoch's
    batches, the optimizer must update this model's own tensors, and the weights must have moved."""
    import torch

    if model is None and optimizer is None:
        return Feedback(None, "build `continued` and `continued_optimizer` where it says None, train "
                        "one epoch, and run the cell again.")
    for value, name, kind in ((model, "continued", torch.nn.Module),
                              (optimizer, "continued_optimizer", torch.optim.Optimizer)):
        if value is None:
            return Feedback(False, f"`{name}` is still None: create it as the exercise says.")
        if not isinstance(value, kind):
            want = "a GPTModel" if kind is torch.nn.Module else "an AdamW optimizer"
            return Feedback(False, f"`{name}` is {_short(value)}, not {want}.")
    found, failed = _checkpoint_for_exercise(checkpoint_path)
    if failed is not None:
        return failed
    meta, saved, per_epoch = found
    if (differs := _fits_checkpoint(model, checkpoint_path, meta)) is not None:
        return Feedback(False, f"`continued` does not have the checkpoint's shapes ({differs}): build it "
                        "as GPTModel(model_config), the configuration section 3 trained.")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    own = {id(p) for p in model.parameters()}
    if not own & {id(p) for p in params}:
        return Feedback(False, "the optimizer updates another model's weights: create it from "
                        "`continued.parameters()`, so its steps change `continued`.")
    if {id(p) for p in params} != own:
        return Feedback(False, "the optimizer holds only part of `continued`'s weights: create it "
                        "from `continued.parameters()`.")
    if type(optimizer).__name__ != meta["optimizer"]["class"]:
        return Feedback(False, f"the checkpoint holds the state of an {meta['optimizer']['class']}, "
                        f"not of a {type(optimizer).__name__}: create the same optimizer as section 3.")
    steps = {float(optimizer.state[p]["step"]) if "step" in optimizer.state.get(p, {}) else 0.0
             for p in params}
    want = saved + per_epoch
    load = "load_checkpoint(checkpoint_dir, continued, continued_optimizer)"
    if steps == {0.0}:
        return Feedback(False, f"the optimizer has not taken a single step, nor was its state "
                        f"restored: call {load}, then train one epoch.")
    if len(steps) > 1:
        return Feedback(False, "the optimizer's weights have taken different numbers of steps: "
                        f"restore it with {load} and train all of `continued` one epoch.")
    got = int(steps.pop())
    if got < saved or not _moments_continue(optimizer, checkpoint_path, meta, got - saved):
        return Feedback(False, f"AdamW's running averages did not carry on from the checkpoint's: it "
                        f"started afresh (it counts {got} steps per weight). Restore its state too, "
                        f"with {load}, before training.")
    moved, finite = _weights_moved(model, checkpoint_path)
    if not finite:
        return Feedback(False, "some weights are NaN or infinite: restore the checkpoint and "
                        "train again with the optimizer's saved settings.")
    if got == saved:
        if moved:
            return Feedback(False, "the weights moved, but `continued_optimizer` took no step: "
                            "train `continued` with `continued_optimizer`.")
        return Feedback(False, f"the optimizer's state is restored ({saved} steps) but it took no step "
                        "since: train `continued` (not `model`) one epoch with it.")
    if got == want:
        if not moved:
            return Feedback(False, "the weights are still exactly the checkpoint's: did you load the "
                            "checkpoint after training rather than before?")
        return Feedback(True, f"AdamW went on from step {saved} to {want}, with the running averages "
                        "it had saved, and the weights moved on from the checkpoint's.")
    if (got - saved) % per_epoch == 0:
        return Feedback(False, f"{(got - saved) // per_epoch} epochs since the checkpoint: train one "
                        "(restore the checkpoint again first).")
    return Feedback(False, f"AdamW counts {got} steps per weight; restored ({saved} steps) and trained "
                    f"one epoch of {per_epoch} batches it would count {want}.")

# --- 07 LoRA -------------------------------------------------------------------------------------

@never_raises
def check_lora_model_parameters(count) -> Feedback:
    """07, exercise 1: LoRA parameters of rank 8 on every Linear of GPT-2 medium with a 2-class head."""
    if (missing := _unanswered(count)) is not None:
        return missing
    r, d, layers = 8, 1024, 24
    per_block = 4 * r * (d + d) + 2 * r * (d + 4 * d)
    head = r * (d + 2)
    want = layers * per_block + head
    got = _whole(count)
    if got == want:
        return Feedback(True, f"{want:,} = 24 blocks × {per_block:,} + the head {head:,}.")
    if got == layers * per_block:
        return Feedback(False, "almost: the 2-class head (1024 → 2) gets an adapter too.")
    if got == 12 * per_block + head:
        return Feedback(False, "GPT-2 medium has 24 blocks, not 12.")
    if got == 2 * want:
        return Feedback(False, "that is rank 16; the exercise asks for rank 8.")
    return Feedback(False, "per adapted Linear: r · (in + out). Per block: 4 attention projections (1024 → 1024) "
                           "and 2 feed-forward layers (1024 → 4096, 4096 → 1024); then the head.")


@never_raises
def check_book_alpha(alpha) -> Feedback:
    """07, exercise 2: our alpha (scaling alpha / rank) matching the book's update at rank 16, alpha 16."""
    if (missing := _unanswered(alpha)) is not None:
        return missing
    value = _as_float(alpha)
    if math.isclose(value, 256.0):
        return Feedback(True, "alpha / 16 = 16 needs alpha = 256: the book's scale of 16 at rank 16.")
    if math.isclose(value, 16.0):
        return Feedback(False, "with alpha = 16 our scale is 16 / 16 = 1, the book's is 16: 16× smaller.")
    if math.isclose(value, 1.0):
        return Feedback(False, "1 is the book's alpha / rank; what alpha makes our alpha / 16 equal the book's 16?")
    return Feedback(False, "the book multiplies A·B by alpha = 16; we multiply by alpha / rank with rank 16: solve alpha / 16 = 16.")


@never_raises
def check_both_zero(answer) -> Feedback:
    """07, exercise 3: what happens if B and A both start at zero: 'a', 'b' or 'c'."""
    if (missing := _unanswered(answer)) is not None:
        return missing
    choice = _choice(answer, "abc")
    if choice == "c":
        return Feedback(True, "A's gradient is x^T·(grad·B^T) = 0 and B's is (x·A)^T·grad = 0: both stay at zero forever.")
    if choice == "a":
        return Feedback(False, "B's gradient is (x·A)^T · grad: what is x·A when A is zero?")
    return Feedback(False, "B's gradient needs x·A, and A's gradient needs B: with both zero, which one can move first?")


# --- 08 classification ---------------------------------------------------------------------------

def _real_token_cases():
    """(logits, input_ids, pad_id) with messages of 6 (no padding), 3, 1 and 4 real tokens
    padded on the right; pad id 9 and 3 classes, so a transposed or wrong-width answer shows."""
    import torch

    generator = torch.Generator().manual_seed(63)
    lengths, seq_len, pad_id = (6, 3, 1, 4), 6, 9
    input_ids = torch.randint(0, 9, (len(lengths), seq_len), generator=generator)
    for row, length in enumerate(lengths):
        input_ids[row, length:] = pad_id
    logits = torch.randn(len(lengths), seq_len, 3, generator=generator)
    return logits, input_ids, pad_id


def _real_token_mistakes(logits, input_ids, pad_id) -> dict:
    """What typical slips return, each with the hint that names it."""
    import torch

    rows = torch.arange(logits.shape[0])
    first_pad = (input_ids != pad_id).sum(dim=1).clamp(max=logits.shape[1] - 1)
    return {
        "that is position -1, which is padding for a short message: pick each row's last non-padding token.": logits[:, -1, :],
        "that is the first token of each message; the exercise asks for the last real one.": logits[:, 0, :],
        "one position too far: that is the first padding token (index = number of real tokens - 1).": logits[rows, first_pad],
    }


@never_raises
def check_last_real_token_logits(fn) -> Feedback:
    """08, exercise 1 (the book's exercise 6.3): each row's logits at its last non-padding token."""
    if (missing := _unanswered(fn)) is not None:
        return missing
    import torch

    logits, input_ids, pad_id = _real_token_cases()
    lengths = (input_ids != pad_id).sum(dim=1)
    expected = logits[torch.arange(logits.shape[0]), lengths - 1]
    got, failed = _try(fn, logits.clone(), input_ids.clone(), pad_id)
    if failed is not None:
        return failed
    if not isinstance(got, torch.Tensor):
        return Feedback(False, f"return a tensor of shape {tuple(expected.shape)}, not {type(got).__name__}.")
    if tuple(got.shape) != tuple(expected.shape):
        return Feedback(False, f"expected shape {tuple(expected.shape)} (batch, classes), got {tuple(got.shape)}.")
    if torch.allclose(got.float(), expected):
        return Feedback(True, "each row's logits at its last real token, wherever the padding starts.")
    for hint, mistake in _real_token_mistakes(logits, input_ids, pad_id).items():
        if torch.allclose(got.float(), mistake):
            return Feedback(False, hint)
    return Feedback(False, "for each row, count the tokens that are not pad_id and take the logits at that count - 1.")


class _WordLengths:
    """A toy tokenizer for the padding exercise: each word becomes its length (never 0)."""

    def encode(self, text, **options):
        return [len(word) for word in text.split()]


def _padding_loaders():
    """Two loaders of SpamDatasets padded with id 0: 7 messages in batches of 3 (a last batch
    of 1, so a mean of batch shares differs from the share of all tokens), padded to the
    longest message and to 12 tokens."""
    import pandas as pd
    from torch.utils.data import DataLoader

    from .classify import SpamDataset

    texts = ["win a prize now", "hi", "call me back when you can please",
             "ok", "free entry to the cup final tonight", "see you", "yes"]
    frame = pd.DataFrame({"Label": ["ham", "ham", "ham", "ham", "spam", "ham", "ham"], "Text": texts})
    return [DataLoader(SpamDataset(frame, _WordLengths(), length, pad_token_id=0), batch_size=3)
            for length in (None, 12)]


def _padding_counts(loader, pad_id):
    """(padding tokens, all tokens) of each batch."""
    return [(int((ids == pad_id).sum()), ids.numel()) for ids, _ in loader]


def _padding_hint(value: float, counts) -> str:
    pads, tokens = sum(p for p, _ in counts), sum(t for _, t in counts)
    share = pads / tokens
    slips = {
        "that is the share of real tokens; the exercise asks for the padding.": 1 - share,
        "that is a percentage; give the share as a fraction between 0 and 1.": 100 * share,
        "that is the number of padding tokens; divide it by the number of all tokens.": pads,
        "that averages the batches' shares, so the short last batch weighs as much as a full "
        "one: add up padding and tokens over all batches, then divide.": sum(p / t for p, t in counts) / len(counts),
        "that is the first batch only: go through every batch of the loader.": counts[0][0] / counts[0][1],
    }
    for hint, slip in slips.items():
        if math.isclose(value, slip, abs_tol=1e-6):
            return hint
    return "count the tokens equal to pad_id in every batch, and divide by all the tokens of all batches."


@never_raises
def check_padding_share(fn) -> Feedback:
    """08, exercise 2 (after the book's exercise 6.1): the share of a loader's tokens that are padding."""
    if (missing := _unanswered(fn)) is not None:
        return missing
    for loader in _padding_loaders():
        counts = _padding_counts(loader, 0)
        want = sum(p for p, _ in counts) / sum(t for _, t in counts)
        got, failed = _try(fn, loader, 0)
        if failed is not None:
            return failed
        value = _as_float(got)
        if not math.isclose(value, want, abs_tol=1e-6):
            length = loader.dataset.max_length
            return Feedback(False, f"messages padded to {length} tokens: expected {want:.4f}, got {value:.4g}; "
                                   + _padding_hint(value, counts))
    return Feedback(True, "padding over all tokens of all batches, whatever the batch sizes.")


def _tiny_gpt():
    import torch

    from .model import GPTModel

    torch.manual_seed(0)
    return GPTModel({"vocab_size": 11, "context_length": 4, "emb_dim": 8, "n_heads": 2,
                     "n_layers": 3, "drop_rate": 0.0, "qkv_bias": False})


def _trainable_names(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def _part_names(model, *prefixes: str) -> set[str]:
    return {name for name, _ in model.named_parameters() if name.startswith(prefixes)}


def _blocks_hint(model, got: set[str], want: set[str], n: int) -> str:
    n_layers = len(model.trf_blocks)
    last = tuple(f"trf_blocks.{i}." for i in range(n_layers - n, n_layers))
    first = tuple(f"trf_blocks.{i}." for i in range(n))
    if not got:
        return ("nothing is trainable: after freezing, set requires_grad = True on the last n blocks, "
                "final_norm and out_head (the model may arrive frozen).")
    if got == _part_names(model, ""):
        return "every parameter is still trainable: freeze the whole model first (requires_grad = False)."
    if got & _part_names(model, "tok_emb.", "pos_emb."):
        return "the embeddings are still trainable: freeze everything first, then switch on the parts that learn."
    if not _part_names(model, "out_head.") <= got:
        return "the new head (out_head) must learn too: it starts random."
    if not _part_names(model, "final_norm.") <= got:
        return "final_norm must learn too, as in the book's choice: it sits between the blocks and the head."
    if n < n_layers and _part_names(model, *first) <= got and not _part_names(model, *last) <= got:
        return f"with n={n} that trains the first {n} block(s); the last ones are model.trf_blocks[-n:]."
    if not _part_names(model, *last) <= got:
        return (f"with n={n} the last {n} block(s) must be trainable, all of their parameters; the model "
                "may arrive frozen, so set requires_grad = True on them.")
    return f"with n={n}, only the last {n} block(s), final_norm and out_head should be trainable."


@never_raises
def check_train_last_blocks(fn) -> Feedback:
    """08, exercise 3 (after the book's exercise 6.2): leave only the last n blocks, final_norm
    and out_head trainable, and return how many parameters that is."""
    if (missing := _unanswered(fn)) is not None:
        return missing
    # (n, whether the model arrives frozen): a fresh model is all trainable; a frozen one shows
    # an answer that only freezes and never switches anything back on
    for n, frozen in ((2, False), (1, True), (3, False)):
        model = _tiny_gpt()
        model.requires_grad_(not frozen)
        n_layers = len(model.trf_blocks)
        want = _part_names(model, "final_norm.", "out_head.",
                           *(f"trf_blocks.{i}." for i in range(n_layers - n, n_layers)))
        got, failed = _try(fn, model, n)
        if failed is not None:
            return failed
        trainable = _trainable_names(model)
        if trainable != want:
            return Feedback(False, _blocks_hint(model, trainable, want, n))
        count = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if _whole(got) != count:
            return Feedback(False, f"the right parts are trainable (n={n}), but it returned {_whole(got):,}, "
                                   f"not their {count:,} parameters: add up p.numel() of those with requires_grad.")
    return Feedback(True, "the last n blocks, final_norm and the head learn; everything below stays as pretrained.")


# --- 09 instruction fine-tuning -----------------------------------------------------------------

_PHI3_ENTRIES = (
    {"instruction": "Name a primary colour.", "input": "", "output": "Red."},
    {"instruction": "Convert to passive voice.", "input": "The cat chased the mouse.", "output": ""},
    {"instruction": "Translate 'thank you' into German.", "input": "", "output": "Danke."},
)


def _phi3_reference(entry: dict) -> str:
    """The book's exercise 7.1 prompt: role marker, instruction, the input on its own line if any."""
    input_text = f"\n{entry['input']}" if entry["input"] else ""
    return f"<|user|>\n{entry['instruction']}{input_text}"


@never_raises
def check_format_input_phi3(format_fn) -> Feedback:
    """09, exercise 1: ``format_fn(entry)`` writes the Phi-3-style prompt (without the
    ``<|assistant|>`` header); compared with the reference on entries with and without input."""
    if (missing := _unanswered(format_fn)) is not None:
        return missing
    if not callable(format_fn):
        return Feedback(False, "pass the function itself (format_input_phi3), not its result.")
    for entry in _PHI3_ENTRIES:
        got, failed = _try(format_fn, dict(entry))
        if failed:
            return failed
        want = _phi3_reference(entry)
        if not isinstance(got, str):
            return Feedback(False, f"it returned a {type(got).__name__}; a prompt is a str.")
        if got == want:
            continue
        if not entry["input"] and got == want + "\n":
            return Feedback(False, "with an empty input, add nothing after the instruction (no empty line).")
        if got.rstrip("\n") == want or got.startswith(want + "\n<|assistant|>"):
            return Feedback(False, "return the prompt only: the '<|assistant|>:' header is added after it, and no trailing newline.")
        if not got.startswith("<|user|>\n"):
            return Feedback(False, "start with the role marker '<|user|>' and a newline.")
        return Feedback(False, f"for {entry!r:.70} expected {want!r}, got {got!r:.80}.")
    return Feedback(True, "the same prompt as the reference, with and without an input.")


@never_raises
def check_masked_ignored_targets(count) -> Feedback:
    """09, exercise 2: -100s in the targets of ``custom_collate_fn(batch, mask_prompt=True)`` for
    batch [([0, 1, 2, 3, 4], 3), ([5, 6], 1), ([7, 8, 9], 2)] (ids, prompt length)."""
    if (missing := _unanswered(count)) is not None:
        return missing
    n = _whole(count)
    if n == 8:
        return Feedback(True, "8: padding gives 0 + 3 + 2, the prompt 2 + 0 + 1 (a prompt of p tokens hides the p - 1 targets that predict its own tokens 2..p).")
    if n == 5:
        return Feedback(False, "that is the padding alone, as without mask_prompt: the targets that predict prompt tokens are ignored too.")
    if n == 11:
        return Feedback(False, "one too many per row: the target at the prompt's last position predicts the first response token, so it is kept.")
    if n in (3, 6):
        return Feedback(False, "count both kinds: the padding after each row's first end token, and the targets that predict prompt tokens.")
    return Feedback(False, "write out each row's targets (ids shifted by one, one end token, then padding), then mark the padding after the first end token and the targets of prompt tokens 2..p.")
