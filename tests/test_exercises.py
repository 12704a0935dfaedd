"""Each checker accepts the right answer, rejects wrong ones with a hint, and never raises."""

from collections import Counter

import pytest
import torch

from helpers import exercises as ex
from helpers.concepts import SimpleNet, count_parameters


def right(feedback):
    return feedback.correct is True


def wrong(feedback):
    return feedback.correct is False and feedback.message


def test_unanswered_is_a_reminder_not_an_error():
    for checker in (ex.check_matmul_shape, ex.check_parameter_count, ex.check_merge_function,
                    ex.check_num_windows, ex.check_make_windows, ex.check_three_token_word):
        feedback = checker(None)
        assert feedback.correct is None and "None" in feedback.message
    assert ex.check_gradients(None, None).correct is None


def test_feedback_renders_as_text_and_html():
    fb = ex.check_matmul_shape((4, 2, 5))
    assert repr(fb).startswith("✅ Correct") and "<b" in fb._repr_html_()
    assert "&lt;" in ex.Feedback(False, "<x>")._repr_html_()


def test_gradients():
    p = ex.GRADIENT_EXERCISE
    w = torch.tensor([p["w"]], requires_grad=True)
    b = torch.tensor([p["b"]], requires_grad=True)
    a = torch.sigmoid(torch.tensor([p["x"]]) * w + b)
    torch.nn.functional.binary_cross_entropy(a, torch.tensor([p["y"]])).backward()
    assert right(ex.check_gradients(w.grad, b.grad))
    assert right(ex.check_gradients(w.grad.item(), b.grad.item()))
    assert wrong(ex.check_gradients(-w.grad, -b.grad))
    assert "∂z/∂w = x" in ex.check_gradients(0.1, b.grad).message


def test_matmul_shape():
    assert right(ex.check_matmul_shape((torch.rand(4, 2, 3) @ torch.rand(3, 5)).shape))
    assert wrong(ex.check_matmul_shape((2, 5)))
    assert wrong(ex.check_matmul_shape([4, 5]))


def test_parameter_count():
    assert right(ex.check_parameter_count(count_parameters(SimpleNet(10, 2))))
    assert "bias" in ex.check_parameter_count(10 * 30 + 30 * 20 + 20 * 2).message
    assert wrong(ex.check_parameter_count(1))


def good_merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i < len(ids) - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def test_merge_function():
    assert right(ex.check_merge_function(good_merge))
    # replacing pairs without skipping the second element is a classic bug
    def overlapping(ids, pair, new_id):
        return [new_id if tuple(ids[i:i + 2]) == tuple(pair) else t for i, t in enumerate(ids)]
    assert wrong(ex.check_merge_function(overlapping))
    assert "raised" in ex.check_merge_function(lambda ids, pair, new_id: 1 / 0).message


def test_pair_counts():
    assert right(ex.check_pair_counts(lambda ids: Counter(zip(ids, ids[1:]))))
    assert wrong(ex.check_pair_counts(lambda ids: Counter(zip(ids, ids[2:]))))


def test_three_token_word():
    assert right(ex.check_three_token_word("Akwirw"))
    assert wrong(ex.check_three_token_word("the"))
    assert "one word made of letters" in ex.check_three_token_word("two words").message
    # counted as it stands in a sentence, with its leading space: " unbelievably" is one token
    assert wrong(ex.check_three_token_word("unbelievably"))
    assert "alone, without the space, 4" in ex.check_three_token_word("unbelievably").message
    assert right(ex.check_three_token_word("hippopotamus"))
    assert right(ex.check_three_token_word("Gisburn"))  # the solutions' two examples
    assert wrong(ex.check_three_token_word("12345678"))


def test_num_windows_and_stride():
    assert right(ex.check_num_windows(23))
    assert "one too many" in ex.check_num_windows(24).message
    assert right(ex.check_no_overlap_stride(6))
    assert "share 2 tokens" in ex.check_no_overlap_stride(4).message
    assert "never inputs" in ex.check_no_overlap_stride(8).message


def test_make_windows():
    def good(ids, max_length, stride):
        return [(ids[i:i + max_length], ids[i + 1:i + max_length + 1])
                for i in range(0, len(ids) - max_length, stride)]
    def off_by_one(ids, max_length, stride):
        return [(ids[i:i + max_length], ids[i + 1:i + max_length + 1])
                for i in range(0, len(ids) - max_length + 1, stride)]
    assert right(ex.check_make_windows(good))
    feedback = ex.check_make_windows(off_by_one)
    # the first windows agree; the feedback says how many and which one is extra
    assert wrong(feedback) and "7 windows, expected 6; the first 6 agree" in feedback.message


def test_a_function_without_return_gets_a_hint():
    def unfinished(*args):
        ...
    for checker in (ex.check_merge_function, ex.check_pair_counts, ex.check_make_windows):
        feedback = checker(unfinished)
        assert feedback.correct is False and "returned None" in feedback.message


def test_embedding_checkers():
    import torch.nn.functional as F

    assert right(ex.check_embedding_shape((torch.randn(2, 6, 16) + torch.randn(6, 16)).shape))
    assert "positional embedding alone" in ex.check_embedding_shape((6, 16)).message
    assert right(ex.check_embedding_parameters(39_383_808))
    assert "add the position" in ex.check_embedding_parameters(50_257 * 768).message
    assert right(ex.check_lookup_function(lambda w, ids: F.one_hot(ids, w.shape[0]).float() @ w))
    assert right(ex.check_lookup_function(lambda w, ids: w[ids]))
    assert wrong(ex.check_lookup_function(lambda w, ids: w[ids + 1 if ids.max() < 9 else ids]))
    assert wrong(ex.check_lookup_function(lambda w, ids: w[0]))
    for forbidden in (lambda w, ids: F.embedding(ids, w), lambda w, ids: torch.embedding(w, ids)):
        feedback = ex.check_lookup_function(forbidden)
        assert wrong(feedback) and "without" in feedback.message


def test_attention_checkers():
    inputs = torch.tensor(ex.ATTENTION_INPUTS)
    assert right(ex.check_attention_weights(torch.softmax(inputs @ inputs[2], dim=0)))
    assert "scores" in ex.check_attention_weights(inputs @ inputs[2]).message
    assert "row 1" in ex.check_attention_weights(torch.softmax(inputs @ inputs[1], dim=0)).message
    scaled = torch.softmax(inputs @ inputs[2] / 3 ** 0.5, dim=0)
    assert "no scaling" in ex.check_attention_weights(scaled).message
    mask = torch.triu(torch.ones(4, 4), diagonal=1).bool()
    assert right(ex.check_causal_mask(mask))
    assert "inverted" in ex.check_causal_mask(~mask).message
    assert "diagonal" in ex.check_causal_mask(torch.triu(torch.ones(4, 4)).bool()).message
    assert wrong(ex.check_causal_mask(torch.ones(3, 3)))
    q = torch.randn(2, 10, 768).view(2, 10, 12, 64)
    assert right(ex.check_split_heads_shape(q.transpose(1, 2).shape))
    assert "transpose" in ex.check_split_heads_shape(q.shape).message


def test_architecture_checkers():
    assert right(ex.check_block_parameters(7_085_568))
    assert "LayerNorm" in ex.check_block_parameters(7_085_568 - 3_072).message
    gelu = lambda x: 0.5 * x * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x + 0.044715 * x**3)))
    assert right(ex.check_gelu_function(gelu))
    assert "ReLU" in ex.check_gelu_function(torch.relu).message
    assert right(ex.check_output_shape((3, 7, 50257)))
    assert wrong(ex.check_output_shape((3, 50257)))


def test_pretraining_checkers():
    import math

    assert right(ex.check_perplexity(torch.exp(torch.tensor(10.7940))))
    assert "not log" in ex.check_perplexity(math.log(10.7940)).message
    assert wrong(ex.check_perplexity(10.7940))

    def good(logits, k):
        top = torch.topk(logits, k).values[-1]
        return torch.where(logits < top, torch.tensor(float("-inf")), logits)
    assert right(ex.check_top_k_filter(good))
    assert wrong(ex.check_top_k_filter(lambda logits, k: torch.topk(logits, k).values))
    assert right(ex.check_overfitting_diagnosis("Overfitting"))
    assert "underfit" in ex.check_overfitting_diagnosis("underfitting").message
    assert wrong(ex.check_overfitting_diagnosis("good fit"))


def test_lora_and_classification_checkers():
    assert right(ex.check_lora_parameters(8 * (768 + 3072)))
    assert "rank × in × out" in ex.check_lora_parameters(8 * 768 * 3072).message
    assert right(ex.check_lora_scaling(32 / 8)) and wrong(ex.check_lora_scaling(0.25))
    assert right(ex.check_why_b_is_zero("b")) and wrong(ex.check_why_b_is_zero("a"))
    assert right(ex.check_last_token_reason("c")) and wrong(ex.check_last_token_reason("a"))
    assert right(ex.check_accuracy(270 / 300)) and "percentage" in ex.check_accuracy(90).message
    assert right(ex.check_trainable_choice("all layers"))
    assert wrong(ex.check_trainable_choice("last block"))


def test_instruction_checkers():
    assert right(ex.check_ignored_targets(5)) and "first padding" in ex.check_ignored_targets(7).message
    assert right(ex.check_rouge_l(2 / 3)) and "recall" in ex.check_rouge_l(0.5).message
    assert right(ex.check_template_mismatch("b")) and wrong(ex.check_template_mismatch("c"))


CHECKERS = sorted(name for name in dir(ex) if name.startswith("check_"))
MALFORMED = {
    "a bare int": 3, "a shape as text": "(4, 2, 5)", "a number as text": "nine",
    "a fraction for a count": 992.7, "NaN": float("nan"), "True": True, "an object": object(),
    "an empty list": [], "a list with text": [1, "a"], "a function that raises": lambda *a: 1 / 0,
    "a dict": {"answer": 1},
}


def test_every_checker_is_covered():
    assert len(CHECKERS) >= 30  # the table below runs each of them


@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("name", CHECKERS)
def test_no_checker_raises_or_passes_a_malformed_answer(name, answer):
    checker = getattr(ex, name)
    arguments = 2 if name == "check_gradients" else 1
    feedback = checker(*[answer] * arguments)
    assert isinstance(feedback, ex.Feedback) and feedback.correct is False and feedback.message


@pytest.mark.parametrize("checker, answer, hint", [
    (ex.check_parameter_count, 992.7, "not a whole number"),
    (ex.check_no_overlap_stride, 6.5, "not a whole number"),
    (ex.check_matmul_shape, 4, "not a shape"),
    (ex.check_matmul_shape, "(4, 2, 5)", "not a shape"),
    (ex.check_parameter_count, "nine", "not a number"),
    (ex.check_num_windows, True, "not a number"),
], ids=["992.7 parameters", "stride 6.5", "shape 4", "shape as text", "count 'nine'", "count True"])
def test_int_truncation_no_longer_passes_a_wrong_answer(checker, answer, hint):
    feedback = checker(answer)
    assert wrong(feedback) and hint in feedback.message
    assert right(ex.check_parameter_count(992.0)) and right(ex.check_parameter_count(torch.tensor(992)))
