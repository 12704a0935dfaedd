"""Notebook 06's checkers: each accepts the right answer, names the typical slip in its hint,
and refuses wrong, malformed and trivial answers without raising."""

import math

import pytest
import torch

from helpers import exercises as ex


def right(feedback):
    return feedback.correct is True


def wrong(feedback, hint=""):
    return feedback.correct is False and hint in feedback.message


MALFORMED = [None, "forty", [1, 2], lambda *a: 1 / 0, float("nan"), True]


# --- exercise 1: how often is "pizza" drawn (the book's 5.1) -------------------------------------


def counter(scale="divide", draws=1000, seed=123):
    """The reference solution, with switches for the slips students make."""
    logits = torch.tensor(ex.PIZZA_LOGITS)

    def count_pizza(temperature):
        scaled = {"divide": logits / temperature, "multiply": logits * temperature,
                  "none": logits}[scale]
        torch.manual_seed(seed)
        samples = torch.multinomial(torch.softmax(scaled, dim=0), draws, replacement=True)
        return (samples == ex.PIZZA_ID).sum()  # a one-element tensor, as students return it

    return count_pizza


@pytest.mark.parametrize("seed", [0, 123, 2024])
def test_pizza_reference_passes_for_any_seed(seed):
    assert right(ex.check_pizza_count(counter(seed=seed)))


def test_pizza_one_draw_at_a_time_and_an_int_pass():
    logits = torch.tensor(ex.PIZZA_LOGITS)

    def count_pizza(temperature):
        probas = torch.softmax(logits / temperature, dim=0)
        return sum(torch.multinomial(probas, 1).item() == 6 for _ in range(1000))

    assert right(ex.check_pizza_count(count_pizza))


@pytest.mark.parametrize("slip, hint", [("multiply", "do not multiply"), ("none", "divided by the temperature")])
def test_pizza_slips_get_their_hint(slip, hint):
    assert wrong(ex.check_pizza_count(counter(scale=slip)), hint)


def test_pizza_wrong_counts_fail():
    assert wrong(ex.check_pizza_count(counter(draws=100)))      # 100 draws, not 1,000
    assert wrong(ex.check_pizza_count(counter(draws=10_000)))
    assert wrong(ex.check_pizza_count(lambda t: 43))            # a constant
    assert wrong(ex.check_pizza_count(lambda t: 0))
    assert wrong(ex.check_pizza_count(lambda t: t))             # returns its input
    assert wrong(ex.check_pizza_count(lambda t: 0.043 if t == 5 else 0.0))  # a share, not a count


@pytest.mark.parametrize("answer", MALFORMED + [lambda t: "3", lambda t: None, lambda t: torch.zeros(9)])
def test_pizza_malformed_answers_get_feedback(answer):
    feedback = ex.check_pizza_count(answer)
    assert feedback.correct is not True and feedback.message


# --- exercise 3: the KV cache of GPT-2 medium ---------------------------------------------------

WANT = 2 * 24 * 1024 * 1024 * 4 * 4


def test_kv_cache_right_answer_in_any_numeric_form():
    assert right(ex.check_kv_cache_bytes(WANT))
    assert right(ex.check_kv_cache_bytes(float(WANT)))
    assert right(ex.check_kv_cache_bytes(torch.tensor(WANT)))


@pytest.mark.parametrize("answer, hint", [
    (WANT // 2, "multiply by 2"),
    (WANT // 4, "factor of 4"),
    (WANT * 16, "heads"),
    (WANT / 1e6, "not MB"),
    (WANT / 2**20, "not MiB"),
    (WANT + 1, "count the numbers"),
    (0, "count the numbers"),
])
def test_kv_cache_slips_get_their_hint(answer, hint):
    assert wrong(ex.check_kv_cache_bytes(answer), hint)


@pytest.mark.parametrize("answer", MALFORMED + [str(WANT), f"{WANT:,}", math.inf])
def test_kv_cache_malformed_answers_get_feedback(answer):
    feedback = ex.check_kv_cache_bytes(answer)
    assert feedback.correct is not True and feedback.message


def test_top_k_filter_rejects_trivial_answers():
    assert wrong(ex.check_top_k_filter(lambda logits, k: logits))
    assert wrong(ex.check_top_k_filter(lambda logits, k: torch.zeros_like(logits)))
    assert ex.check_top_k_filter(lambda logits, k: 1 / 0).correct is False
