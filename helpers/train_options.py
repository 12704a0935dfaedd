"""Training faster or leaner without changing what is learnt: the speed options of a training step.

``TrainingOptions`` holds the switches; ``TrainingLoss`` is ``calc_loss_batch`` with them
applied (fused attention, bf16 autocast, ``torch.compile``, a loss computed in chunks);
``prepare_model`` and ``make_optimizer`` apply the ones that act when the model and optimizer
are built (a padded output head, fused AdamW). ``helpers.training_run.train_model_resumable`` and
``helpers.pretrain`` take them; the book's loop (``helpers.train.train_model_simple``) does not.

    options = TrainingOptions.fast(device)
    model = prepare_model(GPTModel(cfg).to(device), options)
    optimizer = make_optimizer(model, options, lr=4e-4, weight_decay=0.1)
    loss = TrainingLoss(model, options, device)(input_batch, target_batch)
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .fused_attention import fused_attention
from .runtime import model_device

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
    fused = options.fused_adamw and fused_adamw_available(model_device(model))
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
