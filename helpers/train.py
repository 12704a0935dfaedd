"""Phase 06, pretraining: the loss, the training loop, and its curves.

The book's API, with the book's names and return values::

    calc_loss_batch(input_batch, target_batch, model, device)        cross-entropy of one batch
    calc_loss_loader(data_loader, model, device, num_batches=None)   mean over the first batches
    evaluate_model(model, train_loader, val_loader, device, eval_iter) -> (train_loss, val_loss)
    generate_and_print_sample(model, tokenizer, device, start_context)
    train_model_simple(model, train_loader, val_loader, optimizer, device, num_epochs,
                       eval_freq, eval_iter, start_context, tokenizer)
        -> (train_losses, val_losses, track_tokens_seen)
    plot_losses(epochs_seen, tokens_seen, train_losses, val_losses) -> Figure

``train_model_simple`` does exactly the book's loop unless asked for more, with keyword-only
options: a learning-rate warmup and cosine decay and gradient clipping (the book's appendix D),
a progress bar, a ``callback`` after each evaluation (the live dashboard plugs in here), and
checkpoints. Pressing stop (KeyboardInterrupt) ends training cleanly: the losses so far are
returned, a checkpoint is saved if a path was given, and ``resume=True`` later continues exactly
where it stopped, with the same results as a run that was never interrupted.

Usage::

    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)
    train_losses, val_losses, tokens_seen = train_model_simple(
        model, train_loader, val_loader, optimizer, device, num_epochs=10, eval_freq=5,
        eval_iter=5, start_context="Every effort moves you", tokenizer=tokenizer)
    epochs_seen = torch.linspace(0, 10, len(train_losses))
    plot_losses(epochs_seen, tokens_seen, train_losses, val_losses);
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from .checkpoint import (
    capture_rng_states,
    gpt_config_of,
    load_checkpoint,
    read_checkpoint_metadata,
    restore_rng_states,
    save_checkpoint,
)
from .model import generate_text_simple, text_to_token_ids, token_ids_to_text

# ---------------------------------------------------------------------------------------------
# The loss
# ---------------------------------------------------------------------------------------------


def calc_loss_batch(input_batch, target_batch, model: nn.Module, device) -> torch.Tensor:
    """Mean cross-entropy of the model's next-token predictions over one batch (a 0-d tensor)."""
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    logits = model(input_batch)  # (batch, n_tokens, vocab_size)
    # cross_entropy wants (N, classes) and (N,): every position of every sequence is one example
    return nn.functional.cross_entropy(logits.flatten(0, 1), target_batch.flatten())


def _empty_loader_message(data_loader, what: str = "The data loader") -> str:
    batch_size = getattr(data_loader, "batch_size", None)
    dataset = getattr(data_loader, "dataset", None)
    windows = f"{len(dataset)} windows" if hasattr(dataset, "__len__") else "too few windows"
    return (
        f"{what} has no batches: its text is too short for one batch ({windows}, "
        f"batch_size={batch_size}; with drop_last=True an incomplete batch is dropped). "
        "Use a longer text, a smaller batch_size or context length (max_length), "
        "or drop_last=False for the validation loader."
    )


def calc_loss_loader(
    data_loader, model: nn.Module, device, num_batches: int | None = None
) -> float:
    """Mean loss over the first ``num_batches`` batches (all of them if ``None``).

    The book returns NaN for an empty loader, which then surfaces much later as a mysterious
    ``nan`` in a plot; here it is a ``ValueError`` that says what to change.
    """
    if len(data_loader) == 0:
        raise ValueError(_empty_loader_message(data_loader))
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    if num_batches < 1:
        raise ValueError(f"num_batches must be at least 1, got {num_batches}.")
    total_loss = 0.0
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i >= num_batches:
            break
        total_loss += calc_loss_batch(input_batch, target_batch, model, device).item()
    return total_loss / num_batches


def perplexity(loss) -> float | torch.Tensor:
    """exp(loss): how many tokens the model is, in effect, choosing between at each step."""
    return torch.exp(loss) if isinstance(loss, torch.Tensor) else math.exp(loss)


@contextmanager
def _eval_mode(model: nn.Module):
    """Eval mode (no dropout) and no gradients inside; the model's previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def evaluate_model(
    model, train_loader, val_loader, device, eval_iter: int
) -> tuple[float, float]:
    """(train loss, validation loss), each over the first ``eval_iter`` batches, in eval mode."""
    with _eval_mode(model):
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    return train_loss, val_loss


def generate_sample(
    model, tokenizer, device, start_context: str, max_new_tokens: int = 50
) -> str:
    """``start_context`` continued greedily by ``max_new_tokens`` tokens, as text."""
    context_size = model.pos_emb.weight.shape[0]
    encoded = text_to_token_ids(start_context, tokenizer).to(device)
    with _eval_mode(model):
        token_ids = generate_text_simple(model, encoded, max_new_tokens, context_size)
    return token_ids_to_text(token_ids, tokenizer)


def generate_and_print_sample(model, tokenizer, device, start_context: str) -> None:
    """Print a 50-token greedy continuation of ``start_context`` on one line."""
    print(generate_sample(model, tokenizer, device, start_context).replace("\n", " "))


# ---------------------------------------------------------------------------------------------
# Learning-rate schedule (appendix D)
# ---------------------------------------------------------------------------------------------


def learning_rate_at(
    step: int,
    *,
    peak_lr: float,
    total_steps: int,
    warmup_steps: int = 0,
    initial_lr: float = 3e-5,
    cosine_decay: bool = False,
    min_lr: float = 1e-6,
) -> float:
    """The learning rate of global step ``step`` (0 = the first step) of ``total_steps``.

    Warmup: rises linearly from ``initial_lr`` at step 0 to ``peak_lr`` at ``warmup_steps``,
    so the first, large and noisy gradients of a random model cannot throw it far off.
    Cosine decay: then falls along half a cosine from ``peak_lr`` to ``min_lr`` at the last
    step, for small, careful steps at the end. Without either, it is ``peak_lr`` throughout.
    """
    if step < warmup_steps:
        return initial_lr + step * (peak_lr - initial_lr) / warmup_steps
    if not cosine_decay:
        return peak_lr
    # the book divides by (total - warmup) and never quite reaches min_lr; -1 lands on it
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps))
    return min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------------------
# What the training loop records and reports
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainingProgress:
    """Where a run stands. Saved in each checkpoint (as JSON), so training can continue."""

    epoch: int = 0  # the epoch in progress, counted from 0
    batches_done: int = 0  # batches of that epoch already trained on
    global_step: int = -1  # the last finished optimizer step (-1: none yet), as in the book
    tokens_seen: int = 0
    train_losses: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    track_tokens_seen: list[int] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)  # the global step of each evaluation
    eval_pending: bool = False  # a step is done but its evaluation is not (it was interrupted)
    latest_sample: str | None = None
    peak_lr: float | None = None  # the optimizer's lr when training started: the schedule's peak
    learning_rate: float | None = None  # of the last step
    train_seconds: float = 0.0  # wall time so far, over all sessions
    steps_per_epoch: int = 0
    num_epochs: int = 0

    @classmethod
    def from_dict(cls, data: dict) -> TrainingProgress:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class TrainingUpdate:
    """What a ``callback`` receives after each evaluation and each epoch's sample.

    ``event``: "evaluation", "epoch_end", then "finished" or "interrupted" once at the end.
    The lists are copies: keeping an update keeps a snapshot.
    """

    event: str
    step: int  # global step, as printed: "Step 000005"
    epoch: int  # counted from 1, as printed: "Ep 1"
    num_epochs: int
    steps_per_epoch: int
    tokens_seen: int
    train_losses: list[float]
    val_losses: list[float]
    track_tokens_seen: list[int]
    eval_steps: list[int]
    sample: str | None  # the latest sample text (after each epoch), newlines kept
    start_context: str
    tokens_per_second: float | None  # since the previous update
    learning_rate: float | None
    elapsed_seconds: float

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.num_epochs

    @property
    def eval_epochs(self) -> list[float]:
        """The epoch (fractional) of each evaluation: 1.0 = the end of the first epoch."""
        return [(step + 1) / self.steps_per_epoch for step in self.eval_steps]


@contextmanager
def _interrupts_deferred(reraise: bool = True):
    """Hold back Ctrl-C (Jupyter's stop button) until the block is done, then raise it
    (or, with ``reraise=False``, drop it).

    Used around an optimizer step and the counters that record it: interrupted half-way,
    some weights would be updated and others not, and no checkpoint could describe that.
    Signals can only be caught in the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        # None: a handler installed outside Python; Python's own is the closest we can restore
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
        if received and reraise:
            raise KeyboardInterrupt


# ---------------------------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------------------------


def train_model_simple(
    model,
    train_loader,
    val_loader,
    optimizer,
    device,
    num_epochs: int,
    eval_freq: int,
    eval_iter: int,
    start_context: str,
    tokenizer,
    *,
    warmup_steps: int = 0,
    initial_lr: float = 3e-5,
    cosine_decay: bool = False,
    min_lr: float = 1e-6,
    grad_clip: float | None = None,
    progress: bool = True,
    callback=None,
    checkpoint_path=None,
    checkpoint_every: int | None = None,
    resume=False,
):
    """Train ``model`` for ``num_epochs``; return ``(train_losses, val_losses, track_tokens_seen)``.

    The book's loop: for each batch, one optimizer step; every ``eval_freq`` steps, print the
    mean train and validation loss over ``eval_iter`` batches; after each epoch, print a sample
    continuing ``start_context``. The extras below are off by default, which leaves the
    optimizer's learning rate untouched and gives the book's numbers.

    - ``warmup_steps``, ``initial_lr``, ``cosine_decay``, ``min_lr``: the learning-rate
      schedule of ``learning_rate_at``, peaking at the optimizer's lr.
    - ``grad_clip``: rescale the gradients to at most this norm once warmup is over
      (the book's appendix D uses 1.0).
    - ``progress``: a progress bar over the steps, with the latest loss.
    - ``callback``: called with a ``TrainingUpdate`` after each evaluation and each epoch's
      sample, e.g. ``TrainingDashboard()``. It should not draw random numbers from torch, or
      a resumed run will differ from an uninterrupted one.
    - ``checkpoint_path``: save a checkpoint there every ``checkpoint_every`` steps, at the
      end, and when interrupted.
    - ``resume``: ``True`` continues from ``checkpoint_path`` if a checkpoint is there
      (else starts afresh); a path continues from that checkpoint. Resuming restores the
      weights, the optimizer, the random-number generators and the position in the epoch,
      so the result equals a run that was never interrupted. ``num_epochs`` counts from the
      very beginning: resuming a finished 10-epoch run with ``num_epochs=15`` adds 5.
    """
    run = _TrainingRun(
        model,
        train_loader,
        val_loader,
        optimizer,
        device,
        num_epochs,
        eval_freq,
        eval_iter,
        start_context,
        tokenizer,
        schedule=dict(
            total_steps=len(train_loader) * num_epochs,
            warmup_steps=warmup_steps,
            initial_lr=initial_lr,
            cosine_decay=cosine_decay,
            min_lr=min_lr,
        ),
        grad_clip=grad_clip,
        progress=progress,
        callback=callback,
        checkpoint_path=checkpoint_path,
        checkpoint_every=checkpoint_every,
        resume=resume,
    )
    try:
        while run.state.epoch < num_epochs:
            batches = run.open_epoch()  # this epoch's batches, from where it stopped
            run.finish_interrupted_evaluation()
            for input_batch, target_batch in batches:
                run.train_step(input_batch, target_batch)  # zero_grad, loss, backward, step
                if run.state.global_step % eval_freq == 0:
                    run.evaluate()  # print "Ep 1 (Step 000000): Train loss ..., Val loss ..."
                run.save_if_due()
            run.end_epoch()  # print a sample, then on to the next epoch
    except KeyboardInterrupt:
        run.stop_interrupted()
    else:
        run.stop_finished()
    finally:
        run.close()
    state = run.state
    return state.train_losses, state.val_losses, state.track_tokens_seen


class _TrainingRun:
    """The bookkeeping of one ``train_model_simple`` call, so its loop reads like the book's.

    Exact resumption rests on three things being saved at a consistent point (a "commit"):
    the counters in ``state``, the random-number generators there (``position_rng``: dropout
    and the next shuffle draw from them), and their state when the epoch began
    (``epoch_start_rng``: the DataLoader draws its shuffled order from it, so restoring it
    regenerates the same order, and the batches already done are skipped).
    """

    def __init__(
        self,
        model,
        train_loader,
        val_loader,
        optimizer,
        device,
        num_epochs,
        eval_freq,
        eval_iter,
        start_context,
        tokenizer,
        *,
        schedule,
        grad_clip,
        progress,
        callback,
        checkpoint_path,
        checkpoint_every,
        resume,
    ):
        if len(train_loader) == 0:
            raise ValueError(_empty_loader_message(train_loader, "The training loader"))
        if len(val_loader) == 0:
            raise ValueError(_empty_loader_message(val_loader, "The validation loader"))
        if eval_freq < 1:
            raise ValueError(f"eval_freq must be at least 1 step, got {eval_freq}.")
        if resume is True and checkpoint_path is None:
            raise ValueError("resume=True continues from checkpoint_path: give one.")
        if checkpoint_every is not None and checkpoint_path is None:
            raise ValueError("checkpoint_every needs a checkpoint_path to save to.")
        self.model, self.optimizer, self.device = model, optimizer, device
        self.train_loader, self.val_loader = train_loader, val_loader
        self.num_epochs, self.eval_freq, self.eval_iter = num_epochs, eval_freq, eval_iter
        self.start_context, self.tokenizer, self.callback = start_context, tokenizer, callback
        self.grad_clip, self.schedule = grad_clip, schedule
        self.scheduled = schedule["warmup_steps"] > 0 or schedule["cosine_decay"]
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.checkpoint_every = checkpoint_every
        self.state = TrainingProgress(
            peak_lr=optimizer.param_groups[0]["lr"], steps_per_epoch=len(train_loader)
        )
        self.epoch_start_rng: dict | None = None
        self.bar, self.batch_loss = None, math.nan
        resume_from = self.checkpoint_path if resume is True else (Path(resume) if resume else None)
        if resume is True and not resume_from.exists():
            print(f"No checkpoint at {resume_from} yet: starting a new run.")
        elif resume_from is not None:
            self._resume(resume_from)
        self.state.num_epochs = num_epochs
        self.position_rng = capture_rng_states()  # after _resume restored it
        self.seconds_before = self.state.train_seconds
        self.started = self.last_update_time = time.perf_counter()
        self.last_update_tokens = self.state.tokens_seen
        if progress:
            self._open_progress_bar()

    # --- resuming ----------------------------------------------------------------------------

    def _resume(self, path: Path) -> None:
        """Load weights, optimizer, progress and RNG states from the checkpoint at ``path``."""
        meta = read_checkpoint_metadata(path)  # check it fits before changing the model
        if not meta.get("training"):
            raise ValueError(
                f"{path} holds no training progress (it was not saved by train_model_simple); "
                "load its weights with load_checkpoint(path, model) and train afresh."
            )
        state = TrainingProgress.from_dict(meta["training"])
        if state.steps_per_epoch != len(self.train_loader):
            raise ValueError(
                f"The checkpoint at {path} was trained with {state.steps_per_epoch} batches per "
                f"epoch, this train_loader has {len(self.train_loader)}: the run cannot continue "
                "exactly. Use the same data, batch_size and context length, or load only the "
                "weights (load_checkpoint(path, model)) and start a new run."
            )
        rng = load_checkpoint(path, self.model, self.optimizer)["rng_states"]
        restore_rng_states(_rng_group(rng, "position"))
        self.epoch_start_rng = _rng_group(rng, "epoch_start") or None
        self.state = state
        print(
            f"Resuming from {path}: epoch {state.epoch + 1}, step {state.global_step}, "
            f"{state.tokens_seen:,} tokens seen."
        )

    # --- the steps of the loop -----------------------------------------------------------------

    def open_epoch(self):
        """An iterator over the rest of this epoch's batches, in the same shuffled order as before.

        A shuffling DataLoader draws its order from torch's global generator when iteration
        starts. A new epoch remembers that generator's state first; resuming inside an epoch
        restores it, so the same order comes out, skips the batches already trained on, and
        then sets the generator to where it was when training stopped.
        """
        if self.epoch_start_rng is None:  # a new epoch
            start = capture_rng_states()
            batches = iter(self.train_loader)
            with _interrupts_deferred():
                self.epoch_start_rng = start
                self._commit()
            return batches
        restore_rng_states(self.epoch_start_rng)
        batches = iter(self.train_loader)
        for _ in range(self.state.batches_done):
            next(batches)
        restore_rng_states(self.position_rng)
        return batches

    def finish_interrupted_evaluation(self) -> None:
        """After resuming from a stop during an evaluation, do that evaluation first."""
        if self.state.eval_pending:
            self.evaluate()

    def train_step(self, input_batch, target_batch) -> None:
        """One optimizer step, as in the book, plus the optional schedule and clipping."""
        state = self.state
        step = state.global_step + 1
        lr = self._set_learning_rate(step)
        self.optimizer.zero_grad()
        loss = calc_loss_batch(input_batch, target_batch, self.model, self.device)
        loss.backward()
        if self.grad_clip is not None and step >= self.schedule["warmup_steps"]:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.grad_clip)
        with _interrupts_deferred():  # the update and the counters that record it, or neither
            self.optimizer.step()
            state.tokens_seen += input_batch.numel()
            state.global_step = step
            state.batches_done += 1
            state.learning_rate = lr
            state.eval_pending = step % self.eval_freq == 0
            self._commit()
        if self.bar is not None:
            self.batch_loss = loss.item()
            self.bar.update(1)
            self.bar.set_postfix_str(self._postfix(), refresh=False)

    def evaluate(self) -> None:
        """The book's evaluation: both losses, recorded with the tokens seen so far, printed."""
        state = self.state
        train_loss, val_loss = evaluate_model(
            self.model, self.train_loader, self.val_loader, self.device, self.eval_iter
        )
        with _interrupts_deferred():
            state.train_losses.append(train_loss)
            state.val_losses.append(val_loss)
            state.track_tokens_seen.append(state.tokens_seen)
            state.eval_steps.append(state.global_step)
            state.eval_pending = False
            self._commit()
        self._write(
            f"Ep {state.epoch + 1} (Step {state.global_step:06d}): "
            f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}"
        )
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix())
        self._notify("evaluation")

    def save_if_due(self) -> None:
        every = self.checkpoint_every
        if self.checkpoint_path is not None and every and (self.state.global_step + 1) % every == 0:
            self.save()

    def end_epoch(self) -> None:
        """Print a sample of what the model writes now, then move on to the next epoch."""
        state = self.state
        sample = generate_sample(self.model, self.tokenizer, self.device, self.start_context)
        state.latest_sample = sample
        self._write(sample.replace("\n", " "))
        self._notify("epoch_end")
        with _interrupts_deferred():
            state.epoch += 1
            state.batches_done = 0
            self.epoch_start_rng = None
            self._commit()

    # --- the end -------------------------------------------------------------------------------

    def stop_interrupted(self) -> None:
        """Stopped by the user: say where, keep a checkpoint, let the callback know."""
        state = self.state
        where = f"after step {state.global_step}" if state.global_step >= 0 else "before any step"
        message = (
            f"Training interrupted {where} (epoch {state.epoch + 1}, "
            f"{state.tokens_seen:,} tokens seen); the model keeps the weights trained so far"
        )
        if self.checkpoint_path is not None:
            # a second press must not cut the save short; training is stopping anyway
            with _interrupts_deferred(reraise=False):
                self.save()
            message += f"; checkpoint saved to {self.checkpoint_path}, continue with resume=True"
        self._write(message + ".")
        try:
            self._notify("interrupted")
        except KeyboardInterrupt:  # a callback that stops training may do so again: fine
            pass

    def stop_finished(self) -> None:
        if self.checkpoint_path is not None:
            self.save()
        self._notify("finished")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def save(self) -> None:
        """Write a checkpoint of the last committed point (see the class docstring)."""
        state = self.state
        state.train_seconds = self._elapsed()
        rng = {f"position.{name}": t for name, t in self.position_rng.items()}
        if self.epoch_start_rng is not None:
            rng.update({f"epoch_start.{name}": t for name, t in self.epoch_start_rng.items()})
        save_checkpoint(
            self.checkpoint_path,
            self.model,
            self.optimizer,
            step=state.global_step,
            epoch=state.epoch,
            config=gpt_config_of(self.model),
            training=asdict(state),
            rng_states=rng,
        )

    # --- helpers -------------------------------------------------------------------------------

    def _commit(self) -> None:
        """Mark a consistent point: a checkpoint taken now resumes exactly from here."""
        self.position_rng = capture_rng_states()

    def _set_learning_rate(self, step: int) -> float:
        if not self.scheduled:  # the book's behaviour: the optimizer's lr, untouched
            return self.optimizer.param_groups[0]["lr"]
        lr = learning_rate_at(step, peak_lr=self.state.peak_lr, **self.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started

    def _update(self, event: str) -> TrainingUpdate:
        state = self.state
        seconds = time.perf_counter() - self.last_update_time
        new_tokens = state.tokens_seen - self.last_update_tokens
        return TrainingUpdate(
            event=event,
            step=state.global_step,
            epoch=min(state.epoch + 1, self.num_epochs),
            num_epochs=self.num_epochs,
            steps_per_epoch=state.steps_per_epoch,
            tokens_seen=state.tokens_seen,
            train_losses=list(state.train_losses),
            val_losses=list(state.val_losses),
            track_tokens_seen=list(state.track_tokens_seen),
            eval_steps=list(state.eval_steps),
            sample=state.latest_sample,
            start_context=self.start_context,
            tokens_per_second=new_tokens / seconds if new_tokens and seconds > 0 else None,
            learning_rate=state.learning_rate,
            elapsed_seconds=self._elapsed(),
        )

    def _notify(self, event: str) -> None:
        if self.callback is None:
            return
        self.callback(self._update(event))
        # the callback's own time does not count against the tokens per second
        self.last_update_time = time.perf_counter()
        self.last_update_tokens = self.state.tokens_seen
        self._commit()

    def _open_progress_bar(self) -> None:
        from tqdm.auto import tqdm

        total = self.state.steps_per_epoch * self.num_epochs
        done = min(self.state.global_step + 1, total)
        self.bar = tqdm(total=total, initial=done, desc="Training", unit="step", dynamic_ncols=True)

    def _postfix(self) -> str:
        text = f"loss {self.batch_loss:.3f}"
        if self.state.val_losses:
            text += f", val {self.state.val_losses[-1]:.3f}"
        return text

    def _write(self, line: str) -> None:
        """Print a line; with a progress bar, above it rather than through it."""
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line)


def _rng_group(states: dict, prefix: str) -> dict:
    """``{"position.torch": t, ...}`` -> ``{"torch": t, ...}`` for one prefix."""
    start = prefix + "."
    return {name[len(start) :]: t for name, t in states.items() if name.startswith(start)}


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------


def compact_count(x: float, _position=None) -> str:
    """12345 -> "12k", 1234567 -> "1.2M": short tick labels for token counts."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{x / size:.3g}{suffix}"
    return f"{x:.0f}"


def _plot_curves(epochs_seen, tokens_seen, train_values, val_values, what: str, log: bool):
    """Training and validation curves over epochs, with tokens seen along the top."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig, ax1 = plt.subplots(figsize=(5, 3))
    ax1.plot(epochs_seen, train_values, label=f"Training {what.lower()}")
    ax1.plot(epochs_seen, val_values, linestyle="-.", label=f"Validation {what.lower()}")
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel(what)
    if log:
        ax1.set_yscale("log")
        ax1.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:,.0f}"))  # not 10^3
    ax1.legend(loc="upper right")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.grid(alpha=0.3)
    # A second x-axis for the same curves: plotting them invisibly against tokens seen gives
    # the top axis the matching range (tokens grow in step with epochs).
    ax2 = ax1.twiny()
    ax2.plot(tokens_seen, train_values, alpha=0)
    ax2.set_xlabel("Tokens seen")
    ax2.xaxis.set_major_formatter(FuncFormatter(compact_count))
    fig.tight_layout()
    return fig


def plot_losses(epochs_seen, tokens_seen, train_losses, val_losses):
    """The book's loss plot: loss over epochs, tokens seen on a second x-axis at the top.

    ``epochs_seen`` as in the book: ``torch.linspace(0, num_epochs, len(train_losses))``.
    Returns the ``Figure``; in a notebook, end the line with ``;``.
    """
    return _plot_curves(epochs_seen, tokens_seen, train_losses, val_losses, "Loss", log=False)


def plot_perplexity(epochs_seen, tokens_seen, train_losses, val_losses):
    """Like ``plot_losses``, but perplexity, exp(loss), on a log scale.

    A perplexity of 50,257 is a uniform guess over GPT-2's vocabulary; 1 is certainty.
    """
    train = [perplexity(float(loss)) for loss in train_losses]
    val = [perplexity(float(loss)) for loss in val_losses]
    return _plot_curves(epochs_seen, tokens_seen, train, val, "Perplexity", log=True)


if __name__ == "__main__":  # usage example: python -m helpers.train
    import matplotlib

    matplotlib.use("Agg")
    from .data import read_text
    from .dataset import create_dataloader_v1
    from .model import GPT_CONFIG_124M, GPTModel
    from .tokenizer import gpt2_tokenizer

    text, tokenizer = read_text("the-verdict.txt"), gpt2_tokenizer()
    split = int(0.9 * len(text))
    cfg = {**GPT_CONFIG_124M, "context_length": 32, "emb_dim": 32, "n_heads": 2, "n_layers": 2}
    torch.manual_seed(123)
    train_loader = create_dataloader_v1(text[:split], batch_size=8, max_length=32, stride=32)
    val_loader = create_dataloader_v1(text[split:], 8, 32, 32, shuffle=False, drop_last=False)
    model = GPTModel(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=0.1)
    train_losses, val_losses, tokens_seen = train_model_simple(
        model,
        train_loader,
        val_loader,
        optimizer,
        "cpu",
        num_epochs=2,
        eval_freq=5,
        eval_iter=2,
        start_context="Every effort moves you",
        tokenizer=tokenizer,
    )
    last = val_losses[-1]
    print(f"{len(train_losses)} evaluations, val loss {last:.3f}, ppl {perplexity(last):.1f}")
