"""Notebook 01's exercises: the BPE trainer the student assembles, and the three-token word.

Each wrong trainer below is a mistake students make; the checker must refuse it and say which
mistake it is, not only that the merges differ.
"""

from collections import Counter
from itertools import pairwise

import pytest
import regex

from helpers import exercises as ex
from helpers.data import DataError
from helpers.tokenizer import GPT2_SPLIT_PATTERN, merge_pair

pytestmark = pytest.mark.usefixtures("data_available")


@pytest.fixture(scope="module")
def data_available():
    """The three-token word needs GPT-2's files and the story (the CI mirror has them)."""
    try:
        ex.check_three_token_word("the")
        from helpers.data import fetch

        fetch("the-verdict.txt", quiet=True)
    except DataError as err:  # pragma: no cover - only without the data
        pytest.skip(f"data not available: {err}")


def overlapping_merge(ids, pair, new_id):
    """The classic wrong merge: "aaa" with pair "aa" gives two new tokens."""
    return [new_id if tuple(ids[i:i + 2]) == tuple(pair) else t for i, t in enumerate(ids)]


def trainer(*, split=True, weighted=True, recount=True, ties="smallest", merge=merge_pair,
            keep_merged=True, first_id=256, extra=0, with_ids=False):
    """The notebook's trainer (the Solutions cell), with one switch per typical mistake."""
    def train_bpe(text, num_merges):
        chunk_counts = Counter(regex.findall(GPT2_SPLIT_PATTERN, text) if split else [text])
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        counts = list(chunk_counts.values()) if weighted else [1] * len(words)
        merges, pair_counts = [], None
        for k in range(num_merges + extra):
            if recount or pair_counts is None:
                pair_counts = Counter()
                for word, count in zip(words, counts):
                    for pair in pairwise(word):
                        pair_counts[pair] += count
            if ties == "smallest":
                best = min(pair_counts, key=lambda p: (-pair_counts[p], p))
            elif ties == "first met":
                best = max(pair_counts, key=pair_counts.get)
            else:  # the largest pair
                best = max(pair_counts, key=lambda p: (pair_counts[p], p))
            if not recount:
                del pair_counts[best]
            if keep_merged:
                words = [merge(word, best, first_id + k) for word in words]
            else:  # rebinds the loop variable only: the words never change
                for word in words:
                    word = merge(word, best, first_id + k)
            merges.append((best, first_id + k) if with_ids else best)
        return merges
    return train_bpe


def check(train_bpe):
    return ex.check_bpe_trainer(train_bpe)


def test_the_solution_and_the_classes_own_form_pass():
    assert check(trainer()).correct is True
    # ((left, right), new_id), as BPETokenizer.merges holds them, is read too
    assert check(trainer(with_ids=True)).correct is True


@pytest.mark.parametrize("mistake, hint", [
    ({"recount": False}, "count the pairs again after each merge"),
    ({"keep_merged": False}, "keep the merged words"),
    ({"merge": overlapping_merge}, "skip both of its tokens"),
    ({"ties": "first met"}, "ties broken another way"),
    ({"ties": "largest"}, "a tie: take the smallest"),
    ({"split": False}, "cross word borders"),
    ({"weighted": False}, "weight its pairs by how often"),
    ({"first_id": 257}, "which no merge has made yet"),
    ({"first_id": 257, "with_ids": True}, "new ids count up from 256"),
    ({"extra": 1}, "returned 13 merges; it should make 12"),
    ({"extra": -1}, "returned 11 merges; it should make 12"),
], ids=["no recount", "merged words dropped", "overlapping merge", "ties: first met",
        "ties: largest", "no pre-split", "chunks unweighted", "ids from 257", "new id 257",
        "one merge too many", "one merge too few"])
def test_typical_mistakes_get_their_own_hint(mistake, hint):
    feedback = check(trainer(**mistake))
    assert feedback.correct is False and hint in feedback.message


def test_a_list_copied_from_the_first_text_fails_on_the_second():
    right = trainer()
    seen = {}

    def memorised(text, num_merges):  # right once, then the same list for any text
        seen.setdefault("merges", right(text, num_merges))
        return seen["merges"][:num_merges] + [(97, 97)] * max(0, num_merges - len(seen["merges"]))
    feedback = check(memorised)
    assert feedback.correct is False and "20 merges" in feedback.message


@pytest.mark.parametrize("answer, hint", [
    (lambda text, n: text, "return a list of the merged pairs"),
    (lambda text, n: [(0, 0)] * n, "twice"),
    (lambda text, n: ["ab"] * n, "item 0 is 'ab'"),
    (lambda text, n: [(1.5, 2)] * n, "item 0 is (1.5, 2)"),
    (lambda text, n: None, "returned None"),
    (lambda text, n: 1 / 0, "raised ZeroDivisionError"),
    (lambda text, n: 0, "return a list of the merged pairs"),
    ("train_bpe", "pass your function itself"),
    ([(32, 116)], "pass your function itself"),
])
def test_trivial_and_malformed_answers_are_refused_with_a_hint(answer, hint):
    feedback = check(answer)
    assert feedback.correct is False and hint in feedback.message


def test_unanswered():
    assert check(None).correct is None


def test_three_token_word_must_come_from_the_story():
    assert ex.check_three_token_word("Gisburn").correct is True  # ' G' 'is' 'burn'
    assert ex.check_three_token_word("mediocrity").correct is True
    for made_up in ("Akwirw", "xqzvkw", "hippopotamus"):  # 3+ tokens, but not in The Verdict
        feedback = ex.check_three_token_word(made_up)
        assert feedback.correct is False and "does not occur in The Verdict" in feedback.message
    assert "mind the capitals" in ex.check_three_token_word("gisburn").message
    assert "only 1 token" in ex.check_three_token_word("the").message
    assert "made of letters" in ex.check_three_token_word("12345678").message
    # in the story, but one token: refused
    assert "try a rarer" in ex.check_three_token_word("thought").message


def test_three_token_word_without_the_story_says_so(monkeypatch):
    def missing(name, quiet=False):
        raise DataError(f"{name} is not here")
    monkeypatch.setattr("helpers.data.fetch", missing)
    feedback = ex.check_three_token_word("Gisburn")
    assert feedback.correct is False and "could not read the-verdict.txt" in feedback.message
