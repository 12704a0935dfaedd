"""Notebook 04's new checkers: causal attention by hand and the book's exercise 3.1.

Each accepts the right answer, names the typical slip in its hint, and refuses malformed and
trivial answers without raising (test_exercises.py runs every checker on 11 malformed answers).
"""

import pytest
import torch
import torch.nn.functional as F

from helpers import exercises as ex


def right(feedback):
    return feedback.correct is True


def wrong(feedback, hint=""):
    return feedback.correct is False and hint in feedback.message


# --- exercise 1: causal attention without scaled_dot_product_attention --------------------------


def attention(queries, keys, values, *, scale="sqrt", mask="triu", dim=-1, after=False):
    """The reference solution, with switches for the slips students make."""
    n, d_k = queries.shape[-2], keys.shape[-1]
    scores = queries @ keys.transpose(-2, -1)
    scores = scores / {"sqrt": d_k**0.5, "none": 1, "d_k": d_k, "tokens": n**0.5,
                       "d_v": values.shape[-1] ** 0.5}[scale]
    blocked = {"triu": torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1),
               "tril": torch.tril(torch.ones(n, n, dtype=torch.bool), diagonal=-1),
               "triu0": torch.triu(torch.ones(n, n, dtype=torch.bool)),
               "none": torch.zeros(n, n, dtype=torch.bool)}[mask]
    if after:  # mask after the softmax, without renormalising
        return (torch.softmax(scores, dim=dim) * ~blocked) @ values
    return torch.softmax(scores.masked_fill(blocked, -torch.inf), dim=dim) @ values


def test_the_reference_solution_and_a_renormalised_one_pass():
    assert right(ex.check_causal_attention(attention))

    def renormalised(q, k, v):  # the notebook's first way: zero the future, renormalise
        w = torch.softmax(q @ k.transpose(-2, -1) / k.shape[-1] ** 0.5, dim=-1)
        w = torch.tril(w)
        return (w / w.sum(dim=-1, keepdim=True)) @ v

    assert right(ex.check_causal_attention(renormalised))


@pytest.mark.parametrize("slip, hint", [
    ({"scale": "none"}, "no scaling"),
    ({"scale": "d_k"}, "square root"),
    ({"scale": "tokens"}, "not by the number of tokens"),
    ({"scale": "d_v"}, "not the values'"),
    ({"mask": "none"}, "no mask"),
    ({"mask": "tril"}, "wrong side"),
    ({"mask": "triu0"}, "NaN"),
    ({"dim": -2}, "wrong dimension"),
    ({"after": True}, "after the softmax"),
])
def test_each_slip_gets_its_hint(slip, hint):
    feedback = ex.check_causal_attention(lambda q, k, v: attention(q, k, v, **slip))
    assert wrong(feedback, hint), feedback.message


def test_multiplying_by_a_mask_of_minus_inf_is_named():
    def times_inf(q, k, v):
        n = q.shape[-2]
        future = torch.triu(torch.ones(n, n), diagonal=1)
        scores = q @ k.transpose(-2, -1) / k.shape[-1] ** 0.5 + future * -torch.inf
        return torch.softmax(scores, dim=-1) @ v

    assert wrong(ex.check_causal_attention(times_inf), "masked_fill")


def test_returning_the_weights_is_named():
    def weights_only(q, k, v):
        return attention(q, k, torch.eye(q.shape[-2]).expand(*q.shape[:-1], q.shape[-2]))

    assert wrong(ex.check_causal_attention(weights_only), "attention weights")


@pytest.mark.filterwarnings("ignore:The use of `x.T`")  # the slip under test
def test_a_transpose_that_only_works_on_one_sequence_gets_a_batch_hint():
    def dot_T(q, k, v):
        n = q.shape[0]
        scores = (q @ k.T) / k.shape[-1] ** 0.5
        scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), -torch.inf)
        return torch.softmax(scores, dim=-1) @ v

    assert wrong(ex.check_causal_attention(dot_T), "transpose(-2, -1)")


def test_the_fused_kernel_and_the_helper_are_refused():
    def fused(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    assert wrong(ex.check_causal_attention(fused), "scaled_dot_product_attention")
    from helpers.attention import causal_attention_weights, causal_mask

    def helper(q, k, v):
        return causal_attention_weights(q, k, causal_mask(5), torch.nn.Dropout(0.0)) @ v

    assert wrong(ex.check_causal_attention(helper), "causal_attention_weights")
    # the kernel is back after the check
    assert F.scaled_dot_product_attention(*(torch.ones(1, 2, 2),) * 3).shape == (1, 2, 2)


@pytest.mark.parametrize("answer", [
    lambda q, k, v: v, lambda q, k, v: q, lambda q, k, v: torch.zeros_like(v),
    lambda q, k, v: 0.5, lambda q, k, v: "context", lambda q, k, v: None, lambda q, k: q,
    lambda q, k, v: 1 / 0, 42, "attention",
], ids=["values", "queries", "zeros", "a float", "a string", "None", "two arguments",
        "raises", "an int", "a string answer"])
def test_trivial_and_malformed_answers_are_wrong(answer):
    assert wrong(ex.check_causal_attention(answer))


def test_unanswered_and_random_state():
    assert ex.check_causal_attention(None).correct is None
    torch.manual_seed(0)
    ex.check_causal_attention(attention)
    ex.check_copy_weights(copy_weights)
    assert torch.equal(torch.rand(3), (torch.manual_seed(0), torch.rand(3))[1])


# --- exercise 3: the book's 3.1, SelfAttention_v2's weights into SelfAttention_v1 --------------


def copy_weights(sa_v2, sa_v1):
    with torch.no_grad():
        for name in ("W_query", "W_key", "W_value"):
            getattr(sa_v1, name).copy_(getattr(sa_v2, name).weight.T)


def test_the_reference_copy_and_new_parameters_pass():
    assert right(ex.check_copy_weights(copy_weights))

    def as_new_parameters(sa_v2, sa_v1):
        sa_v1.W_query = torch.nn.Parameter(sa_v2.W_query.weight.T.detach().clone())
        sa_v1.W_key = torch.nn.Parameter(sa_v2.W_key.weight.T.detach().clone())
        sa_v1.W_value = torch.nn.Parameter(sa_v2.W_value.weight.T.detach().clone())

    assert right(ex.check_copy_weights(as_new_parameters))


def test_forgotten_transpose_is_named_whether_it_raises_or_not():
    def copy_no_T(sa_v2, sa_v1):
        with torch.no_grad():
            for name in ("W_query", "W_key", "W_value"):
                getattr(sa_v1, name).copy_(getattr(sa_v2, name).weight)

    assert wrong(ex.check_copy_weights(copy_no_T), ".weight.T")

    def assign_no_T(sa_v2, sa_v1):  # runs without error; only the values show the slip
        for name in ("W_query", "W_key", "W_value"):
            getattr(sa_v1, name).data = getattr(sa_v2, name).weight.data.clone()

    assert wrong(ex.check_copy_weights(assign_no_T), "not transposed")


def test_only_the_query_copied_is_named():
    def query_only(sa_v2, sa_v1):
        with torch.no_grad():
            sa_v1.W_query.copy_(sa_v2.W_query.weight.T)

    assert wrong(ex.check_copy_weights(query_only), "copy all three")


def test_other_slips():
    def no_grad_missing(sa_v2, sa_v1):
        sa_v1.W_query.copy_(sa_v2.W_query.weight.T)

    assert wrong(ex.check_copy_weights(no_grad_missing), "torch.no_grad()")

    def backwards(sa_v2, sa_v1):
        with torch.no_grad():
            for name in ("W_query", "W_key", "W_value"):
                getattr(sa_v2, name).weight.copy_(getattr(sa_v1, name).T)

    assert wrong(ex.check_copy_weights(backwards), "not the other way round")

    def query_everywhere(sa_v2, sa_v1):
        with torch.no_grad():
            for name in ("W_query", "W_key", "W_value"):
                getattr(sa_v1, name).copy_(sa_v2.W_query.weight.T)

    assert wrong(ex.check_copy_weights(query_everywhere), "same name")

    def forward_swapped(sa_v2, sa_v1):  # the same outputs, but no weights copied
        sa_v1.forward = sa_v2.forward

    assert wrong(ex.check_copy_weights(forward_swapped), "unchanged")


@pytest.mark.parametrize("answer", [
    lambda a, b: None, lambda a, b: b, lambda a, b: a, lambda a, b: "done", lambda a: a,
    lambda a, b: 1 / 0, 3, "copy",
], ids=["does nothing", "returns sa_v1", "returns sa_v2", "a string", "one argument",
        "raises", "an int", "a string answer"])
def test_trivial_and_malformed_copies_are_wrong(answer):
    assert wrong(ex.check_copy_weights(answer))
