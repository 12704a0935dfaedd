"""Each checker accepts the right answer, rejects wrong ones with a hint, and never raises."""

import pytest
import torch

from helpers import exercises as ex
from helpers.concepts import SimpleNet, count_parameters


def right(feedback):
    return feedback.correct is True


def wrong(feedback):
    return feedback.correct is False and feedback.message


def test_unanswered_is_a_reminder_not_an_error():
    for checker in (ex.check_center, ex.check_parameter_count, ex.check_bpe_trainer,
                    ex.check_num_windows, ex.check_make_windows, ex.check_three_token_word):
        feedback = checker(None)
        assert feedback.correct is None and "None" in feedback.message
    assert ex.check_gradients(None, None).correct is None


def test_feedback_renders_as_text_and_html():
    fb = ex.check_num_windows(23)
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


def test_parameter_count():
    assert right(ex.check_parameter_count(count_parameters(SimpleNet(10, 2))))
    assert "bias" in ex.check_parameter_count(10 * 30 + 30 * 20 + 20 * 2).message
    assert wrong(ex.check_parameter_count(1))


def test_three_token_word():
    assert wrong(ex.check_three_token_word("Akwirw"))  # made up: must be a word of The Verdict
    assert wrong(ex.check_three_token_word("the"))
    assert "one word made of letters" in ex.check_three_token_word("two words").message
    # counted as it stands in a sentence, with its leading space: " Florence" is one token
    assert "alone, without the space, 3" in ex.check_three_token_word("Florence").message
    assert "does not occur in The Verdict" in ex.check_three_token_word("unbelievably").message
    assert wrong(ex.check_three_token_word("xqzvkw"))
    assert right(ex.check_three_token_word("mediocrity"))
    assert right(ex.check_three_token_word("Gisburn"))  # the solutions' two examples
    assert wrong(ex.check_three_token_word("12345678"))


def test_num_windows_and_stride():
    assert right(ex.check_num_windows(23))
    assert "one too many" in ex.check_num_windows(24).message


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
    def forgot_return(*args):
        args[0] * 2  # computed, but never returned
    for checker in (ex.check_bpe_trainer, ex.check_center, ex.check_make_windows):
        feedback = checker(forgot_return)
        assert feedback.correct is False and "returned None" in feedback.message


@pytest.mark.parametrize("checker", [ex.check_bpe_trainer, ex.check_center, ex.check_make_windows,
                                     ex.check_num_windows_function, ex.check_lookup_function,
                                     ex.check_input_embeddings, ex.check_causal_attention,
                                     ex.check_copy_weights, ex.check_gelu_function,
                                     ex.check_top_k_filter])
def test_the_function_as_the_cell_gives_it_is_unanswered_not_wrong(checker):
    def untouched(a, b=None, c=None):
        ...  # your code here
    feedback = checker(untouched)
    assert feedback.correct is None and "write the function's body" in feedback.message


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


def test_split_heads_checker():
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
    def good(logits, k):
        top = torch.topk(logits, k).values[-1]
        return torch.where(logits < top, torch.tensor(float("-inf")), logits)
    assert right(ex.check_top_k_filter(good))
    assert wrong(ex.check_top_k_filter(lambda logits, k: torch.topk(logits, k).values))


def test_classification_checkers():
    def padding_share(loader, pad_id):
        batches = [ids for ids, _ in loader]
        return sum((ids == pad_id).sum().item() for ids in batches) / sum(ids.numel() for ids in batches)
    assert right(ex.check_padding_share(padding_share))
    assert wrong(ex.check_padding_share(lambda loader, pad_id: 1 - padding_share(loader, pad_id)))
    def train_last_blocks(model, n):
        model.requires_grad_(False)
        for part in (*model.trf_blocks[-n:], model.final_norm, model.out_head):
            part.requires_grad_(True)
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert right(ex.check_train_last_blocks(train_last_blocks))
    assert wrong(ex.check_train_last_blocks(lambda model, n: train_last_blocks(model, n + 1)))


CHECKERS = sorted(name for name in dir(ex) if name.startswith("check_"))
MALFORMED = {
    "a bare int": 3, "a shape as text": "(4, 2, 5)", "a number as text": "nine",
    "a fraction for a count": 992.7, "NaN": float("nan"), "True": True, "an object": object(),
    "an empty list": [], "a list with text": [1, "a"], "a function that raises": lambda *a: 1 / 0,
    "a dict": {"answer": 1},
}


def test_every_checker_is_covered():
    """The tables below run every checker, and every checker is one a notebook calls: none is
    missing from the tables, and none is left behind when its exercise goes."""
    import re
    from pathlib import Path

    notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    called = {name for nb in notebooks.glob("*.ipynb")
              for name in re.findall(r"exercises\.(check_\w+)", nb.read_text(encoding="utf-8"))}
    assert len(called) == 30 and set(CHECKERS) == called


@pytest.mark.parametrize("checker, answer, hint", [
    (ex.check_parameter_count, 992.7, "not a whole number"),
    (ex.check_num_windows, 6.5, "not a whole number"),
    (ex.check_embedding_shape, 4, "not a shape"),
    (ex.check_embedding_shape, "(2, 6, 16)", "not a shape"),
    (ex.check_parameter_count, "nine", "not a number"),
    (ex.check_num_windows, True, "not a number"),
], ids=["992.7 parameters", "6.5 windows", "shape 4", "shape as text", "count 'nine'", "count True"])
def test_int_truncation_no_longer_passes_a_wrong_answer(checker, answer, hint):
    feedback = checker(answer)
    assert wrong(feedback) and hint in feedback.message
    assert right(ex.check_parameter_count(992.0)) and right(ex.check_parameter_count(torch.tensor(992)))


# Answers a student gives to get past a checker without doing the exercise: a constant, an
# empty answer, every option at once, or a function that returns its input or nothing useful.
TRIVIAL = {
    "zero": 0, "one": 1, "minus one": -1, "empty text": "", "every option": "abcd",
    "empty shape": (), "zero tensor": torch.zeros(3), "returns its first argument": lambda *a: a[0],
    "returns 0": lambda *a: 0, "returns an empty list": lambda *a: [],
    "returns zeros like its input": lambda *a: torch.zeros_like(torch.as_tensor(a[0])),
}


@pytest.mark.parametrize("answer", [*MALFORMED.values(), *TRIVIAL.values()],
                         ids=[*MALFORMED.keys(), *TRIVIAL.keys()])
@pytest.mark.parametrize("name", CHECKERS)
def test_no_checker_raises_or_passes_a_malformed_or_trivial_answer(name, answer):
    checker = getattr(ex, name)
    arguments = 2 if name == "check_gradients" else 1
    feedback = checker(*[answer] * arguments)
    assert isinstance(feedback, ex.Feedback) and feedback.correct is False and feedback.message
