"""Phase 06, pretraining: the loss, the book's training loop, and its curves.

The book's API, with the book's names and return values::

    calc_loss_batch(input_batch, target_batch, model, device)        cross-entropy of one batch
    calc_loss_loader(data_loader, model, device, num_batches=None)   mean over the first batches
    evaluate_model(model, train_loader, val_loader, device, eval_iter) -> (train_loss, val_loss)
    generate_and_print_sample(model, tokenizer, device, start_context)
    train_model_simple(model, train_loader, val_loader, optimizer, device, num_epochs,
                       eval_freq, eval_iter, start_context, tokenizer)
        -> (train_losses, val_losses, track_tokens_seen)
    plot_losses(epochs_seen, tokens_seen, train_losses, val_losses) -> Figure

plus ``learning_rate_at``, the warmup and cosine schedule of the book's appendix D.

``train_model_simple`` is the book's loop, to read. The runs in the notebooks use
``helpers.training_run.train_model_resumable``: the same steps, plus checkpoints, a clean stop and an
exact resume, the schedule, a live dashboard and speed options (``helpers.train_options``).

Usage::

    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)
    train_losses, val_losses, tokens_seen = train_model_simple(
        model, train_loader, val_loader, optimizer, device, num_epochs=10, eval_freq=5,
        eval_iter=5, start_context="Every effort moves you", tokenizer=tokenizer)
    epochs_seen = torch.linspace(0, 10, len(train_losses))
    plot_losses(epochs_seen, tokens_seen, train_losses, val_losses);
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import nn

from .model import generate_text_simple, token_ids_to_text
from .runtime import eval_mode

# ---------------------------------------------------------------------------------------------
# The loss
# ---------------------------------------------------------------------------------------------


def calc_loss_batch(input_batch, target_batch, model: nn.Module, device) -> torch.Tensor:
    """Mean cross-entropy of the model's next-token predictions over one batch (a 0-d tensor)."""
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    logits = model(input_batch)  # (batch, n_tokens, vocab_size)
    # cross_entropy wants (N, classes) and (N,): every position of every sequence is one example
    return nn.functional.cross_entropy(logits.flatten(0, 1), target_batch.flatten())


def empty_loader_message(data_loader, what: str = "The data loader") -> str:
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
        raise ValueError(empty_loader_message(data_loader))
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


def evaluate_model(
    model, train_loader, val_loader, device, eval_iter: int
) -> tuple[float, float]:
    """(train loss, validation loss), each over the first ``eval_iter`` batches, in eval mode."""
    with eval_mode(model):
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    return train_loss, val_loss


def generate_sample(
    model, tokenizer, device, start_context: str, max_new_tokens: int = 50
) -> str:
    """``start_context`` continued greedily by ``max_new_tokens`` tokens, as text."""
    context_size = model.pos_emb.weight.shape[0]
    encoded = torch.tensor(encode_text(tokenizer, start_context)).unsqueeze(0).to(device)
    with eval_mode(model):
        token_ids = generate_text_simple(model, encoded, max_new_tokens, context_size)
    return token_ids_to_text(token_ids, tokenizer)


def encode_text(tokenizer, text: str) -> list[int]:
    """``tokenizer.encode(text)``, letting ``<|endoftext|>`` through where the tokenizer takes
    ``allowed_special`` (tiktoken, ``BPETokenizer``); the book's ``SimpleTokenizerV1``/``V2``
    take only the text, and would fail on the keyword."""
    if _takes_allowed_special(tokenizer.encode):
        return tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    return tokenizer.encode(text)


def _takes_allowed_special(encode) -> bool:
    try:
        parameters = inspect.signature(encode).parameters.values()
    except (TypeError, ValueError):  # a compiled method without a signature: as the book does
        return True
    return any(p.name == "allowed_special" or p.kind is p.VAR_KEYWORD for p in parameters)


def check_sample_setup(model, tokenizer, start_context) -> None:
    """Raise a ValueError now if the sample printed after each epoch would fail then.

    Encodes ``start_context`` as ``generate_sample`` will, and decodes it back and the
    highest token id the model can produce, so a tokenizer that does not fit the model, or a
    prompt it cannot encode, is reported before the first step rather than after an epoch.
    """
    if not isinstance(start_context, str) or not start_context:
        raise ValueError(
            f"start_context must be a non-empty string (the prompt of the sample printed after "
            f"each epoch), got {start_context!r}; e.g. start_context=\"Every effort moves you\"."
        )
    pos_emb = getattr(model, "pos_emb", None)
    if not isinstance(pos_emb, nn.Embedding):
        raise ValueError(
            f"The sample after each epoch needs the model's context length, read from "
            f"model.pos_emb, which this {type(model).__name__} does not have: train a GPTModel."
        )
    vocab_size = getattr(getattr(model, "tok_emb", None), "num_embeddings", None)
    try:
        ids = encode_text(tokenizer, start_context)
        token_ids_to_text(ids, tokenizer)
        if vocab_size is not None:
            token_ids_to_text([vocab_size - 1], tokenizer)
    except Exception as err:  # whatever the tokenizer raises: say which step failed and why
        raise ValueError(
            f"The tokenizer ({type(tokenizer).__name__}) cannot encode and decode the sample "
            f"for start_context={start_context!r} and this model's {vocab_size} token ids "
            f"({type(err).__name__}: {err}). Use the tokenizer the data was encoded with, and "
            "a start_context made of words it knows."
        ) from None
    if not ids:
        raise ValueError(f"start_context={start_context!r} encodes to no tokens; give some text.")
    if vocab_size is not None and not all(0 <= i < vocab_size for i in ids):
        raise ValueError(
            f"start_context={start_context!r} encodes to token ids beyond this model's "
            f"vocabulary of {vocab_size}: the tokenizer does not fit the model's vocab_size."
        )


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
# The training loop
# ---------------------------------------------------------------------------------------------


def train_model_simple(
    model, train_loader, val_loader, optimizer, device, num_epochs, eval_freq, eval_iter,
    start_context, tokenizer,
):
    """The book's loop: one optimizer step per batch, both losses every ``eval_freq`` steps,
    and a sample of the model's writing after each epoch."""
    check_loaders(train_loader, val_loader, eval_freq)
    train_losses, val_losses, track_tokens_seen = [], [], []
    tokens_seen, global_step = 0, -1
    for epoch in range(num_epochs):
        model.train()  # dropout on (evaluation switches it off)
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()  # gradients add up otherwise: clear the last step's
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()  # the gradient of the loss for every weight
            optimizer.step()  # move each weight a little against its gradient
            tokens_seen += input_batch.numel()
            global_step += 1
            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(
                    model, train_loader, val_loader, device, eval_iter
                )
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                print(f"Ep {epoch + 1} (Step {global_step:06d}): "
                      f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        generate_and_print_sample(model, tokenizer, device, start_context)
    return train_losses, val_losses, track_tokens_seen


def check_loaders(train_loader, val_loader, eval_freq: int) -> None:
    """Raise a ValueError that says what to change before a loop would fail or do nothing."""
    for loader, what in ((train_loader, "training"), (val_loader, "validation")):
        try:
            batches = len(loader) if hasattr(loader, "__iter__") else None
        except TypeError:  # e.g. a DataLoader over an IterableDataset: no length to plan with
            batches = None
        if batches is None:
            raise ValueError(
                f"The {what} loader must be a DataLoader (or anything with a length that "
                f"yields (input, target) batches), got {type(loader).__name__}."
            )
        if batches == 0:
            raise ValueError(empty_loader_message(loader, f"The {what} loader"))
    if isinstance(eval_freq, bool) or not isinstance(eval_freq, int) or eval_freq < 1:
        raise ValueError(
            f"eval_freq must be a whole number of steps, at least 1; got {eval_freq!r}."
        )


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------


def compact_count(x: float, _position=None) -> str:
    """12345 -> "12k", 1234567 -> "1.2M": short tick labels for token counts."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{x / size:.3g}{suffix}"
    return f"{x:.0f}"


def plot_curves(epochs_seen, tokens_seen, train_values, val_values, what: str, log: bool):
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
    return plot_curves(epochs_seen, tokens_seen, train_losses, val_losses, "Loss", log=False)


def plot_perplexity(epochs_seen, tokens_seen, train_losses, val_losses):
    """Like ``plot_losses``, but perplexity, exp(loss), on a log scale.

    A perplexity of 50,257 is a uniform guess over GPT-2's vocabulary; 1 is certainty.
    """
    train = [perplexity(float(loss)) for loss in train_losses]
    val = [perplexity(float(loss)) for loss in val_losses]
    return plot_curves(epochs_seen, tokens_seen, train, val, "Perplexity", log=True)


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
