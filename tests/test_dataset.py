"""helpers.dataset on the book's exact examples (GPT-2 tokens of the-verdict)."""

import pytest
import torch

from helpers.data import read_text
from helpers.dataset import GPTDatasetV1, create_dataloader_v1, window_starts
from helpers.tokenizer import gpt2_tokenizer


@pytest.fixture(scope="module")
def verdict():
    return read_text("the-verdict.txt")


def test_window_starts_is_the_books_range():
    assert list(window_starts(10, 4, 1)) == [0, 1, 2, 3, 4, 5]
    assert list(window_starts(10, 4, 4)) == [0, 4]
    assert list(window_starts(5, 4, 1)) == [0]  # 5 tokens: exactly one window of 4 + 1 target
    with pytest.raises(ValueError, match="at least 1"):
        window_starts(10, 4, 0)


def test_first_batch_stride_1(verdict):
    loader = create_dataloader_v1(verdict, batch_size=1, max_length=4, stride=1, shuffle=False)
    inputs, targets = next(iter(loader))
    assert inputs.tolist() == [[40, 367, 2885, 1464]]
    assert targets.tolist() == [[367, 2885, 1464, 1807]]
    second = list(iter(loader))[1]
    assert second[0].tolist() == [[367, 2885, 1464, 1807]]
    assert second[1].tolist() == [[2885, 1464, 1807, 3619]]


def test_batch_8_stride_4_matches_the_book(verdict):
    loader = create_dataloader_v1(verdict, batch_size=8, max_length=4, stride=4, shuffle=False)
    inputs, targets = next(iter(loader))
    assert inputs.tolist() == [
        [40, 367, 2885, 1464],
        [1807, 3619, 402, 271],
        [10899, 2138, 257, 7026],
        [15632, 438, 2016, 257],
        [922, 5891, 1576, 438],
        [568, 340, 373, 645],
        [1049, 5975, 284, 502],
        [284, 3285, 326, 11],
    ]
    assert targets.tolist() == [
        [367, 2885, 1464, 1807],
        [3619, 402, 271, 10899],
        [2138, 257, 7026, 15632],
        [438, 2016, 257, 922],
        [5891, 1576, 438, 568],
        [340, 373, 645, 1049],
        [5975, 284, 502, 284],
        [3285, 326, 11, 287],
    ]


def test_sample_counts(verdict):
    tokenizer = gpt2_tokenizer()
    assert len(GPTDatasetV1(verdict, tokenizer, max_length=4, stride=1)) == 5_145 - 4
    assert len(GPTDatasetV1(verdict, tokenizer, max_length=4, stride=4)) == 1_286
    assert len(GPTDatasetV1(verdict, tokenizer, max_length=256, stride=128)) == 39


def test_targets_are_inputs_shifted_by_one(verdict):
    dataset = GPTDatasetV1(verdict, gpt2_tokenizer(), max_length=8, stride=3)
    for i in (0, 1, len(dataset) - 1):
        x, y = dataset[i]
        assert x.shape == y.shape == (8,) and x.dtype == torch.long
        assert torch.equal(x[1:], y[:-1])
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_shuffled_loader_is_seeded(verdict):
    def first_batch():
        torch.manual_seed(123)
        loader = create_dataloader_v1(verdict, batch_size=2, max_length=4, stride=4)
        return next(iter(loader))[0]

    assert torch.equal(first_batch(), first_batch())


def test_text_shorter_than_a_window_is_a_clear_error():
    with pytest.raises(ValueError, match="needs max_length \\+ 1 = 9 tokens"):
        GPTDatasetV1("only a few words", gpt2_tokenizer(), max_length=8, stride=1)


def test_too_few_windows_for_one_batch_is_a_clear_error(verdict):
    with pytest.raises(ValueError, match="fewer than batch_size"):
        create_dataloader_v1(verdict[:200], batch_size=64, max_length=32, stride=32)


def test_works_with_the_simple_tokenizer(verdict):
    from helpers.tokenizer import SimpleTokenizerV2, build_vocab

    tokenizer = SimpleTokenizerV2(build_vocab(verdict, special_tokens=("<|endoftext|>", "<|unk|>")))
    dataset = GPTDatasetV1(verdict, tokenizer, max_length=4, stride=4)
    assert len(dataset) == len(range(0, 4_690 - 4, 4))


def test_stride_max_length_leaves_the_tail_unused(verdict):
    """Notebook 02: with stride = max_length = 256 the last 25 tokens of the story are never an
    input (only the first of them is a target): the windows stop where a whole window no longer fits."""
    tokenizer = gpt2_tokenizer()
    ids = tokenizer.encode(verdict)
    dataset = GPTDatasetV1(verdict, tokenizer, max_length=256, stride=256)
    used_as_input = {int(t) for i in range(len(dataset)) for t in range(dataset.starts[i], dataset.starts[i] + 256)}
    assert len(dataset) == 20 and len(ids) - len(used_as_input) == 25
    assert max(used_as_input) == len(ids) - 26  # every unused one is in the tail
    assert dataset[len(dataset) - 1][1][-1].item() == ids[len(ids) - 25]  # last target: first tail token


def test_window_count_has_a_closed_form():
    """The formula of notebook 02's exercise 2, against the range the dataset uses."""
    for n in range(40):
        for max_length in range(1, 10):
            for stride in range(1, 12):
                formula = max(0, (n - max_length - 1) // stride + 1)
                assert formula == len(window_starts(n, max_length, stride)), (n, max_length, stride)
