"""Training that survives a stop: the book's loops, plus checkpoints, resuming and live updates.

``train_model_resumable`` runs exactly the steps of ``helpers.train.train_model_simple`` (the same losses,
printed lines and samples; ``tests/test_training_run.py`` checks it) and adds what a long run
in a notebook needs, all keyword-only and off by default:

- a learning-rate warmup and cosine decay and gradient clipping (the book's appendix D);
- a progress bar, and a ``callback`` after each evaluation and each epoch's sample (the live
  ``TrainingDashboard`` plugs in here), which receives a ``TrainingUpdate``;
- checkpoints every ``checkpoint_every`` steps and at the end; pressing stop (KeyboardInterrupt)
  ends training cleanly after the current step: the losses so far are returned, a checkpoint
  is saved, and ``resume=True`` later continues exactly where it stopped, with the same results
  as a run that was never interrupted;
- ``options``: the speed switches of ``helpers.train_options.TrainingOptions``.

``train_classifier`` does the same for notebook 08's loop, ``train_classifier_simple`` in
``helpers.classify``: its steps, plus a progress bar, a ``callback`` that receives a
``ClassifierUpdate`` (the dashboard draws it too) and a clean stop that returns what was
measured so far.

Usage::

    train_losses, val_losses, tokens_seen = train_model_resumable(
        model, train_loader, val_loader, optimizer, device, num_epochs=10, eval_freq=5,
        eval_iter=5, start_context="Every effort moves you", tokenizer=tokenizer,
        callback=TrainingDashboard(), checkpoint_path="checkpoints/verdict", resume=True)
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from .checkpoint import (
    FIX_HINT,
    METADATA_FILE,
    RNG_FILE,
    CheckpointError,
    apply_checkpoint,
    capture_rng_states,
    gpt_config_of,
    previous_checkpoint,
    read_checkpoint,
    restore_rng_states,
    save_checkpoint,
)
from .classify import (
    accuracy_line,
    calc_accuracy_loader,
    calc_loss_batch_classifier,
    evaluate_classifier,
)
from .runtime import interrupts_deferred
from .train import (
    calc_loss_batch,
    check_loaders,
    check_sample_setup,
    evaluate_model,
    generate_sample,
    learning_rate_at,
)
from .train_options import TrainingLoss, TrainingOptions, check_prepared
from .validate import check_can_write, check_int, check_number


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite: the step was not applied, training stopped."""


def diverged_message(loss_value: float, step: int) -> str:
    what = "NaN" if math.isnan(loss_value) else "NaN or infinite"
    return (
        f"Training stopped before step {step}: its loss is {loss_value}, the model's outputs are "
        f"{what} (diverged training?). Lower the learning rate, enable grad_clip (e.g. "
        "grad_clip=1.0), or resume from the last checkpoint; the step was not applied."
    )


def measured_so_far(**curves) -> str:
    """``train losses [5.123, 4.987], val losses [...]``: what a stopped run had measured."""
    def listed(values):
        return "[" + ", ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in values) + "]"

    return ", ".join(f"{name.replace('_', ' ')} {listed(values)}" for name, values in curves.items())

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


CURVES = ("train_losses", "val_losses", "track_tokens_seen", "eval_steps")


def curves_of(record) -> dict[str, list]:
    """Copies of a run's curve lists (``CURVES``), for an update: a snapshot, not a view."""
    return {name: list(getattr(record, name)) for name in CURVES}


def train_model_resumable(
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
    options: TrainingOptions | None = None,
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
    - ``options``: a ``TrainingOptions`` (fused attention, bf16, compile, padded vocabulary,
      chunked loss). ``None`` is the book's plain step. Build the model and optimizer with
      ``prepare_model(model, options)`` and ``make_optimizer(...)`` first.

    Every setting is checked before the first step (numbers, that ``checkpoint_path`` can be
    written, that the tokenizer can encode ``start_context`` and decode the model's ids). A
    NaN or infinite loss stops training (``DivergedError``) before that step is applied. Any
    error after steps were done first saves a checkpoint of the last consistent point (or,
    without ``checkpoint_path``, prints the losses measured so far), then is raised with a
    note saying so.
    """
    run = TrainingRun(
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
        options=options,
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
    except Exception as err:  # keep what was done, then let the error through
        run.stop_failed(err)
        raise
    else:
        try:
            run.stop_finished()
        except KeyboardInterrupt:  # the final save was cut short: save again, as on a stop
            run.stop_interrupted()
    finally:
        run.close()
    state = run.state
    return state.train_losses, state.val_losses, state.track_tokens_seen


class TrainingRun:
    """The bookkeeping of one ``train_model_resumable`` call, so its loop reads like the book's.

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
        options=None,
    ):
        # every setting is checked before anything changes: a mistake costs a second, not a run
        peak_lr = check_settings(
            optimizer, num_epochs, eval_iter, schedule, grad_clip, checkpoint_every, callback,
            options,
        )
        check_loaders(train_loader, val_loader, eval_freq)
        check_resume_setting(resume, checkpoint_path, checkpoint_every)
        if checkpoint_path is not None:  # a typo in the path fails now, not after the last step
            check_can_write(checkpoint_path, "checkpoint_path", folder=True)
        check_sample_setup(model, tokenizer, start_context)  # the sample after each epoch
        if options is not None:
            check_prepared(model, optimizer, options, device)
        self.model, self.optimizer, self.device = model, optimizer, device
        self.train_loader, self.val_loader = train_loader, val_loader
        self.num_epochs, self.eval_freq, self.eval_iter = num_epochs, eval_freq, eval_iter
        self.start_context, self.tokenizer, self.callback = start_context, tokenizer, callback
        self.grad_clip = grad_clip
        self.schedule = {**schedule, "total_steps": len(train_loader) * num_epochs}
        self.scheduled = schedule["warmup_steps"] > 0 or schedule["cosine_decay"]
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.checkpoint_every = checkpoint_every
        self.state = TrainingProgress(peak_lr=peak_lr, steps_per_epoch=len(train_loader))
        self.epoch_start_rng: dict | None = None
        self.bar, self.batch_loss = None, math.nan
        self.stepping = False  # inside optimizer.step: the weights may be half-updated
        resume_from = self._checkpoint_to_resume(resume)
        if resume_from is not None:
            self._resume(resume_from)
        self.first_step = self.state.global_step  # a failure before the next one loses nothing
        self.state.num_epochs = num_epochs
        self.position_rng = capture_rng_states()  # after _resume restored it
        self.seconds_before = self.state.train_seconds
        self.started = self.last_update_time = time.perf_counter()
        self.last_update_tokens = self.state.tokens_seen
        # the book's step unless options are given; built last, as it changes the model
        self.loss = None if options is None else TrainingLoss(model, options, device)
        if progress:
            self._open_progress_bar()

    # --- resuming ----------------------------------------------------------------------------

    def _checkpoint_to_resume(self, resume) -> Path | None:
        """The checkpoint to continue from, or None for a new run.

        ``resume=True`` with nothing at ``checkpoint_path`` takes ``<path>.old``, the previous
        complete checkpoint that a save cut off between its two renames leaves behind; a new
        run (``resume=False``) would replace it at its first save, so it is refused then.
        """
        path = self.checkpoint_path
        if resume is False or resume is None:
            old = previous_checkpoint(path) if path is not None else None
            if old is not None:
                raise ValueError(
                    f"checkpoint_path {path}: the only complete checkpoint there is {old}, left "
                    "by a save that was cut off, and a new run would replace it. Pass "
                    "resume=True to continue from it, or move it away to start afresh."
                )
            return None
        if resume is not True:
            return Path(resume)
        if path.is_dir() and any(path.iterdir()):
            return path
        old = previous_checkpoint(path)
        if old is not None:
            print(f"No checkpoint at {path}, but {old} holds the previous one (a save was cut "
                  "off): resuming from it.")
            return old
        print(f"No checkpoint at {path} yet: starting a new run.")
        return None

    def _resume(self, path: Path) -> None:
        """Load weights, optimizer, progress and RNG states from the checkpoint at ``path``.

        Every file is read and checked first; the model and optimizer change only once all
        of it is known to be sound, so a damaged checkpoint leaves them as they were.
        """
        loaded = read_checkpoint(path, self.model, self.optimizer)
        meta = loaded.metadata
        if not meta.get("training"):
            raise ValueError(
                f"{path} holds no training progress (it was not saved by train_model_resumable); "
                "load its weights with load_checkpoint(path, model) and train afresh."
            )
        state = progress_from(meta["training"], Path(path) / METADATA_FILE)
        if state.steps_per_epoch != len(self.train_loader):
            raise ValueError(
                f"The checkpoint at {path} was trained with {state.steps_per_epoch} batches per "
                f"epoch, this train_loader has {len(self.train_loader)}: the run cannot continue "
                "exactly. Use the same data, batch_size and context length, or load only the "
                "weights (load_checkpoint(path, model)) and start a new run."
            )
        position = _rng_group(loaded.rng_states, "position")
        epoch_start = _rng_group(loaded.rng_states, "epoch_start")
        if "torch" not in position or ("torch" not in epoch_start and state.batches_done > 0):
            raise CheckpointError(
                f"{Path(path) / RNG_FILE} lacks the random-number states the run needs to "
                f"continue exactly; {FIX_HINT}."
            )
        apply_checkpoint(loaded, self.model, self.optimizer)
        restore_rng_states(position)
        self.epoch_start_rng = epoch_start or None
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
        self.model.train()  # as the book's loop: dropout on, whatever mode the model came in
        if self.epoch_start_rng is None:  # a new epoch
            start = capture_rng_states()
            batches = iter(self.train_loader)
            with interrupts_deferred():
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
        if self.loss is None:
            loss = calc_loss_batch(input_batch, target_batch, self.model, self.device)
        else:
            loss = self.loss(input_batch, target_batch)
        loss.backward()
        # the step's one wait for the device: the progress bar shows the value, and a NaN
        # stops training here, before the optimizer would spread it into every weight
        self.batch_loss = loss.item()
        if not math.isfinite(self.batch_loss):
            raise DivergedError(diverged_message(self.batch_loss, step))
        if self.grad_clip is not None and step >= self.schedule["warmup_steps"]:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.grad_clip)
        with interrupts_deferred():  # the update and the counters that record it, or neither
            self.stepping = True
            self.optimizer.step()
            state.tokens_seen += input_batch.numel()
            state.global_step = step
            state.batches_done += 1
            state.learning_rate = lr
            state.eval_pending = step % self.eval_freq == 0
            self._commit()
            self.stepping = False
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(self._postfix(), refresh=False)

    def evaluate(self) -> None:
        """The book's evaluation: both losses, recorded with the tokens seen so far, printed."""
        state = self.state
        train_loss, val_loss = evaluate_model(
            self.model, self.train_loader, self.val_loader, self.device, self.eval_iter
        )
        with interrupts_deferred():
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
        with interrupts_deferred():
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
        if self.checkpoint_path is not None and state.global_step == self.first_step:
            # nothing new: saving would only replace an earlier run's checkpoint there
            message += f"; no step was done, so {self.checkpoint_path} was left as it was"
        elif self.checkpoint_path is not None:
            self.save_at_stop()
            message += f"; checkpoint saved to {self.checkpoint_path}, continue with resume=True"
        self._write(message + ".")
        try:
            self._notify("interrupted")
        except KeyboardInterrupt:  # a callback that stops training may do so again: fine
            pass

    def stop_finished(self) -> None:
        if self.checkpoint_path is not None:
            self.save_at_stop()
        try:
            self._notify("finished")
        except KeyboardInterrupt:  # training is over and saved; the results are returned
            pass

    def stop_failed(self, error: BaseException) -> None:
        """An error stopped training: keep the work done (a checkpoint of the last consistent
        point, or without a checkpoint_path at least the losses, printed), and say so on the
        error itself, where the traceback shows it."""
        state = self.state
        where = f"after step {state.global_step}" if state.global_step >= 0 else "before any step"
        note = f"Training stopped by this error {where} (epoch {state.epoch + 1})"
        if self.checkpoint_path is None:
            note += "; measured so far: " + measured_so_far(**curves_of(state))
        elif state.global_step == self.first_step:
            note += f"; no step was done, so {self.checkpoint_path} was left as it was"
        elif self.stepping:
            note += (
                "; it came inside the optimizer step, so the weights may be half-updated and "
                f"no checkpoint was saved (the last one at {self.checkpoint_path} is intact)"
            )
        else:
            try:
                self.save_at_stop()
                note += f"; checkpoint saved to {self.checkpoint_path}; continue with resume=True"
            except Exception as save_error:
                note += f"; saving a checkpoint failed too ({type(save_error).__name__}: {save_error})"
        self._write(note + ".")
        add_note(error, note + ".")

    def save_at_stop(self) -> None:
        """The save when training ends: Ctrl-C waits until it is written (and a press is
        dropped: training is stopping anyway), so the work done is never lost to a press."""
        with interrupts_deferred(reraise=False):
            self.save()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.loss is not None:
            self.loss.close()

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
            **curves_of(state),
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


PROGRESS_COUNTS = ("epoch", "batches_done", "tokens_seen", "steps_per_epoch", "num_epochs")


def progress_from(data: dict, where: Path) -> TrainingProgress:
    """The ``TrainingProgress`` saved in a checkpoint, after checking each field's type and
    that the curves line up: a damaged file is refused, not trained on."""
    problem = None
    counts = {name: data.get(name, 0) for name in PROGRESS_COUNTS}
    curves = {name: data.get(name, []) for name in CURVES}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()):
        problem = f"its counters are {counts}, not whole numbers of at least 0"
    elif type(data.get("global_step")) is not int or data["global_step"] < -1:
        problem = f"global_step is {data.get('global_step')!r}"
    elif not all(isinstance(v, list) for v in curves.values()) or len(
        {len(v) for v in curves.values()}
    ) != 1:
        problem = "its loss curves are not lists of one length"
    elif not all(isinstance(x, (int, float)) for v in curves.values() for x in v):
        problem = "its loss curves hold something other than numbers"
    elif counts["batches_done"] > counts["steps_per_epoch"]:
        problem = f"batches_done {counts['batches_done']} exceeds {counts['steps_per_epoch']}"
    elif not isinstance(data.get("peak_lr"), (int, float)) or not data["peak_lr"] > 0:
        problem = f"peak_lr is {data.get('peak_lr')!r}"
    elif not isinstance(data.get("eval_pending", False), bool):
        problem = f"eval_pending is {data.get('eval_pending')!r}"
    elif not isinstance(data.get("train_seconds", 0.0), (int, float)) or not isinstance(
        data.get("learning_rate"), (int, float, type(None))
    ):
        problem = "train_seconds or learning_rate is not a number"
    elif not isinstance(data.get("latest_sample"), (str, type(None))):
        problem = f"latest_sample is {data.get('latest_sample')!r}, not text"
    if problem:
        raise CheckpointError(f"{where} is damaged: in its training progress, {problem}; {FIX_HINT}.")
    return TrainingProgress.from_dict(data)


def check_settings(
    optimizer, num_epochs, eval_iter, schedule, grad_clip, checkpoint_every, callback, options
) -> float:
    """Refuse wrong numbers and types before training starts; return the optimizer's lr (the
    peak of the schedule)."""
    check_int(num_epochs, "num_epochs", minimum=1)
    check_int(eval_iter, "eval_iter", minimum=1)
    if checkpoint_every is not None:
        check_int(checkpoint_every, "checkpoint_every", minimum=1)
    check_int(schedule["warmup_steps"], "warmup_steps", minimum=0)
    initial_lr = check_number(schedule["initial_lr"], "initial_lr", low=0)
    min_lr = check_number(schedule["min_lr"], "min_lr", low=0)
    if not isinstance(schedule["cosine_decay"], bool):
        raise ValueError(f"cosine_decay must be True or False, got {schedule['cosine_decay']!r}.")
    if grad_clip is not None:
        check_number(grad_clip, "grad_clip", low=0, low_open=True)
    groups = getattr(optimizer, "param_groups", None)
    if not groups:
        raise ValueError(
            f"optimizer must be a torch optimizer, e.g. torch.optim.AdamW(model.parameters(), "
            f"lr=4e-4), got {type(optimizer).__name__}."
        )
    lr = groups[0].get("lr")
    peak = check_number(float(lr) if isinstance(lr, torch.Tensor) else lr,
                        "the optimizer's learning rate (lr)", low=0, low_open=True)
    if schedule["warmup_steps"] and initial_lr > peak:
        raise ValueError(f"initial_lr {initial_lr} is above the optimizer's lr {peak}, the peak "
                         "that warmup rises to: lower initial_lr.")
    if schedule["cosine_decay"] and min_lr > peak:
        raise ValueError(f"min_lr {min_lr} is above the optimizer's lr {peak}, the peak that "
                         "cosine decay falls from: lower min_lr.")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be a function (or None), got {type(callback).__name__}.")
    if options is not None and not isinstance(options, TrainingOptions):
        raise ValueError(f"options must be a TrainingOptions (or None), got {type(options).__name__}.")
    return peak


def check_resume_setting(resume, checkpoint_path, checkpoint_every) -> None:
    """``resume`` is True, False or a checkpoint folder; the paths are paths."""
    for name, value in (("checkpoint_path", checkpoint_path), ("resume", resume)):
        if value is not None and not isinstance(value, (bool, str, os.PathLike)):
            raise ValueError(f"{name} must be a folder path, got {value!r} ({type(value).__name__}).")
    if checkpoint_path is not None and isinstance(checkpoint_path, bool):
        raise ValueError(f"checkpoint_path must be a folder path, got {checkpoint_path!r}.")
    if resume == "":
        raise ValueError("resume must be True, False or a checkpoint folder, got ''.")
    if resume is True and checkpoint_path is None:
        raise ValueError("resume=True continues from checkpoint_path: give one.")
    if checkpoint_every is not None and checkpoint_path is None:
        raise ValueError("checkpoint_every needs a checkpoint_path to save to.")


def add_note(error: BaseException, note: str) -> None:
    """Attach ``note`` to the error's traceback (Python 3.11+); 3.10 has only the printed line."""
    if hasattr(error, "add_note"):
        error.add_note(note)


def _rng_group(states: dict, prefix: str) -> dict:
    """``{"position.torch": t, ...}`` -> ``{"torch": t, ...}`` for one prefix."""
    start = prefix + "."
    return {name[len(start) :]: t for name, t in states.items() if name.startswith(start)}


# ---------------------------------------------------------------------------------------------
# Fine-tuning a classifier (notebook 08): the book's train_classifier_simple, plus live updates
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierUpdate(TrainingUpdate):
    """A ``TrainingUpdate`` (so ``TrainingDashboard`` can draw it) plus what classification
    adds: examples seen and the accuracies after each epoch. ``sample`` holds the accuracy
    line of the latest epoch; ``tokens_seen`` counts padding too, since the model reads it."""

    examples_seen: int = 0
    train_accs: tuple = ()
    val_accs: tuple = ()


@dataclass
class ClassifierRecord:
    """What a training run has counted and measured so far."""

    num_epochs: int
    steps_per_epoch: int
    step: int = -1  # the last finished optimizer step, as printed: "Step 000000" is the first
    epoch: int = 0  # counted from 0
    examples_seen: int = 0
    tokens_seen: int = 0
    train_losses: list = field(default_factory=list)
    val_losses: list = field(default_factory=list)
    track_tokens_seen: list = field(default_factory=list)
    eval_steps: list = field(default_factory=list)
    train_accs: list = field(default_factory=list)
    val_accs: list = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def append(self, **values) -> None:
        """Append to several lists at once, so an interrupt cannot leave them uneven."""
        with interrupts_deferred():
            for name, value in values.items():
                getattr(self, name).append(value)

    def update(self, event: str, learning_rate: float, sample: str | None) -> ClassifierUpdate:
        elapsed = time.perf_counter() - self.started
        return ClassifierUpdate(
            event=event,
            step=self.step,
            epoch=min(self.epoch + 1, self.num_epochs),
            num_epochs=self.num_epochs,
            steps_per_epoch=self.steps_per_epoch,
            tokens_seen=self.tokens_seen,
            **curves_of(self),
            sample=sample,
            start_context="",
            # averaged over the whole run: evaluations are part of what a step costs here
            tokens_per_second=self.tokens_seen / elapsed if self.tokens_seen else None,
            learning_rate=learning_rate,
            elapsed_seconds=elapsed,
            examples_seen=self.examples_seen,
            train_accs=tuple(self.train_accs),
            val_accs=tuple(self.val_accs),
        )


def train_classifier(
    model,
    train_loader,
    val_loader,
    optimizer,
    device,
    num_epochs: int,
    eval_freq: int,
    eval_iter: int,
    *,
    callback=None,
    progress: bool = True,
):
    """Fine-tune ``model`` as a classifier; return
    ``(train_losses, val_losses, train_accs, val_accs, examples_seen)``.

    The book's loop: one optimizer step per batch; every ``eval_freq`` steps, print both
    losses over ``eval_iter`` batches ("Ep 1 (Step 000000): Train loss ..., Val loss ...");
    after each epoch, print the accuracies over ``eval_iter`` batches. ``progress``: a
    progress bar over the steps. ``callback``: called with a ``ClassifierUpdate`` after each
    evaluation ("evaluation"), each epoch ("epoch_end") and once at the end ("finished" or
    "interrupted"), e.g. a ``TrainingDashboard``. Interrupting (Ctrl-C, Jupyter's stop
    button) ends training early and returns what was recorded so far; the model keeps the
    weights of the last completed step.
    """
    check_int(num_epochs, "num_epochs", minimum=1)
    check_int(eval_iter, "eval_iter", minimum=1)
    check_loaders(train_loader, val_loader, eval_freq)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be a function (or None), got {type(callback).__name__}.")
    rec = ClassifierRecord(num_epochs, len(train_loader))
    log = PrintedLog(len(train_loader) * num_epochs, progress)

    def notify(event: str, sample: str | None = None) -> None:
        if callback is not None:
            callback(rec.update(event, optimizer.param_groups[0]["lr"], sample))

    try:
        for epoch in range(num_epochs):
            rec.epoch = epoch
            model.train()
            for input_batch, target_batch in train_loader:
                optimizer.zero_grad()
                loss = calc_loss_batch_classifier(input_batch, target_batch, model, device)
                loss.backward()
                loss_value = loss.item()  # the progress bar's value; a NaN stops training here
                if not math.isfinite(loss_value):
                    raise DivergedError(diverged_message(loss_value, rec.step + 1))
                with interrupts_deferred():  # the update and its counters, or neither
                    optimizer.step()
                    rec.examples_seen += input_batch.shape[0]
                    rec.tokens_seen += input_batch.numel()
                    rec.step += 1
                log.step(loss_value)
                if rec.step % eval_freq == 0:
                    train_loss, val_loss = evaluate_classifier(
                        model, train_loader, val_loader, device, eval_iter
                    )
                    rec.append(
                        train_losses=train_loss,
                        val_losses=val_loss,
                        track_tokens_seen=rec.tokens_seen,
                        eval_steps=rec.step,
                    )
                    log.write(
                        f"Ep {rec.epoch + 1} (Step {rec.step:06d}): "
                        f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}"
                    )
                    notify("evaluation")
            train_acc = calc_accuracy_loader(train_loader, model, device, eval_iter)
            val_acc = calc_accuracy_loader(val_loader, model, device, eval_iter)
            rec.append(train_accs=train_acc, val_accs=val_acc)
            log.write(accuracy_line(train_acc, val_acc))
            notify("epoch_end", accuracy_line(train_acc, val_acc))
    except KeyboardInterrupt:
        log.write(
            f"Training interrupted after step {rec.step} (epoch {rec.epoch + 1}, "
            f"{rec.examples_seen:,} examples seen); the model keeps the weights trained so far."
        )
        try:
            notify("interrupted")
        except KeyboardInterrupt:  # a second press during the callback: stopping anyway
            pass
    except Exception as err:  # the model keeps its weights; print what was measured, then raise
        note = (
            f"Training stopped by this error after step {rec.step} (epoch {rec.epoch + 1}, "
            f"{rec.examples_seen:,} examples seen); measured so far: "
            + measured_so_far(train_losses=rec.train_losses, val_losses=rec.val_losses,
                              train_accs=rec.train_accs, val_accs=rec.val_accs) + "."
        )
        log.write(note)
        add_note(err, note)
        raise
    else:
        notify("finished")
    finally:
        log.close()
    return rec.train_losses, rec.val_losses, rec.train_accs, rec.val_accs, rec.examples_seen


class PrintedLog:
    """Printed lines, above a progress bar when there is one."""

    def __init__(self, total_steps: int, progress: bool):
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, desc="Training", unit="step", dynamic_ncols=True)

    def step(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"loss {loss:.3f}", refresh=False)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
