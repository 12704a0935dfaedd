"""Checkers of notebooks 05 and 07: the right answer passes; typical mistakes, malformed and
trivial answers get a hint and never a pass."""

import math

import torch

from helpers import exercises as ex


def right(feedback):
    return feedback.correct is True


def wrong(feedback):
    return feedback.correct is False


def tanh_gelu(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def test_block_parameters_refuses_text_and_near_misses():
    assert right(ex.check_block_parameters(7_085_568))
    text = ex.check_block_parameters("7,085,568")  # a string is not a number, however right it reads
    assert wrong(text) and "without quotes" in text.message
    assert "LayerNorm" in ex.check_block_parameters(7_085_568 - 3_072).message
    for answer in (7_085_568.5, 0, 124_412_160, True, [7_085_568]):
        assert wrong(ex.check_block_parameters(answer))


def test_gelu_names_exact_gelu_and_relu():
    assert right(ex.check_gelu_function(tanh_gelu))
    exact = ex.check_gelu_function(torch.nn.functional.gelu)  # erf, not tanh: close but not it
    assert wrong(exact) and "exact GELU" in exact.message
    assert "ReLU" in ex.check_gelu_function(torch.relu).message
    for answer in (lambda x: x, torch.zeros_like, lambda x: 0.5 * x * (1 + torch.tanh(x)),
                   lambda x: tanh_gelu(x)[:-1], lambda x: "gelu", lambda x: 1 / 0, "gelu"):
        assert wrong(ex.check_gelu_function(answer))


def test_output_shape_wants_a_tuple():
    assert right(ex.check_output_shape((3, 7, 50257))) and right(ex.check_output_shape(torch.Size([3, 7, 50257])))
    text = ex.check_output_shape("3,7,50257")
    assert wrong(text) and "tuple" in text.message
    for answer in ((3, 50257), (7, 3, 50257), (3, 7, 768), (3, 7), 50257, (3.5, 7, 50257)):
        assert wrong(ex.check_output_shape(answer))


def test_lora_model_parameters_names_each_slip():
    want = 24 * (4 * 8 * 2048 + 2 * 8 * 5120) + 8 * 1026
    assert want == 3_547_152 and right(ex.check_lora_model_parameters(want))
    assert "head" in ex.check_lora_model_parameters(want - 8 * 1026).message
    assert "24 blocks" in ex.check_lora_model_parameters(12 * (want - 8 * 1026) // 24 + 8 * 1026).message
    assert "rank 16" in ex.check_lora_model_parameters(2 * want).message
    for answer in (2_666_528, want + 1, 0, "3,547,152", float(want) + 0.5, None.__class__):
        assert wrong(ex.check_lora_model_parameters(answer))


def test_book_alpha_is_256():
    assert right(ex.check_book_alpha(256)) and right(ex.check_book_alpha(256.0))
    assert "16×" in ex.check_book_alpha(16).message
    for answer in (1, 16, 2, 4, 0, "256", float("nan"), -256):
        assert wrong(ex.check_book_alpha(answer))


def test_both_zero_reads_one_letter():
    for answer in ("c", "C", "(c)", " c. "):
        assert right(ex.check_both_zero(answer))
    for answer in ("a", "b", "because of c", "c or b", "cc", 3, ["c"]):
        assert wrong(ex.check_both_zero(answer))
