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


# --- after the book's exercise 6.1: the share of padding -----------------------------------------


def padding_share(loader, pad_id):
    """The reference solution: padding over all tokens of all batches."""
    pads = tokens = 0
    for input_ids, _ in loader:
        pads += (input_ids == pad_id).sum().item()
        tokens += input_ids.numel()
    return pads / tokens


def padding_share_of_the_dataset(loader, pad_id):
    """Another right answer: from the dataset's padded ids, as a tensor."""
    return (torch.tensor(loader.dataset.encoded_texts) == pad_id).float().mean()


def test_padding_share_passes_the_reference_and_a_dataset_reading():
    assert right(ex.check_padding_share(padding_share))
    assert right(ex.check_padding_share(padding_share_of_the_dataset))


def test_the_loaders_have_a_short_last_batch():
    """Else averaging the batches' shares would be right by accident."""
    for loader in ex._padding_loaders():
        sizes = [len(labels) for _, labels in loader]
        assert sizes[-1] < sizes[0]


@pytest.mark.parametrize("slip, hint", [
    (lambda loader, pad: sum((ids == pad).float().mean().item() for ids, _ in loader) / len(loader),
     "short last batch"),
    (lambda loader, pad: 1 - padding_share(loader, pad), "share of real tokens"),
    (lambda loader, pad: 100 * padding_share(loader, pad), "percentage"),
    (lambda loader, pad: (next(iter(loader))[0] == pad).float().mean(), "first batch only"),
    (lambda loader, pad: sum((ids == pad).sum() for ids, _ in loader), "number of padding tokens"),
    (lambda loader, pad: 0.5, "expected 0.5306"),  # a constant
])
def test_padding_share_slips_are_refused_with_their_hint(slip, hint):
    assert wrong(ex.check_padding_share(slip), hint)


@pytest.mark.parametrize("answer, hint", [
    (lambda loader, pad: str(padding_share(loader, pad)), "not a number"),
    (lambda loader, pad: loader, "not a number"),
    (lambda loader, pad: None, "returned None"),
    (lambda loader, pad: len(loader.dataset.missing), "raised AttributeError"),
    (0.53, "raised TypeError"),
])
def test_padding_share_malformed_answers_are_refused(answer, hint):
    assert wrong(ex.check_padding_share(answer), hint)


# --- after the book's exercise 6.2: which blocks learn -------------------------------------------


def train_last_blocks(model, n):
    """The reference solution."""
    model.requires_grad_(False)
    for part in (*model.trf_blocks[-n:], model.final_norm, model.out_head):
        part.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train_last_blocks_by_name(model, n):
    """Another right answer: by parameter names, returning the count as a tensor."""
    first_trained = len(model.trf_blocks) - n
    for name, p in model.named_parameters():
        block = int(name.split(".")[1]) if name.startswith("trf_blocks.") else None
        p.requires_grad = name.startswith(("final_norm", "out_head")) or (block is not None and block >= first_trained)
    return torch.tensor(sum(p.numel() for p in model.parameters() if p.requires_grad))


def test_train_last_blocks_passes_the_reference_and_a_loop_by_name():
    assert right(ex.check_train_last_blocks(train_last_blocks))
    assert right(ex.check_train_last_blocks(train_last_blocks_by_name))


def without(*parts):
    """The reference, leaving `parts` frozen."""
    def slip(model, n):
        train_last_blocks(model, n)
        for part in parts:
            getattr(model, part).requires_grad_(False)
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    return slip


def first_blocks(model, n):
    model.requires_grad_(False)
    for part in (*model.trf_blocks[:n], model.final_norm, model.out_head):
        part.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def only_freezes(model, n):
    """Freezes the rest, never switches anything on: right for a fresh model only."""
    for part in (model.tok_emb, model.pos_emb, *model.trf_blocks[:-n]):
        part.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def keeps_the_embeddings(model, n):
    train_last_blocks(model, n)
    model.tok_emb.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def counts_everything(model, n):
    train_last_blocks(model, n)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("slip, hint", [
    (without("out_head"), "out_head"),
    (without("final_norm"), "final_norm must learn"),
    (first_blocks, "trains the first 2 block(s)"),
    (only_freezes, "nothing is trainable"),
    (keeps_the_embeddings, "embeddings are still trainable"),
    (lambda model, n: sum(p.numel() for p in model.parameters()), "every parameter is still trainable"),
    (counts_everything, "not their 1,800 parameters"),
    (lambda model, n: train_last_blocks(model, 1), "with n=2"),  # ignores n
])
def test_train_last_blocks_slips_are_refused_with_their_hint(slip, hint):
    assert wrong(ex.check_train_last_blocks(slip), hint)


@pytest.mark.parametrize("answer, hint", [
    (lambda model, n: float(train_last_blocks(model, n)) + 0.5, "not a whole number"),
    (lambda model, n: str(train_last_blocks(model, n)), "not a number"),
    (lambda model, n: train_last_blocks(model, n) and model, "not a number"),
    (lambda model, n: None, "returned None"),
    (lambda model: 0, "raised TypeError"),
    ("model.trf_blocks[-n:]", "raised TypeError"),
])
def test_train_last_blocks_malformed_answers_are_refused(answer, hint):
    assert wrong(ex.check_train_last_blocks(answer), hint)


@pytest.mark.parametrize("checker", [ex.check_padding_share, ex.check_train_last_blocks])
def test_the_unwritten_functions_are_not_answered(checker):
    def untouched(first, second):
        ...  # your code here

    assert checker(untouched).correct is None
    assert checker(None).correct is None
