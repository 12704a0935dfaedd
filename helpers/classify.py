"""Phase 08, fine-tuning for classification: GPT-2 becomes a spam filter.

The steps, in the order the notebook takes them::

    load_sms_spam()                  the UCI SMS Spam Collection: 4,825 ham, 747 spam
    prepare_spam_splits()            balance by undersampling ham, shuffle, split 70/10/20
    SpamDataset, spam_dataloaders()  token ids padded to one length, labels 0 (ham) / 1 (spam)
    add_classification_head()        a 2-way output layer instead of the 50,257-way one
    freeze_for_classification()      train only the last block, the final norm and the head
    calc_loss_batch_classifier()     cross-entropy of the last token's two logits
    calc_accuracy_loader()           share of messages whose likelier class is the right one
    train_classifier_simple()        the book's loop, with accuracies after each epoch
    classify_review(), spam_probability()   one message -> "spam" / "not spam", P(spam)
    confusion_matrix(), plot_confusion_matrix(), plot_values()

Why the last token: under the causal mask it is the only position that has attended to
every token of the message, so its output vector is the one that can summarise all of it.

Padding: a batch needs equal lengths, so every message is padded with ``<|endoftext|>`` (or
cut) to one length: ``SpamDataset``'s ``max_length``, by default the longest encoded message
(120 tokens in the book's training split). ``context_length``, if given, caps it, so no item
is longer than the model can read. Validation, test and ``classify_review`` use the training
set's length (``train_dataset.max_length``), so the model sees messages as it saw them in
training, where the last token, the one that decides, was most often a pad token. A message
longer than the model's context is cut rather than crashing the model.

Why freeze most of the model: the book found that training the last transformer block, the
final LayerNorm and the new head is enough. The lower layers hold general language skills
worth keeping, and training fewer weights is faster. ``freeze_for_classification`` also
offers ``"head"`` (only ``out_head``) and ``"all"`` (everything: the slowest and largest).

Usage::

    tokenizer = gpt2_tokenizer()
    train_loader, val_loader, test_loader = spam_dataloaders(tokenizer, context_length=1024)
    torch.manual_seed(123)
    add_classification_head(model)                 # model: a GPTModel with GPT-2's weights
    freeze_for_classification(model)               # the last block, final_norm, out_head
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1)
    train_classifier_simple(model, train_loader, val_loader, optimizer, "cpu",
                            num_epochs=5, eval_freq=50, eval_iter=5)
    classify_review("You are a winner ...", model, tokenizer, "cpu",
                    max_length=train_loader.dataset.max_length)          # 'spam'
"""

from __future__ import annotations

import numbers

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .data import fetch
from .runtime import eval_mode
from .train import check_loaders, plot_curves
from .validate import check_int, did_you_mean

SPAM_FILE = "SMSSpamCollection"
LABEL_IDS = {"ham": 0, "spam": 1}
CLASS_NAMES = ("not spam", "spam")  # what classify_review answers, by class id
PAD_TOKEN_ID = 50256  # GPT-2's <|endoftext|>, the book's padding token

# Facts of the data set and the book's split, checked whenever the data is loaded.
N_MESSAGES, N_HAM, N_SPAM = 5_572, 4_825, 747
SPLIT_SIZES = (1_045, 149, 300)  # train, validation, test of the balanced 1,494 messages


# ---------------------------------------------------------------------------------------------
# The data
# ---------------------------------------------------------------------------------------------


def load_sms_spam():
    """The SMS Spam Collection as a DataFrame with columns ``Label`` ("ham"/"spam"), ``Text``.

    Tab-separated without a header; pandas' default quoting is the reading the book's counts
    (5,572 messages: 4,825 ham, 747 spam) come from, so they are checked here.
    """
    import pandas as pd

    df = pd.read_csv(fetch(SPAM_FILE), sep="\t", header=None, names=["Label", "Text"])
    counts = df["Label"].value_counts()
    assert (len(df), counts.get("ham"), counts.get("spam")) == (N_MESSAGES, N_HAM, N_SPAM), (
        f"{SPAM_FILE} read as {len(df)} messages ({counts.to_dict()}), "
        f"expected {N_MESSAGES}: {N_HAM} ham, {N_SPAM} spam."
    )
    return df


def prepare_spam_splits(seed: int = 123):
    """(train, validation, test) DataFrames of balanced data, ``Label`` as 0 (ham) / 1 (spam).

    Balanced: a random 747 of the ham messages, so each class is half the data and a
    classifier cannot score 87% by always answering "ham". Then shuffled and cut 70/10/20
    by position: 1,045 / 149 / 300 messages. ``seed`` is pandas' ``random_state`` for both
    draws; the default gives the book's split.
    """
    import pandas as pd

    df = load_sms_spam()
    spam = df[df["Label"] == "spam"]
    ham = df[df["Label"] == "ham"].sample(len(spam), random_state=seed)
    balanced = pd.concat([ham, spam])
    balanced["Label"] = balanced["Label"].map(LABEL_IDS)
    shuffled = balanced.sample(frac=1, random_state=seed).reset_index(drop=True)
    train_end = int(len(shuffled) * 0.7)
    val_end = train_end + int(len(shuffled) * 0.1)
    splits = (
        shuffled[:train_end].reset_index(drop=True),
        shuffled[train_end:val_end].reset_index(drop=True),
        shuffled[val_end:].reset_index(drop=True),
    )
    assert tuple(len(s) for s in splits) == SPLIT_SIZES, [len(s) for s in splits]
    return splits


def encode_message(text: str, tokenizer) -> list[int]:
    """Token ids of ``text``; ``<|endoftext|>`` typed in a message is the token, not an error."""
    if not isinstance(text, str):  # None or a number would be encoded as its repr, or crash
        raise ValueError(f"A message must be a string, got {text!r:.60} ({type(text).__name__}).")
    try:
        return list(tokenizer.encode(text, allowed_special={"<|endoftext|>"}))
    except TypeError:  # tokenizers without special-token options (SimpleTokenizerV2)
        return list(tokenizer.encode(text))


def pad_or_truncate(ids: list[int], length: int, pad_token_id: int = PAD_TOKEN_ID) -> list[int]:
    """The first ``length`` ids, padded on the right with ``pad_token_id`` up to ``length``."""
    check_int(length, "max_length", minimum=0)
    check_int(pad_token_id, "pad_token_id", minimum=0)
    ids = list(ids[:length])
    return ids + [pad_token_id] * (length - len(ids))


def read_messages(csv_file):
    """``csv_file`` as a DataFrame: the DataFrame itself, or read from a CSV path (or open file).

    An empty message reads back from a CSV file as NaN; its ``Text`` becomes "" (an empty
    message is still a message). Returns a copy; the caller's DataFrame is left as it is.
    Refused, naming the file: one that cannot be read as CSV, no ``Label``/``Text`` column,
    no rows, and the first row whose label is not a class (``check_labels``).
    """
    import pandas as pd

    where = "the DataFrame" if isinstance(csv_file, pd.DataFrame) else _file_name(csv_file)
    df = csv_file if isinstance(csv_file, pd.DataFrame) else _read_csv(csv_file, where)
    for column in ("Label", "Text"):
        if column not in df.columns:
            raise ValueError(
                f"{where} has no {column!r} column{did_you_mean(column, df.columns)}; the "
                f"messages need the columns 'Label' and 'Text', found {list(df.columns)}."
            )
    if len(df) == 0:
        raise ValueError(f"{where} holds no messages: a dataset needs at least one row.")
    check_labels(df["Label"], where)
    return df.assign(Text=df["Text"].fillna("").astype(str))


def _file_name(csv_file) -> str:
    return str(getattr(csv_file, "name", csv_file))


def _read_csv(csv_file, where: str):
    """``pd.read_csv``, with an error that names the file when it cannot be read."""
    import pandas as pd

    try:
        return pd.read_csv(csv_file)
    except FileNotFoundError:
        raise FileNotFoundError(f"No CSV file of messages at {where}.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{where} cannot be read as a CSV file of messages ({str(err).strip()[:200]}): "
            "it needs a header line 'Label,Text' and one message per row."
        ) from None


def check_labels(labels, where: str = "the messages") -> None:
    """Refuse the first label that is not a class, naming its row: a 7, a 0.7 or a NaN would
    otherwise be truncated, crash deep inside the loss, or never count as right."""
    for row, label in enumerate(labels):
        try:
            _label_id(label)
        except ValueError as err:
            raise ValueError(f"Row {row} of {where}: {err}") from None


def common_length(encoded_texts, max_length: int | None, context_length: int | None) -> int:
    """The length of every item: ``max_length``, or the longest of ``encoded_texts`` if
    ``None``; at most ``context_length`` (the most the model reads) if given; at least 1."""
    longest = max((len(ids) for ids in encoded_texts), default=0)
    if max_length is not None:
        check_int(max_length, "max_length")
    if context_length is not None:
        check_int(context_length, "context_length", minimum=1)
    length = longest if max_length is None else max_length
    if context_length is not None:
        length = min(length, context_length)
    if length < 1:
        raise ValueError(f"max_length must be at least 1 token, got {length}.")
    return length


class SpamDataset(Dataset):
    """Messages as token ids padded (or cut) to one length, and their labels 0 (ham) / 1 (spam).
    ``csv_file``: the path of a CSV with ``Label`` and ``Text`` columns, or such a DataFrame."""

    def __init__(
        self, csv_file, tokenizer, max_length=None, pad_token_id=PAD_TOKEN_ID, context_length=None
    ):
        self.data = read_messages(csv_file)
        self.encoded_texts = [encode_message(text, tokenizer) for text in self.data["Text"]]
        # the longest message unless told otherwise; validation and test pass the training length
        self.max_length = common_length(self.encoded_texts, max_length, context_length)
        self.encoded_texts = [
            pad_or_truncate(ids, self.max_length, pad_token_id) for ids in self.encoded_texts
        ]
        self.labels = [_label_id(label) for label in self.data["Label"]]

    def __getitem__(self, index):
        encoded, label = self.encoded_texts[index], self.labels[index]
        return torch.tensor(encoded, dtype=torch.long), torch.tensor(label, dtype=torch.long)

    def __len__(self):
        return len(self.labels)


def _label_id(label) -> int:
    """0 or 1 from "ham"/"spam", a number, or a number as text (as a mixed CSV column reads).

    Anything else is refused: ``int(0.7)`` would make it 0, and a 7 would crash the loss (on a
    GPU with an assert that ends the session) or silently never count as right.
    """
    if isinstance(label, str) and label.strip() in LABEL_IDS:
        return LABEL_IDS[label.strip()]
    if isinstance(label, str) and label.strip() in ("0", "1"):
        return int(label)
    if isinstance(label, numbers.Real) and not isinstance(label, bool) and label in (0, 1):
        return int(label)  # 1.0 too: pandas reads a numeric column with a gap as floats
    raise ValueError(
        f"the label {label!r} is not a class: use 'ham' or 'spam', or 0 (ham) or 1 (spam)."
    )


def spam_dataloaders(
    tokenizer,
    batch_size: int = 8,
    context_length: int = 1024,
    seed: int = 123,
    num_workers: int = 0,
    pad_token_id: int = PAD_TOKEN_ID,
):
    """(train, validation, test) loaders of the book's split, ready for training.

    All three use the training split's longest message as their length (capped at
    ``context_length``), so the model always reads the same number of tokens. The training
    loader shuffles (drawing from torch's global generator, as the book's does: seed it
    with ``torch.manual_seed`` for a repeatable order) and drops the last incomplete batch;
    with ``batch_size=8`` that gives 130 / 19 / 38 batches. Each loader's ``.dataset`` is
    its ``SpamDataset`` (``.max_length``, ``.data``).
    """
    check_int(batch_size, "batch_size", minimum=1)  # before the data set is read and encoded
    check_int(context_length, "context_length", minimum=1)
    check_int(num_workers, "num_workers", minimum=0)
    train_df, val_df, test_df = prepare_spam_splits(seed)
    train_set = SpamDataset(train_df, tokenizer, None, pad_token_id, context_length)
    length = train_set.max_length

    def loader(df, train: bool) -> DataLoader:
        dataset = train_set if train else SpamDataset(df, tokenizer, length, pad_token_id)
        return DataLoader(
            dataset, batch_size, shuffle=train, drop_last=train, num_workers=num_workers
        )

    return loader(train_df, True), loader(val_df, False), loader(test_df, False)


# ---------------------------------------------------------------------------------------------
# The model: a new head, most of the network frozen
# ---------------------------------------------------------------------------------------------


def add_classification_head(model: nn.Module, num_classes: int = 2) -> nn.Module:
    """Replace ``model.out_head`` (emb_dim -> vocab) by a new, random ``Linear(emb_dim,
    num_classes)``; ``torch.manual_seed`` first for repeatable weights. Returns ``model``."""
    old = model.out_head
    model.out_head = nn.Linear(old.in_features, num_classes)
    model.out_head.to(device=old.weight.device, dtype=old.weight.dtype)  # where the model is
    return model


FREEZE_MODES = {
    "last_block": "the last transformer block, final_norm and out_head (the book's choice)",
    "head": "out_head only",
    "all": "every parameter",
}


def freeze_for_classification(model: nn.Module, train: str = "last_block") -> int:
    """Freeze all but the last transformer block, the final norm and the head (the book's
    choice; ``train``: one of ``FREEZE_MODES``); return the number of trainable parameters."""
    if train not in FREEZE_MODES:
        raise ValueError(f"train must be one of {sorted(FREEZE_MODES)}, got {train!r}.")
    model.requires_grad_(train == "all")  # everything frozen, unless training it all
    if train == "last_block":
        model.trf_blocks[-1].requires_grad_(True)
        model.final_norm.requires_grad_(True)
    model.out_head.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------
# Loss and accuracy: only the last token's logits count
# ---------------------------------------------------------------------------------------------


def last_token_logits(model: nn.Module, input_batch: torch.Tensor) -> torch.Tensor:
    """(batch, num_classes): the model's output at the last position of each sequence."""
    check_classifier(model)  # a few attribute reads: cheap enough for every batch
    return model(input_batch)[:, -1, :]


def check_classifier(model: nn.Module, num_classes: int | None = None) -> int | None:
    """The number of classes ``model.out_head`` scores; a ValueError if it is still the
    language-model head (one output per token) or, given ``num_classes``, another size.

    Without this, a model whose head was never replaced "classifies" by the scores of token
    ids 0 and 1. ``None`` for models that do not show their head (nothing to check).
    """
    from .model import head_outputs  # (a padded language-model head reports its vocab_size)

    outputs = head_outputs(model)
    if outputs is None:
        return None
    vocab_size = getattr(getattr(model, "tok_emb", None), "num_embeddings", None)
    if outputs == vocab_size and num_classes != vocab_size:
        raise ValueError(
            f"This model still has its language-model head ({outputs} outputs, one per token), "
            "not a classification head: call add_classification_head(model) first (and train "
            "it), so that out_head scores the classes."
        )
    if num_classes is not None and outputs != num_classes:
        raise ValueError(
            f"This model's out_head scores {outputs} classes, but {num_classes} are needed here "
            f"({', '.join(map(repr, CLASS_NAMES))}); use a model built with "
            f"add_classification_head(model, num_classes={num_classes})."
        )
    return outputs


def check_class_ids(targets: torch.Tensor, num_classes: int | None) -> None:
    """Refuse class labels that are not integers in ``range(num_classes)`` (one min and max)."""
    if not isinstance(targets, torch.Tensor) or targets.dtype.is_floating_point or (
        targets.dtype in (torch.bool, torch.complex64, torch.complex128)
    ):
        raise ValueError(
            f"Class labels must be a tensor of integer class ids, got "
            f"{getattr(targets, 'dtype', type(targets).__name__)}: use 0, 1, ... as labels."
        )
    if num_classes is None or targets.numel() == 0:
        return
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"Class label {low if low < 0 else high} is outside range({num_classes}): this "
            f"model's head scores {num_classes} classes. Check the dataset's labels."
        )


def calc_loss_batch_classifier(input_batch, target_batch, model: nn.Module, device) -> torch.Tensor:
    """Mean cross-entropy of one batch: last-token logits against the class labels."""
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    return nn.functional.cross_entropy(last_token_logits(model, input_batch), target_batch)


def _batches_to_use(data_loader, num_batches: int | None) -> int:
    """How many batches to read: all, or the first ``num_batches``; a clear error if none."""
    if len(data_loader) == 0:
        raise ValueError(
            f"The data loader has no batches ({len(data_loader.dataset)} examples, "
            f"batch_size={data_loader.batch_size}, drop_last={data_loader.drop_last}): "
            "give it more examples, a smaller batch_size, or drop_last=False."
        )
    if num_batches is None:
        return len(data_loader)
    check_int(num_batches, "num_batches", minimum=1)
    return min(num_batches, len(data_loader))


def calc_loss_loader_classifier(
    data_loader, model: nn.Module, device, num_batches: int | None = None
) -> float:
    """Mean classification loss over the first ``num_batches`` batches (all if ``None``).

    Computed without gradients; the model's train/eval mode is left as it is (the book wraps
    this in ``model.eval()`` itself, as ``evaluate_model`` does).
    """
    n = _batches_to_use(data_loader, num_batches)
    num_classes = check_classifier(model)
    total = 0.0
    with torch.no_grad():
        for i, (input_batch, target_batch) in enumerate(data_loader):
            if i >= n:
                break
            check_class_ids(target_batch, num_classes)
            total += calc_loss_batch_classifier(input_batch, target_batch, model, device).item()
    return total / n


def _predictions(data_loader, model: nn.Module, device, num_batches: int | None):
    """(predicted, true) class ids over the first ``num_batches`` batches, in eval mode."""
    n = _batches_to_use(data_loader, num_batches)
    num_classes = check_classifier(model)
    predicted, true = [], []
    with eval_mode(model):  # no dropout, no gradients; the previous mode afterwards
        for i, (input_batch, target_batch) in enumerate(data_loader):
            if i >= n:
                break
            check_class_ids(target_batch, num_classes)  # a 7 would never count as right
            logits = last_token_logits(model, input_batch.to(device))
            predicted.append(logits.argmax(dim=-1).cpu())
            true.append(target_batch.cpu())
    return torch.cat(predicted), torch.cat(true)


def calc_accuracy_loader(
    data_loader, model: nn.Module, device, num_batches: int | None = None
) -> float:
    """Share of examples (0..1) in the first ``num_batches`` batches classified correctly.

    A prediction is the class with the largest last-token logit; softmax would not change
    which that is. Counted over examples, so a short last batch weighs what it holds.
    """
    predicted, true = _predictions(data_loader, model, device, num_batches)
    return (predicted == true).float().mean().item()


def evaluate_classifier(model, train_loader, val_loader, device, eval_iter: int):
    """(train loss, validation loss), each over the first ``eval_iter`` batches, in eval mode."""
    with eval_mode(model):
        train_loss = calc_loss_loader_classifier(train_loader, model, device, eval_iter)
        val_loss = calc_loss_loader_classifier(val_loader, model, device, eval_iter)
    return train_loss, val_loss


# ---------------------------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------------------------


def accuracy_line(train_accuracy: float, val_accuracy: float) -> str:
    """The book's per-epoch line: ``Training accuracy: 95.00% | Validation accuracy: 92.50%``."""
    return (
        f"Training accuracy: {train_accuracy * 100:.2f}% | "
        f"Validation accuracy: {val_accuracy * 100:.2f}%"
    )


def train_classifier_simple(
    model, train_loader, val_loader, optimizer, device, num_epochs, eval_freq, eval_iter
):
    """The book's loop, as in pretraining, with class labels for targets; after each epoch
    it measures the accuracy. Returns losses, accuracies and the examples seen."""
    check_loaders(train_loader, val_loader, eval_freq)
    train_losses, val_losses, train_accs, val_accs = [], [], [], []
    examples_seen, global_step = 0, -1
    for epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch_classifier(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            examples_seen += input_batch.shape[0]  # messages, not tokens
            global_step += 1
            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_classifier(
                    model, train_loader, val_loader, device, eval_iter
                )
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                print(f"Ep {epoch + 1} (Step {global_step:06d}): "
                      f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        train_accuracy = calc_accuracy_loader(train_loader, model, device, eval_iter)
        val_accuracy = calc_accuracy_loader(val_loader, model, device, eval_iter)
        print(accuracy_line(train_accuracy, val_accuracy))
        train_accs.append(train_accuracy)
        val_accs.append(val_accuracy)
    return train_losses, val_losses, train_accs, val_accs, examples_seen


# ---------------------------------------------------------------------------------------------
# Using the classifier
# ---------------------------------------------------------------------------------------------


def model_context_length(model: nn.Module) -> int:
    """The most tokens ``model`` reads: the rows of its position embedding."""
    return model.pos_emb.weight.shape[0]


def input_length(model: nn.Module, max_length: int | None = None) -> int:
    """How many tokens a message is padded or cut to: ``max_length`` (default: the model's
    context length), never more than the model's context length."""
    check_classifier(model, len(CLASS_NAMES))  # every single-message function comes here
    if max_length is not None:
        check_int(max_length, "max_length", minimum=1)
    context = model_context_length(model)
    return context if max_length is None else min(max_length, context)


def message_ids(
    text: str,
    tokenizer,
    model: nn.Module,
    max_length: int | None = None,
    pad_token_id: int = PAD_TOKEN_ID,
) -> list[int]:
    """``text`` as the model reads it: cut, then padded to ``input_length(model, max_length)``.
    Pass ``max_length=train_dataset.max_length`` to present it exactly as in training."""
    length = input_length(model, max_length)
    vocab_size = getattr(getattr(model, "tok_emb", None), "num_embeddings", None)
    top = None if vocab_size is None else vocab_size - 1
    check_int(pad_token_id, "pad_token_id", minimum=0, maximum=top)
    return pad_or_truncate(encode_message(text, tokenizer), length, pad_token_id)


def spam_probability(
    text: str,
    model: nn.Module,
    tokenizer,
    device,
    max_length: int | None = None,
    pad_token_id: int = PAD_TOKEN_ID,
) -> float:
    """P(spam) for one message: softmax of the last token's logits, class 1."""
    ids = message_ids(text, tokenizer, model, max_length, pad_token_id)
    with eval_mode(model):
        logits = last_token_logits(model, torch.tensor([ids], device=device))
    return float(torch.softmax(logits[0].float(), dim=-1)[1])


def classify_review(text, model, tokenizer, device, max_length=None, pad_token_id=PAD_TOKEN_ID):
    """The verdict on one message, "spam" or "not spam" (the book's name: its classifier once
    read movie reviews). ``max_length``: pad as in training, ``train_dataset.max_length``."""
    ids = encode_message(text, tokenizer)
    ids = pad_or_truncate(ids, input_length(model, max_length), pad_token_id)  # cut to fit too
    with eval_mode(model):  # no dropout, no gradients
        logits = model(torch.tensor([ids], device=device))[:, -1, :]  # the last token's logits
    return CLASS_NAMES[logits.argmax(dim=-1).item()]


# ---------------------------------------------------------------------------------------------
# Looking at the results
# ---------------------------------------------------------------------------------------------


def confusion_matrix(
    model: nn.Module, loader, device, num_batches: int | None = None
) -> torch.Tensor:
    """2x2 counts: row = true class, column = predicted class (0 not spam, 1 spam).

    ``cm[1, 0]`` is spam that got through, ``cm[0, 1]`` a real message lost to the filter.
    """
    check_classifier(model, len(CLASS_NAMES))
    predicted, true = _predictions(loader, model, device, num_batches)
    n = len(CLASS_NAMES)
    return torch.bincount(true * n + predicted, minlength=n * n).reshape(n, n)


def plot_confusion_matrix(cm, labels=CLASS_NAMES):
    """The confusion matrix as a heatmap with the counts written in; returns the ``Figure``."""
    import matplotlib.pyplot as plt

    cm = torch.as_tensor(cm)
    fig, ax = plt.subplots(figsize=(3.8, 3.3), layout="constrained")
    ax.imshow(cm.numpy(), cmap="Blues", vmin=0)
    top = int(cm.max()) if cm.numel() else 0
    for row in range(cm.shape[0]):
        for col in range(cm.shape[1]):
            count = int(cm[row, col])
            dark = count > top / 2  # white on the dark cells, so every count stays readable
            colour = "white" if dark else "#111827"
            ax.text(col, row, f"{count:,}", ha="center", va="center", fontsize=13, color=colour)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels, rotation=90, va="center")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = float(cm.diagonal().sum()) / max(1, int(cm.sum()))
    ax.set_title(f"accuracy {accuracy:.1%} of {int(cm.sum()):,}", fontsize=11)
    return fig


def plot_values(epochs_seen, examples_seen, train_values, val_values, label: str = "loss"):
    """Training and validation ``label`` (loss, accuracy) over epochs, examples seen on top.

    As in the book: ``epochs_seen = torch.linspace(0, num_epochs, len(train_values))`` and
    ``examples_seen = torch.linspace(0, examples_seen, len(train_values))``. Returns the
    ``Figure``.
    """
    what = label.capitalize()
    fig = plot_curves(epochs_seen, examples_seen, train_values, val_values, what, log=False)
    main, top = fig.axes
    top.set_xlabel("Examples seen")  # the shared plot names its top axis for tokens
    main.legend(loc="best")  # rising accuracies would run into an upper-right legend
    return fig


if __name__ == "__main__":  # usage example: python -m helpers.classify
    from .tokenizer import gpt2_tokenizer

    train_df, val_df, test_df = prepare_spam_splits()
    for name, df in (("train", train_df), ("validation", val_df), ("test", test_df)):
        counts = df["Label"].value_counts().sort_index().tolist()
        print(f"{name:<11}{len(df):>5} messages: {counts[0]} ham, {counts[1]} spam")
    loaders = spam_dataloaders(gpt2_tokenizer())
    longest = loaders[0].dataset.max_length
    print(f"longest training message: {longest} tokens; batches: {[len(x) for x in loaders]}")
