"""Notebook 00's exercise 2: ``check_center`` passes the right answer and names each usual slip."""

import pytest
import torch

from helpers import exercises as ex


def right(feedback):
    return feedback.correct is True


def wrong(feedback, hint=""):
    return feedback.correct is False and hint in feedback.message


def test_the_right_answer_passes_written_either_way():
    assert right(ex.check_center(lambda x: x - x.mean(dim=-1, keepdim=True)))
    assert right(ex.check_center(lambda x: x - x.mean(-1).unsqueeze(-1)))
    assert right(ex.check_center(lambda x: x.sub_(x.mean(-1, keepdim=True))))  # in place is fine too


def test_the_reference_solution_in_the_notebook_passes():
    def center(x):
        return x - x.mean(dim=-1, keepdim=True)

    assert right(ex.check_center(center))


@pytest.mark.parametrize("center, hint", [
    # forgetting keepdim is silently wrong on a square matrix, and raises on other shapes
    (lambda x: x - x.mean(dim=-1), "keepdim=True"),
    (lambda x: x - x.mean(), "mean of all the numbers"),
    (lambda x: x - x.mean(dim=0, keepdim=True), "dim=0"),
    (lambda x: x - x.mean(dim=0), "dim=0"),  # the square case: a column mean, broadcast as rows
    (lambda x: (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True), "standard deviation"),
    (lambda x: (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True, correction=0), "standard deviation"),
    (lambda x: x + x.mean(-1, keepdim=True), "subtracted"),
    (lambda x: x, "unchanged"),
    (lambda x: torch.zeros_like(x), "zeros"),
    (lambda x: torch.ones_like(x), "subtracted"),
    (lambda x: x.mean(-1, keepdim=True), "keep x's shape"),
    (lambda x: (x - x.mean(-1, keepdim=True)).flatten(), "keep x's shape"),
    (lambda x: x - x.mean(-1, keepdim=True) + 1e-2, "subtracted"),
    (lambda x: (x - x.mean(-1, keepdim=True)).tolist(), "return a tensor"),
    (lambda x: (x - x.mean(-1, keepdim=True)).numpy(), "return a tensor"),
    (lambda x: 0.0, "return a tensor"),
], ids=["no keepdim", "global mean", "dim 0", "dim 0 no keepdim", "divided by std",
        "divided by biased std", "added", "identity", "zeros", "ones", "only the mean",
        "flattened", "off by a constant", "a list", "a numpy array", "a float"])
def test_wrong_answers_fail_with_a_hint(center, hint):
    feedback = ex.check_center(center)
    assert wrong(feedback, hint), feedback


def test_forgetting_keepdim_on_a_non_square_tensor_gets_the_keepdim_hint():
    """If the silently wrong square case were skipped, the error message still points at keepdim."""
    def only_3d(x):
        if x.ndim == 2 and x.shape[0] == x.shape[1]:
            return x - x.mean(-1, keepdim=True)
        return x - x.mean(-1)

    feedback = ex.check_center(only_3d)
    assert wrong(feedback, "keepdim=True") and "RuntimeError" in feedback.message


def test_a_loop_over_rows_fails_on_other_numbers_of_dimensions():
    def rows_only(x):
        return torch.stack([row - row.mean() for row in x])

    assert wrong(ex.check_center(rows_only), "any number of dimensions")


@pytest.mark.parametrize("answer", [None, ...])
def test_unanswered_is_a_reminder(answer):
    assert ex.check_center(answer).correct is None


@pytest.mark.parametrize("answer", [3, "x - x.mean()", torch.zeros(4, 4), lambda x: 1 / 0,
                                    lambda: 0, lambda x: None])
def test_malformed_answers_fail_without_raising(answer):
    feedback = ex.check_center(answer)
    assert wrong(feedback) and feedback.message


def test_the_student_input_is_a_copy():
    """An answer that changes its input in place must not change the checker's expected values."""
    seen = []

    def center(x):
        seen.append(x)
        return x.sub_(x.mean(-1, keepdim=True))

    assert right(ex.check_center(center)) and len(seen) == 5
