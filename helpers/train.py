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
import os
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
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
from .fused_attention import fused_attention
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
# Efficient training options
# ---------------------------------------------------------------------------------------------

BF16_CHOICES = (False, True, "auto")


@dataclass(frozen=True)
class TrainingOptions:
    """Switches that make training faster or leaner without changing what is learnt.

    Each switch changes results only within floating-point rounding (and, on a GPU, which
    weights dropout draws), except ``bf16``, which trades precision for speed on GPUs that
    have fast bfloat16. ``TrainingOptions(sdpa=False)`` is the book's step exactly.

    - ``sdpa``: PyTorch's fused ``scaled_dot_product_attention`` (``helpers.fused_attention``;
      False: the attention module's explicit maths).
    - ``bf16``: matrix multiplies in bfloat16 under autocast; ``"auto"`` where the GPU
      supports it, ``True`` insists (an error elsewhere), ``False`` never. Weights,
      gradients and the optimizer stay float32. A CPU never gets it: it is slower there.
    - ``fused_adamw``: ``AdamW(fused=True)``, one kernel for the whole update.
    - ``compile``: ``torch.compile`` the model for the training steps (needs a C compiler
      on CPU; the first steps are slow while it compiles).
    - ``pad_vocab_multiple``: pad the output head's rows to a multiple of this (64: 50257 ->
      50304) for faster GPU matrix multiplies. The extra logits are cut off in the forward
      pass, so they are never chosen and never enter the loss.
    - ``loss_chunk_rows``: compute the output head and the cross-entropy this many token
      positions at a time, so the (tokens, vocab) logits never exist all at once.

    ``fused_adamw`` and ``pad_vocab_multiple`` act when the model and optimizer are built
    (``prepare_model`` then ``make_optimizer``); the others act in every training step.
    """

    sdpa: bool = True
    bf16: bool | str = False
    fused_adamw: bool = False
    compile: bool = False
    pad_vocab_multiple: int | None = None
    loss_chunk_rows: int | None = None

    def __post_init__(self):
        if self.bf16 not in BF16_CHOICES:
            raise ValueError(f"bf16 must be False, True or 'auto', got {self.bf16!r}.")
        for name in ("pad_vocab_multiple", "loss_chunk_rows"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}.")

    @classmethod
    def fast(cls, device) -> TrainingOptions:
        """Everything that pays off on ``device`` and changes results only by rounding:
        padding and bf16 only on CUDA, where they are faster; compile only with a compiler."""
        cuda = torch.device(device).type == "cuda"
        return cls(
            fused_adamw=fused_adamw_available(device),
            compile=compile_available(device),
            bf16="auto" if cuda else False,
            pad_vocab_multiple=64 if cuda else None,
            loss_chunk_rows=1024,
        )

    def describe(self) -> str:
        """One line per option: its value and what it does."""
        what = {
            "sdpa": "fused scaled_dot_product_attention" if self.sdpa else "explicit attention",
            "bf16": {False: "float32 throughout", True: "bfloat16 autocast (required)",
                     "auto": "bfloat16 autocast where the GPU supports it"}[self.bf16],
            "fused_adamw": "AdamW(fused=True)" if self.fused_adamw else "AdamW's default kernels",
            "compile": "torch.compile for training steps" if self.compile else "eager",
            "pad_vocab_multiple": "output head as is" if self.pad_vocab_multiple is None
            else f"output head padded to a multiple of {self.pad_vocab_multiple} rows",
            "loss_chunk_rows": "full logits, then cross-entropy" if self.loss_chunk_rows is None
            else f"head + cross-entropy {self.loss_chunk_rows} positions at a time",
        }
        lines = (f"{name:<19} {getattr(self, name)!s:<6} {text}" for name, text in what.items())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


def fused_adamw_available(device) -> bool:
    """Whether ``AdamW(fused=True)`` runs on ``device`` (tried on one tiny parameter)."""
    try:
        weight = torch.zeros(1, device=device, requires_grad=True)
        weight.grad = torch.ones_like(weight)
        torch.optim.AdamW([weight], fused=True).step()
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def compile_available(device) -> bool:
    """Whether ``torch.compile`` can generate code here: on CPU, inductor needs a C compiler."""
    import shutil

    if not hasattr(torch, "compile"):
        return False
    if torch.device(device).type != "cpu":
        return True
    return any(shutil.which(cc) for cc in ("cc", "gcc", "clang", os.environ.get("CXX", "")) if cc)


def use_bf16(option, device_type: str, bf16_supported: bool) -> bool:
    """The bf16 decision, apart from the hardware query so it can be tested anywhere.

    Only CUDA gets bfloat16: on CPU autocast exists but is slower than float32 for training,
    so ``"auto"`` declines there and ``True`` is refused with an explanation.
    """
    if option not in BF16_CHOICES:
        raise ValueError(f"bf16 must be False, True or 'auto', got {option!r}.")
    if option is False:
        return False
    if device_type == "cuda" and bf16_supported:
        return True
    if option == "auto":
        return False
    where = "this GPU does not support bfloat16" if device_type == "cuda" else (
        f"the device is {device_type}, and bfloat16 autocast is only used on CUDA GPUs"
    )
    raise ValueError(f"bf16=True, but {where}. Use bf16='auto' to use it only where it helps.")


def autocast_context(options: TrainingOptions, device):
    """``torch.autocast`` to bfloat16 if ``options.bf16`` applies on ``device``, else a no-op."""
    device_type = torch.device(device).type
    supported = device_type == "cuda" and torch.cuda.is_bf16_supported()
    if use_bf16(options.bf16, device_type, supported):
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    return nullcontext()


def make_optimizer(model: nn.Module, options: TrainingOptions, lr: float, weight_decay: float):
    """The book's ``AdamW(model.parameters(), lr, weight_decay)``, fused if asked and possible."""
    fused = options.fused_adamw and fused_adamw_available(next(model.parameters()).device)
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=fused)


# --- vocabulary padding ----------------------------------------------------------------------


class PaddedOutputHead(nn.Module):
    """A bias-free output head whose weight has extra zero rows, up to a multiple of ``multiple``.

    GPUs multiply matrices fastest when their sizes are multiples of 64; GPT-2's 50,257 is not.
    The forward pass computes the padded logits and returns only the first ``vocab_size``, so
    nothing downstream (loss, argmax, sampling) ever sees the padding, and the extra rows get
    no gradient. The parameter keeps the name ``weight``: the state dict says
    ``out_head.weight`` with shape (padded, emb_dim); ``book_state_dict`` cuts it back.
    """

    def __init__(self, head: nn.Linear, multiple: int):
        super().__init__()
        if head.bias is not None:
            raise ValueError("Only a bias-free output head (the book's out_head) can be padded.")
        self.vocab_size, emb_dim = head.weight.shape
        padded = math.ceil(self.vocab_size / multiple) * multiple
        weight = head.weight.new_zeros(padded, emb_dim)
        weight[: self.vocab_size] = head.weight.detach()
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight)[..., : self.vocab_size]


def pad_output_head(model: nn.Module, multiple: int) -> nn.Module:
    """Replace ``model.out_head`` by a ``PaddedOutputHead`` (before creating the optimizer)."""
    if not isinstance(model.out_head, PaddedOutputHead):
        model.out_head = PaddedOutputHead(model.out_head, multiple)
    return model


def unpad_output_head(model: nn.Module) -> nn.Module:
    """Undo ``pad_output_head``: the book's ``nn.Linear`` head with the trained weights."""
    head = model.out_head
    if isinstance(head, PaddedOutputHead):
        emb_dim = head.weight.shape[1]
        plain = nn.Linear(emb_dim, head.vocab_size, bias=False)
        plain.to(head.weight.device, head.weight.dtype)
        with torch.no_grad():
            plain.weight.copy_(head.weight[: head.vocab_size])
        model.out_head = plain
    return model


def book_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` in the book's shapes: a padded head's extra rows cut off."""
    state = model.state_dict()
    if isinstance(getattr(model, "out_head", None), PaddedOutputHead):
        state["out_head.weight"] = state["out_head.weight"][: model.out_head.vocab_size]
    return state


def prepare_model(model: nn.Module, options: TrainingOptions) -> nn.Module:
    """Apply the options that change the model's layers (padding); call before the optimizer."""
    if options.pad_vocab_multiple is not None:
        pad_output_head(model, options.pad_vocab_multiple)
    return model


# --- the loss, in chunks -----------------------------------------------------------------------


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``hidden @ weight[:vocab].T`` against ``targets``, chunk by chunk.

    The plain loss keeps the (rows, vocab) logits and their log-softmax alive until backward,
    and backward adds a gradient of the same size: for 16 x 1024 tokens and GPT-2's vocabulary
    that is 3.3 GB each in float32. Here a chunk's logits live only inside the loop: the
    gradients with respect to ``hidden`` and ``weight`` are computed right away (softmax minus
    one-hot, the derivative of cross-entropy) and kept, so backward only scales them. Same
    maths and FLOPs; the memory of one chunk of logits, plus one weight-sized gradient.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, vocab_size, chunk_rows, with_grad, ignore_index):
        used = weight[:vocab_size]  # a padded head's extra rows take no part
        total = torch.zeros((), device=hidden.device, dtype=torch.float32)
        grad_hidden = torch.zeros_like(hidden) if with_grad else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if with_grad else None
        for start in range(0, hidden.shape[0], chunk_rows):
            rows = slice(start, start + chunk_rows)
            h, t = hidden[rows], targets[rows]
            valid = t != ignore_index
            safe_t = t.masked_fill(~valid, 0).unsqueeze(1)  # any index; its row is masked out
            log_probs = torch.log_softmax((h @ used.T).float(), dim=-1)
            picked = log_probs.gather(1, safe_t).squeeze(1)
            all_valid = bool(valid.all())  # the usual case in pretraining: no masking needed
            total -= picked.sum() if all_valid else (picked * valid).sum()
            if with_grad:
                grad_logits = log_probs.exp_()  # softmax, in place of the log-probabilities
                minus_one = torch.full_like(safe_t, -1, dtype=torch.float32)
                grad_logits.scatter_add_(1, safe_t, minus_one)  # minus the one-hot target
                if not all_valid:
                    grad_logits.mul_(valid.unsqueeze(1))
                grad_hidden[rows] = grad_logits.to(h.dtype) @ used
                grad_weight[:vocab_size].addmm_(grad_logits.T, h.float())
        count = (targets != ignore_index).sum().clamp(min=1)
        if with_grad:
            ctx.save_for_backward(grad_hidden, grad_weight, count)
            ctx.weight_dtype = weight.dtype
        return total / count

    @staticmethod
    def backward(ctx, grad_loss):
        grad_hidden, grad_weight, count = ctx.saved_tensors
        scale = grad_loss / count  # the gradients above are of the sum; the loss is the mean
        grad_weight = (grad_weight * scale).to(ctx.weight_dtype)
        return grad_hidden * scale.to(grad_hidden.dtype), grad_weight, *([None] * 5)


def chunked_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    chunk_rows: int,
    vocab_size: int | None = None,
    ignore_index: int = -100,
) -> torch.Tensor:
    """``F.cross_entropy(hidden @ weight[:vocab_size].T, targets)`` without all the logits.

    ``hidden`` (rows, emb_dim), ``weight`` (vocab or padded vocab, emb_dim), ``targets``
    (rows,); targets equal to ``ignore_index`` do not count, as in ``F.cross_entropy``.
    """
    vocab_size = weight.shape[0] if vocab_size is None else vocab_size
    with_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    return _ChunkedLinearCrossEntropy.apply(
        hidden, weight, targets, vocab_size, chunk_rows, with_grad, ignore_index
    )


@contextmanager
def _output_head_removed(model: nn.Module):
    """Inside, ``model(x)`` returns the final hidden states; yields the head that was there.

    The same ``nn.Identity`` every time, so a compiled model sees one module, not a new one
    per call (which would make it compile again).
    """
    head = model.out_head
    model.out_head = _IDENTITY
    try:
        yield head
    finally:
        model.out_head = head


_IDENTITY = nn.Identity()


class TrainingLoss:
    """``calc_loss_batch`` with the per-step options applied: attention path, bf16 autocast,
    ``torch.compile`` and the chunked loss. Call ``close()`` to put the attention path back.

    ``forward_model`` is what is called for the forward pass, when it is not ``model``
    itself (a ``DistributedDataParallel`` wrapper around it, say).
    """

    def __init__(self, model, options: TrainingOptions, device, forward_model=None):
        self.model, self.options, self.device = model, options, device
        if options.compile and not compile_available(device):
            raise ValueError(
                "compile=True, but torch.compile cannot generate code here: on CPU it needs "
                "a C compiler (cc or gcc) on the PATH. Install one or use compile=False."
            )
        self.autocast = lambda: autocast_context(options, device)
        self.autocast()  # raises now, not at the first step, if bf16=True cannot be honoured
        self.forward = forward_model if forward_model is not None else model
        if options.compile:
            self.forward = torch.compile(self.forward)
        self.restore_attention = fused_attention(model, options.sdpa)

    def __call__(self, input_batch, target_batch) -> torch.Tensor:
        input_batch, target_batch = input_batch.to(self.device), target_batch.to(self.device)
        with self.autocast():
            if self.options.loss_chunk_rows is None:
                logits = self.forward(input_batch)
                return nn.functional.cross_entropy(logits.flatten(0, 1), target_batch.flatten())
            with _output_head_removed(self.model) as head:
                hidden = self.forward(input_batch)
            vocab = getattr(head, "vocab_size", head.weight.shape[0])
            return chunked_cross_entropy(
                hidden.flatten(0, 1), head.weight, target_batch.flatten(),
                self.options.loss_chunk_rows, vocab_size=vocab,
            )

    def close(self) -> None:
        self.restore_attention()


def check_prepared(model, optimizer, options: TrainingOptions, device) -> None:
    """Raise a ``ValueError`` if the model or optimizer was built without the options that
    act at build time (they cannot be switched on once the optimizer holds the parameters)."""
    if options.pad_vocab_multiple is not None and not isinstance(model.out_head, PaddedOutputHead):
        raise ValueError(
            "pad_vocab_multiple is set but the model's output head is not padded: call "
            "prepare_model(model, options) before creating the optimizer."
        )
    fused = bool(getattr(optimizer, "defaults", {}).get("fused"))
    if options.fused_adamw and not fused and fused_adamw_available(device):
        raise ValueError(
            "fused_adamw is set but the optimizer is not fused: create it with "
            "make_optimizer(model, options, lr, weight_decay)."
        )


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
        options=None,
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
        if options is not None:
            check_prepared(model, optimizer, options, device)
        # the book's step unless options are given; built last, as it changes the model
        self.loss = None if options is None else TrainingLoss(model, options, device)
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
        self.model.train()  # as the book's loop: dropout on, whatever mode the model came in
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
        if self.loss is None:
            loss = calc_loss_batch(input_batch, target_batch, self.model, self.device)
        else:
            loss = self.loss(input_batch, target_batch)
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
