"""Notebook 08's checkers: right answers pass, typical slips get a hint that names them, and
malformed or trivial answers are refused without raising."""

import pytest
import torch

from helpers import exercises as ex


def right(feedback):
    return feedback.correct is True


def wrong(feedback, hint=""):
    return feedback.correct is False and hint in feedback.message


# --- the book's exercise 6.3: the last real token -----------------------------------------------


def last_real(logits, input_ids, pad_id):
    """The reference solution."""
    lengths = (input_ids != pad_id).sum(dim=1)
    return logits[torch.arange(logits.shape[0]), lengths - 1]


def last_real_by_loop(logits, input_ids, pad_id):
    """Another right answer: a loop over rows, returning a tensor of another dtype."""
    rows = []
    for row_logits, ids in zip(logits, input_ids):
        real = [i for i, token in enumerate(ids.tolist()) if token != pad_id]
        rows.append(row_logits[real[-1]])
    return torch.stack(rows).double()


def test_the_reference_and_a_loop_pass():
    assert right(ex.check_last_real_token_logits(last_real))
    assert right(ex.check_last_real_token_logits(last_real_by_loop))


@pytest.mark.parametrize("slip, hint", [
    (lambda logits, ids, pad: logits[:, -1, :], "position -1"),
    (lambda logits, ids, pad: logits[:, 0, :], "first token"),
    # the first padding token: the row without padding raises IndexError, which is reported
    (lambda logits, ids, pad: logits[torch.arange(len(ids)), (ids != pad).sum(1)], "raised IndexError"),
    (lambda logits, ids, pad: logits[torch.arange(len(ids)), (ids != pad).sum(1).clamp(max=5)],
     "one position too far"),
    (lambda logits, ids, pad: logits[torch.arange(len(ids)), (ids == pad).sum(1)], ""),
])
def test_typical_slips_are_refused_with_their_hint(slip, hint):
    assert wrong(ex.check_last_real_token_logits(slip), hint)


@pytest.mark.parametrize("answer, hint", [
    (lambda logits, ids, pad: logits, "expected shape"),          # returns its input
    (lambda logits, ids, pad: torch.zeros(4, 3), ""),             # zeros of the right shape
    (lambda logits, ids, pad: last_real(logits, ids, pad).T, "expected shape"),  # transposed
    (lambda logits, ids, pad: last_real(logits, ids, pad).tolist(), "return a tensor"),
    (lambda logits, ids, pad: None, "returned None"),
    (lambda logits, ids, pad: 1 / 0, "ZeroDivisionError"),
    ("logits[:, -1]", ""),
    (42, ""),
])
def test_malformed_and_trivial_answers_are_refused(answer, hint):
    assert wrong(ex.check_last_real_token_logits(answer), hint)


def test_the_unwritten_exercise_is_not_answered():
    def last_real_token_logits(logits, input_ids, pad_id):
        ...  # your code here

    assert ex.check_last_real_token_logits(last_real_token_logits).correct is None
    assert ex.check_last_real_token_logits(None).correct is None


# --- multiple choice and free text ----------------------------------------------------------------


@pytest.mark.parametrize("answer", ["all", "All layers", "all layers.", "everything"])
def test_trainable_choice_accepts_all_layers(answer):
    assert right(ex.check_trainable_choice(answer))


@pytest.mark.parametrize("answer, hint", [
    ("last block", "strong base like GPT-2"),
    ("the head", "strong base like GPT-2"),
    ("small", "answer with one of"),                # contains "all"
    ("last block, not all", "answer with one of"),  # names both
    ("not all", "answer with one of"),
    ("", "answer with one of"),
    (1, "not text"),
])
def test_trainable_choice_refuses_wrong_and_ambiguous_answers(answer, hint):
    assert wrong(ex.check_trainable_choice(answer), hint)


@pytest.mark.parametrize("answer", [0.9, 27 / 30, torch.tensor(0.9)])
def test_accuracy_accepts_the_fraction(answer):
    assert right(ex.check_accuracy(answer))


@pytest.mark.parametrize("answer, hint", [
    (90, "percentage"), ("90%", "not a number"), ("0.9", "not a number"), (0.09, "correct predictions"),
    (270, "correct predictions"), (True, "not a number"), (float("nan"), "not a number"),
])
def test_accuracy_refuses_the_percentage_strings_and_wrong_numbers(answer, hint):
    assert wrong(ex.check_accuracy(answer), hint)
