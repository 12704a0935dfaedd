"""helpers.train: losses, the book's training loop, its options, and the plots.

Everything trains a tiny GPT (2 layers, 32 dimensions) on a character-level tokenizer, so a
whole run takes a fraction of a second.
"""

import math
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from helpers.dataset import create_dataloader_v1  # noqa: E402
from helpers.model import GPTModel  # noqa: E402
from helpers.runtime import interrupts_deferred  # noqa: E402
from helpers.train import (  # noqa: E402
    calc_loss_batch,
    calc_loss_loader,
    compact_count,
    evaluate_model,
    generate_and_print_sample,
    generate_sample,
    learning_rate_at,
    perplexity,
    plot_losses,
    plot_perplexity,
    train_model_simple,
)
from helpers.training_run import TrainingUpdate, train_model_resumable  # noqa: E402

TEXT = (
    "Every effort moves you forward. "
    "I had always thought Jack Gisburn rather a cheap genius. "
    "The sun set slowly over the quiet town. "
) * 6
START = "Every effort"
BATCH, CONTEXT = 4, 16


class CharTokenizer:
    """One token per character: a vocabulary of a few dozen, so the model stays tiny."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.ids = {ch: i for i, ch in enumerate(self.chars)}

    def encode(self, text, allowed_special=None):
        return [self.ids[ch] for ch in text]

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


TOKENIZER = CharTokenizer(TEXT)


def tiny_config(drop_rate=0.1):
    return {
        "vocab_size": len(TOKENIZER.chars),
        "context_length": CONTEXT,
        "emb_dim": 32,
        "n_heads": 2,
        "n_layers": 2,
        "drop_rate": drop_rate,
        "qkv_bias": False,
    }


def make_loaders():
    split = int(0.85 * len(TEXT))
    train = create_dataloader_v1(
        TEXT[:split], BATCH, CONTEXT, CONTEXT, shuffle=True, tokenizer=TOKENIZER
    )
    val = create_dataloader_v1(
        TEXT[split:], BATCH, CONTEXT, CONTEXT, shuffle=False, drop_last=False, tokenizer=TOKENIZER
    )
    return train, val


def make_model(seed=123, drop_rate=0.1, lr=4e-3):
    torch.manual_seed(seed)
    model = GPTModel(tiny_config(drop_rate))
    return model, torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)


def train(model, optimizer, loaders, num_epochs=2, eval_freq=3, **options):
    options.setdefault("progress", False)
    train_loader, val_loader = loaders
    return train_model_resumable(
        model,
        train_loader,
        val_loader,
        optimizer,
        "cpu",
        num_epochs=num_epochs,
        eval_freq=eval_freq,
        eval_iter=2,
        start_context=START,
        tokenizer=TOKENIZER,
        **options,
    )


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


@pytest.fixture
def loaders():
    return make_loaders()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --- the loss -----------------------------------------------------------------------------------


def test_calc_loss_batch_is_cross_entropy_over_all_positions(loaders):
    model, _ = make_model(drop_rate=0.0)
    inputs, targets = next(iter(loaders[0]))
    loss = calc_loss_batch(inputs, targets, model, "cpu")
    with torch.no_grad():
        log_probs = torch.log_softmax(model(inputs), dim=-1)
    manual = -log_probs.gather(-1, targets.unsqueeze(-1)).mean()
    assert loss.dim() == 0 and torch.allclose(loss, manual, atol=1e-6)
    # an untrained model guesses about uniformly: loss near ln(vocab_size)
    assert abs(loss.item() - math.log(len(TOKENIZER.chars))) < 0.5


def test_calc_loss_loader_averages_the_first_batches(loaders):
    model, _ = make_model(drop_rate=0.0)
    _, val_loader = loaders
    batches = list(val_loader)
    per_batch = [calc_loss_batch(x, y, model, "cpu").item() for x, y in batches]
    assert calc_loss_loader(val_loader, model, "cpu") == pytest.approx(sum(per_batch) / 2)
    assert calc_loss_loader(val_loader, model, "cpu", num_batches=1) == pytest.approx(per_batch[0])
    assert calc_loss_loader(val_loader, model, "cpu", num_batches=99) == pytest.approx(
        sum(per_batch) / len(per_batch)
    )


def test_empty_loader_is_an_error_that_says_why():
    model, optimizer = make_model()
    # 20 tokens give one window of 16; drop_last with a batch of 4 leaves no batch at all
    dataset = create_dataloader_v1(TEXT[:20], 1, CONTEXT, CONTEXT, tokenizer=TOKENIZER).dataset
    empty = DataLoader(dataset, batch_size=4, drop_last=True)
    with pytest.raises(ValueError, match="too short"):
        calc_loss_loader(empty, model, "cpu")
    train_loader, _ = make_loaders()
    with pytest.raises(ValueError, match="validation loader has no batches"):
        train(model, optimizer, (train_loader, empty))


def test_evaluate_model_uses_eval_mode_and_restores_training(loaders):
    model, _ = make_model(drop_rate=0.5)
    torch.manual_seed(0)  # the same shuffled training batches both times
    first = evaluate_model(model, *loaders, "cpu", eval_iter=2)
    torch.manual_seed(0)
    second = evaluate_model(model, *loaders, "cpu", eval_iter=2)
    assert model.training  # back in training mode...
    assert first == second  # ...but dropout (p=0.5) was off while evaluating
    model.eval()
    evaluate_model(model, *loaders, "cpu", eval_iter=1)
    assert not model.training  # ...and a model in eval mode stays there
    assert all(isinstance(v, float) for v in first)


def test_perplexity():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(50257)) == pytest.approx(50257)
    assert torch.allclose(perplexity(torch.tensor([0.0, 1.0])), torch.tensor([1.0, math.e]))


# --- samples ------------------------------------------------------------------------------------


def test_generate_sample_and_its_printed_form(capsys):
    model, _ = make_model()
    text = generate_sample(model, TOKENIZER, "cpu", START)
    assert text.startswith(START) and len(text) == len(START) + 50  # one character per token
    assert model.training
    newline_model = type("NewlineTokenizer", (CharTokenizer,), {})(TEXT + "\n")
    text = generate_sample(model, newline_model, "cpu", "a\nb")
    generate_and_print_sample(model, newline_model, "cpu", "a\nb")
    printed = capsys.readouterr().out
    assert printed == text.replace("\n", " ") + "\n"  # one line


# --- the training loop --------------------------------------------------------------------------


def test_training_follows_the_books_loop_and_lowers_the_loss(loaders, capsys):
    model, optimizer = make_model()
    steps_per_epoch = len(loaders[0])
    train_losses, val_losses, tokens_seen = train(model, optimizer, loaders, num_epochs=3)
    total_steps = 3 * steps_per_epoch
    eval_steps = list(range(0, total_steps, 3))  # global_step % eval_freq == 0, from step 0
    assert len(train_losses) == len(val_losses) == len(tokens_seen) == len(eval_steps)
    assert tokens_seen == [(step + 1) * BATCH * CONTEXT for step in eval_steps]
    assert all(isinstance(v, float) for v in train_losses + val_losses)
    assert all(isinstance(t, int) for t in tokens_seen)
    assert train_losses[-1] < train_losses[0] - 0.5
    assert val_losses[-1] < val_losses[0]
    out = capsys.readouterr().out.splitlines()
    progress_lines = [line for line in out if line.startswith("Ep ")]
    first = f"Ep 1 (Step 000000): Train loss {train_losses[0]:.3f}, Val loss {val_losses[0]:.3f}"
    assert progress_lines[0] == first
    assert len(progress_lines) == len(eval_steps)
    line_format = r"Ep \d \(Step \d{6}\): Train loss \d+\.\d{3}, Val loss \d+\.\d{3}"
    assert all(re.fullmatch(line_format, line) for line in progress_lines)
    assert progress_lines[-1].startswith(f"Ep 3 (Step {eval_steps[-1]:06d})")
    samples = [line for line in out if line.startswith(START)]
    assert len(samples) == 3  # one per epoch


@pytest.mark.parametrize("handed_over_in", ["train", "eval"])
def test_train_model_runs_exactly_the_steps_of_the_books_loop(loaders, capsys, handed_over_in):
    """train_model_resumable (checkpoints, resume, callbacks) with its extras off is train_model_simple:
    the same losses, tokens, printed lines and final weights, bit for bit. (The book's own
    train_model_simple against ours: tests/test_book_parity.py.)"""

    def run(trainer, **extras):
        model, optimizer = make_model(drop_rate=0.5)
        model.train(handed_over_in == "train")  # both switch dropout on themselves
        torch.manual_seed(7)  # the same shuffles and dropout masks
        result = trainer(model, *loaders, optimizer, "cpu", num_epochs=2, eval_freq=3,
                         eval_iter=2, start_context=START, tokenizer=TOKENIZER, **extras)
        return result, model.state_dict(), capsys.readouterr().out

    (simple, simple_weights, simple_out) = run(train_model_simple)
    (full, full_weights, full_out) = run(train_model_resumable, progress=False)
    assert tuple(simple) == tuple(full) and len(simple[0]) > 3
    assert simple_out == full_out and simple_out.count("Ep 2 (Step") >= 1
    assert all(torch.equal(simple_weights[name], full_weights[name]) for name in simple_weights)


def test_the_books_loop_refuses_what_would_fail_later(loaders):
    model, optimizer = make_model()
    dataset = create_dataloader_v1(TEXT[:20], 1, CONTEXT, CONTEXT, tokenizer=TOKENIZER).dataset
    empty = DataLoader(dataset, batch_size=4, drop_last=True)
    args = dict(device="cpu", num_epochs=1, eval_iter=1, start_context=START, tokenizer=TOKENIZER)
    with pytest.raises(ValueError, match="training loader has no batches"):
        train_model_simple(model, empty, loaders[1], optimizer, eval_freq=1, **args)
    with pytest.raises(ValueError, match="eval_freq must be"):
        train_model_simple(model, *loaders, optimizer, eval_freq=0, **args)


def test_defaults_leave_the_learning_rate_alone(loaders):
    model, optimizer = make_model(lr=1e-3)
    seen = []
    train(model, optimizer, loaders, num_epochs=1, callback=lambda u: seen.append(u.learning_rate))
    assert set(seen) == {1e-3} and optimizer.param_groups[0]["lr"] == 1e-3


def test_learning_rate_schedule_values():
    schedule = dict(peak_lr=1e-3, total_steps=100, warmup_steps=10, initial_lr=1e-5)
    assert learning_rate_at(0, **schedule) == 1e-5
    assert learning_rate_at(5, **schedule) == pytest.approx(1e-5 + 5 * (1e-3 - 1e-5) / 10)
    assert learning_rate_at(10, **schedule) == 1e-3  # end of warmup: the peak
    assert learning_rate_at(99, **schedule) == 1e-3  # no decay asked for
    cosine = dict(schedule, cosine_decay=True, min_lr=1e-6)
    assert learning_rate_at(10, **cosine) == pytest.approx(1e-3)
    assert learning_rate_at(10 + 89 // 2, **cosine) == pytest.approx((1e-3 + 1e-6) / 2, rel=0.02)
    assert learning_rate_at(99, **cosine) == pytest.approx(1e-6)  # the last step: min_lr
    lrs = [learning_rate_at(s, **cosine) for s in range(100)]
    assert lrs[:11] == sorted(lrs[:11]) and lrs[10:] == sorted(lrs[10:], reverse=True)
    assert learning_rate_at(0, peak_lr=2e-3, total_steps=50, cosine_decay=True) == 2e-3


def test_training_applies_the_schedule(loaders):
    model, optimizer = make_model(lr=2e-3)
    steps = 2 * len(loaders[0])
    seen = {}
    train(
        model,
        optimizer,
        loaders,
        eval_freq=1,
        warmup_steps=4,
        initial_lr=1e-4,
        cosine_decay=True,
        min_lr=1e-5,
        callback=lambda u: seen.setdefault(u.step, optimizer.param_groups[0]["lr"]),
    )
    expected = dict(peak_lr=2e-3, total_steps=steps, warmup_steps=4, initial_lr=1e-4)
    expected.update(cosine_decay=True, min_lr=1e-5)
    for step in (0, 2, 4, steps // 2, steps - 1):
        assert seen[step] == pytest.approx(learning_rate_at(step, **expected))
    assert seen[0] == pytest.approx(1e-4) and seen[4] == pytest.approx(2e-3)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)


def grad_norm(model):
    grads = [p.grad.flatten() for p in model.parameters() if p.grad is not None]
    return torch.cat(grads).norm().item()


def test_gradient_clipping_bounds_the_norm(loaders):
    norms = {}
    for clip in (None, 0.05):
        model, optimizer = make_model()
        norms[clip] = []

        def record(update, model=model, norms=norms[clip]):
            if update.event == "evaluation":  # .grad still holds this step's (clipped) gradients
                norms.append(grad_norm(model))

        train(model, optimizer, loaders, num_epochs=1, eval_freq=1, grad_clip=clip, callback=record)
    assert min(norms[None]) > 0.05  # unclipped gradients are larger than the bound...
    assert max(norms[0.05]) <= 0.05 * (1 + 1e-4)  # ...and clipping holds them to it


def test_callback_receives_updates(loaders):
    model, optimizer = make_model()
    updates: list[TrainingUpdate] = []
    train(model, optimizer, loaders, num_epochs=2, eval_freq=4, callback=updates.append)
    events = [u.event for u in updates]
    assert events[-1] == "finished" and events.count("epoch_end") == 2
    evaluations = [u for u in updates if u.event == "evaluation"]
    assert [u.step for u in evaluations] == [u.eval_steps[-1] for u in evaluations]
    assert [len(u.train_losses) for u in evaluations] == list(range(1, len(evaluations) + 1))
    assert all(u.tokens_per_second > 0 for u in evaluations)
    epoch_ends = [u for u in updates if u.event == "epoch_end"]
    assert [u.epoch for u in epoch_ends] == [1, 2]
    assert all(u.sample.startswith(START) and u.start_context == START for u in epoch_ends)
    last = updates[-1]
    assert last.total_steps == 2 * len(loaders[0]) and last.step == last.total_steps - 1
    assert last.eval_epochs[-1] == pytest.approx((last.eval_steps[-1] + 1) / len(loaders[0]))
    assert last.elapsed_seconds > 0


def test_progress_bar_keeps_the_books_lines(loaders, capsys):
    model, optimizer = make_model()
    train(model, optimizer, loaders, num_epochs=1, eval_freq=100, progress=True)
    captured = capsys.readouterr()
    assert "Ep 1 (Step 000000): Train loss" in captured.out
    assert "Training" in captured.err and f"{len(loaders[0])}/{len(loaders[0])}" in captured.err


def test_interrupt_returns_what_was_learnt(loaders, capsys):
    model, optimizer = make_model()

    def stop_at_step_6(update):
        if update.event == "evaluation" and update.step == 6:
            raise KeyboardInterrupt

    train_losses, val_losses, tokens_seen = train(
        model, optimizer, loaders, callback=stop_at_step_6
    )
    assert len(train_losses) == len(val_losses) == 3  # steps 0, 3 and 6
    assert tokens_seen[-1] == 7 * BATCH * CONTEXT
    assert "Training interrupted after step 6 (epoch 1" in capsys.readouterr().out


def test_ctrl_c_waits_for_the_block_to_finish():
    import os
    import signal

    # Python's own handler, as in a terminal or a notebook (a background job starts with SIGINT
    # ignored, and then there would be nothing to restore)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt):
            with interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                done.append("rest of the block")
        assert done == ["rest of the block"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


# --- plots --------------------------------------------------------------------------------------


def test_plot_losses_has_the_tokens_axis_on_top():
    train_losses, val_losses = [9.8, 7.5, 6.1, 5.0], [9.9, 8.0, 7.2, 6.9]
    tokens = [512, 2560, 4608, 6656]
    fig = plot_losses(torch.linspace(0, 2, 4), tokens, train_losses, val_losses)
    bottom, top = fig.axes
    assert bottom.get_xlabel() == "Epochs" and bottom.get_ylabel() == "Loss"
    assert top.get_xlabel() == "Tokens seen"
    labels = [line.get_label() for line in bottom.get_lines()]
    assert labels == ["Training loss", "Validation loss"]  # the book's
    assert list(bottom.get_lines()[1].get_ydata()) == val_losses
    assert top.get_lines()[0].get_alpha() == 0  # only there to give the top axis its range
    # both axes put the first and last evaluation at the same horizontal position
    for i in (0, -1):
        x_bottom = bottom.transData.transform((bottom.get_lines()[0].get_xdata()[i], 0))[0]
        x_top = top.transData.transform((tokens[i], 0))[0]
        assert x_bottom == pytest.approx(x_top, abs=0.5)


def test_plot_perplexity():
    fig = plot_perplexity([0, 1], [100, 200], [2.0, 1.0], [3.0, 2.5])
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "Perplexity"
    assert list(ax.get_lines()[0].get_ydata()) == pytest.approx([math.exp(2), math.e])
    assert fig.axes[1].get_xlabel() == "Tokens seen"


def test_compact_count():
    assert [compact_count(x) for x in (0, 999, 12_345, 1_500_000, 2e9)] == [
        "0",
        "999",
        "12.3k",
        "1.5M",
        "2B",
    ]
