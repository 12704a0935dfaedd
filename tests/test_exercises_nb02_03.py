"""The checkers of notebooks 02 and 03 that make the student write code: right answers pass,
the usual slips fail with a hint that names them, and malformed or trivial answers fail."""

import math

import pytest
import torch

from helpers import exercises as ex


def right(feedback):
    return feedback.correct is True


def wrong(feedback, hint=""):
    return feedback.correct is False and hint in feedback.message


# --- 02, exercise 2: num_windows ----------------------------------------------------------------


@pytest.mark.parametrize("answer", [
    lambda n, m, s: max(0, (n - m - 1) // s + 1),
    lambda n, m, s: max(0, math.ceil((n - m) / s)),
    lambda n, m, s: len(range(0, n - m, s)),
    lambda n, m, s: float(max(0, (n - m - 1) // s + 1)),  # 23.0 is a count too
], ids=["floor", "ceil", "range", "float"])
def test_num_windows_right_answers(answer):
    assert right(ex.check_num_windows_function(answer))


@pytest.mark.parametrize("answer, hint", [
    (lambda n, m, s: (n - m - 1) // s + 1, "has none"),  # negative for short texts
    (lambda n, m, s: max(0, (n - m) // s + 1), "one too many"),  # the window without a target
    (lambda n, m, s: max(0, (n - m) // s), "count the starts"),
    (lambda n, m, s: n // s, "count the starts"),
    (lambda n, m, s: max(0, math.ceil((n - m) / s)) + 0.5, "not a whole number"),
    (lambda n, m, s: "23", "not a number"),
    (lambda n, m, s: None, "returned None"),
    (lambda n, m, s: 1 / 0, "ZeroDivisionError"),
    (lambda n, m: 0, "TypeError"),  # wrong number of parameters
    (lambda *a: 0, "expected"),
    (lambda *a: a[0], "expected"),
    (42, "not callable"),
], ids=["no guard", "off by one", "floor", "n // stride", "fraction", "text", "None",
        "raises", "two parameters", "zero", "returns n", "not a function"])
def test_num_windows_wrong_answers(answer, hint):
    assert wrong(ex.check_num_windows_function(answer), hint)


def test_num_windows_unanswered():
    assert ex.check_num_windows_function(None).correct is None


# --- 03, exercise 4: token + position embeddings -----------------------------------------------


def test_input_embeddings_right_answers():
    assert right(ex.check_input_embeddings(lambda ids, t, p: t[ids] + p[torch.arange(ids.shape[1])]))
    assert right(ex.check_input_embeddings(lambda ids, t, p: t[ids] + p[: ids.shape[1]]))
    assert right(ex.check_input_embeddings(
        lambda ids, t, p: torch.nn.functional.embedding(ids, t) + p[: ids.shape[1]].unsqueeze(0)))


@pytest.mark.parametrize("answer, hint", [
    (lambda ids, t, p: t[ids] + p[ids], "looked up by token id"),
    (lambda ids, t, p: t[ids], "token vectors alone"),
    (lambda ids, t, p: p[: ids.shape[1]].expand(ids.shape[0], -1, -1), "position vectors alone"),
    (lambda ids, t, p: t[ids] + p[: ids.shape[0]].unsqueeze(1), "each id picks"),  # batch as position
    (lambda ids, t, p: t[ids] + p[1 : ids.shape[1] + 1], "each id picks"),  # positions from 1
    (lambda ids, t, p: p[: ids.shape[1]], "expected shape"),  # no batch dimension
    (lambda ids, t, p: (t[ids] + p[: ids.shape[1]]).tolist(), "expected shape"),
    (lambda ids, t, p: torch.zeros(ids.shape[0], ids.shape[1], t.shape[1]), "each id picks"),
    (lambda ids, t, p: ids, "expected shape"),
    (lambda ids, t, p: None, "returned None"),
    (lambda ids, t, p: t[100], "IndexError"),
    (lambda ids, t: t[ids], "TypeError"),
    ("t[ids] + p", "not callable"),
], ids=["positions by id", "no positions", "no tokens", "batch index as position", "from 1",
        "no batch", "a list", "zeros", "returns ids", "None", "raises", "two parameters", "text"])
def test_input_embeddings_wrong_answers(answer, hint):
    assert wrong(ex.check_input_embeddings(answer), hint)


def test_input_embeddings_unanswered():
    assert ex.check_input_embeddings(None).correct is None
