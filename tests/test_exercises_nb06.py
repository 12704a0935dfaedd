"""Notebook 06's checkers: each accepts the right answer, names the typical slip in its hint,
and refuses wrong, malformed and trivial answers without raising."""

import math

import pytest
import torch

from helpers import exercises as ex
from helpers.checkpoint import load_checkpoint, save_checkpoint
from helpers.model import GPTModel
from helpers.train import calc_loss_batch


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


# --- exercise 4: continue training from the checkpoint (the book's 5.4) --------------------------

TINY = {"vocab_size": 64, "context_length": 8, "emb_dim": 32, "n_heads": 2, "n_layers": 2, "drop_rate": 0.0,
        "qkv_bias": False}
BATCHES = [(ids[:, :-1], ids[:, 1:]) for ids in torch.randint(0, 64, (3, 2, 9), generator=torch.Generator().manual_seed(0))]


def one_epoch(model, optimizer):
    """What train_model_simple does with each batch, without its evaluations and samples."""
    model.train()
    for inputs, targets in BATCHES:
        optimizer.zero_grad()
        calc_loss_batch(inputs, targets, model, "cpu").backward()
        optimizer.step()


def adamw(model):
    return torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny model trained two epochs (6 steps), saved as section 3's run saves its own."""
    torch.manual_seed(123)
    model = GPTModel(TINY)
    optimizer = adamw(model)
    for _ in range(2):
        one_epoch(model, optimizer)
    path = tmp_path_factory.mktemp("checkpoints") / "verdict"
    save_checkpoint(path, model, optimizer, step=5, epoch=1, training={"steps_per_epoch": len(BATCHES)})
    return path


def continued_run(path, *, restore_model=True, restore_optimizer=True, epochs=1, config=TINY):
    torch.manual_seed(7)
    model = GPTModel(config)
    optimizer = adamw(model)
    if restore_model or restore_optimizer:
        load_checkpoint(path, model, optimizer if restore_optimizer else None)
    for _ in range(epochs):
        one_epoch(model, optimizer)
    return model, optimizer


def test_continued_training_reference_passes(checkpoint):
    feedback = ex.check_continued_training(*continued_run(checkpoint), checkpoint)
    assert right(feedback) and "step 6 to 9" in feedback.message
    assert right(ex.check_continued_training(*continued_run(checkpoint), str(checkpoint)))


def test_continued_training_passes_whatever_lr_the_fresh_optimizer_had(checkpoint):
    torch.manual_seed(7)
    model = GPTModel(TINY)
    optimizer = torch.optim.AdamW(model.parameters())  # the default lr: loading restores 0.0004
    load_checkpoint(checkpoint, model, optimizer)
    one_epoch(model, optimizer)
    assert right(ex.check_continued_training(model, optimizer, checkpoint))


@pytest.mark.parametrize("run, hint", [
    ({"restore_optimizer": False}, "Restore its state too"),            # a fresh optimizer
    ({"restore_model": False, "restore_optimizer": False}, "Restore its state too"),  # nothing loaded
    ({"epochs": 0}, "took no step"),                                       # not trained
    ({"epochs": 2}, "2 epochs"),
    ({"restore_model": False, "restore_optimizer": False, "epochs": 0}, "not taken a single step"),
    # a fresh AdamW whose step count happens to match: its running averages still give it away
    ({"restore_optimizer": False, "epochs": 2}, "Restore its state too"),   # the checkpoint's 6 steps
    ({"restore_optimizer": False, "epochs": 3}, "Restore its state too"),   # 6 + 3, the right count
])
def test_continued_training_slips_get_their_hint(checkpoint, run, hint):
    assert wrong(ex.check_continued_training(*continued_run(checkpoint, **run), checkpoint), hint)


def test_continued_training_optimizer_of_another_model(checkpoint):
    model, _ = continued_run(checkpoint)
    _, other_optimizer = continued_run(checkpoint)
    assert wrong(ex.check_continued_training(model, other_optimizer, checkpoint), "continued.parameters()")
    part = torch.optim.AdamW(list(model.parameters())[:3])
    assert wrong(ex.check_continued_training(model, part, checkpoint), "only part")


def test_continued_training_trained_the_old_model_instead(checkpoint):
    """The optimizer was restored for `continued`, but the epoch trained another model."""
    model, optimizer = continued_run(checkpoint, epochs=0)
    other = GPTModel(TINY)
    for inputs, targets in BATCHES:
        optimizer.zero_grad()
        calc_loss_batch(inputs, targets, other, "cpu").backward()
        optimizer.step()  # none of its weights has a gradient: nothing moves, no step counted
    assert wrong(ex.check_continued_training(model, optimizer, checkpoint), "not `model`")
    one_epoch(model, adamw(model))  # `continued` trained, but by an optimizer not passed in
    assert wrong(ex.check_continued_training(model, optimizer, checkpoint), "with `continued_optimizer`")


def test_continued_training_loaded_after_training(checkpoint):
    model, optimizer = continued_run(checkpoint, restore_model=False, restore_optimizer=False)
    load_checkpoint(checkpoint, model, optimizer)  # undoes the epoch just trained
    assert wrong(ex.check_continued_training(model, optimizer, checkpoint), "took no step")
    one_epoch(model, optimizer)
    load_checkpoint(checkpoint, model)  # the weights only: the optimizer's count says trained
    assert wrong(ex.check_continued_training(model, optimizer, checkpoint), "after training")


def test_continued_training_wrong_model_or_optimizer_class(checkpoint):
    small = GPTModel({**TINY, "emb_dim": 16})
    assert wrong(ex.check_continued_training(small, adamw(small), checkpoint), "GPTModel(model_config)")
    model, _ = continued_run(checkpoint)
    adam = torch.optim.Adam(model.parameters())
    one_epoch(model, adam)
    assert wrong(ex.check_continued_training(model, adam, checkpoint), "not of a Adam")
    linear = torch.nn.Linear(2, 2)
    assert wrong(ex.check_continued_training(linear, adamw(linear), checkpoint), "checkpoint's shapes")


def test_continued_training_nan_weights(checkpoint):
    model, optimizer = continued_run(checkpoint)
    with torch.no_grad():
        model.out_head.weight[0, 0] = float("nan")
    assert wrong(ex.check_continued_training(model, optimizer, checkpoint), "NaN")


def test_continued_training_unanswered_and_half_answered(checkpoint):
    assert ex.check_continued_training(None, None, checkpoint).correct is None
    model, optimizer = continued_run(checkpoint)
    assert wrong(ex.check_continued_training(model, None, checkpoint), "continued_optimizer` is still None")
    assert wrong(ex.check_continued_training(None, optimizer, checkpoint), "continued` is still None")
    assert wrong(ex.check_continued_training(model), "continued_optimizer` is still None")


def test_continued_training_without_a_usable_checkpoint(checkpoint, tmp_path):
    model, optimizer = continued_run(checkpoint)
    assert wrong(ex.check_continued_training(model, optimizer, tmp_path / "none"), "section 3")
    assert wrong(ex.check_continued_training(model, optimizer), "checkpoint's path")
    save_checkpoint(tmp_path / "weights-only", model)
    assert wrong(ex.check_continued_training(model, optimizer, tmp_path / "weights-only"), "section 3")


@pytest.mark.parametrize("answer", MALFORMED + ["model", 3, torch.zeros(3), object(), GPTModel])
def test_continued_training_malformed_answers_get_feedback(checkpoint, answer):
    model, optimizer = continued_run(checkpoint)
    for args in ((answer, optimizer, checkpoint), (model, answer, checkpoint), (answer, answer, answer),
                 (model, optimizer, answer)):
        if any(a is None for a in args[:2]) and args[0] is args[1]:
            continue  # (None, None): unanswered, tested above
        feedback = ex.check_continued_training(*args)
        assert feedback.correct is False and feedback.message
