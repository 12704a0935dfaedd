"""helpers.classify: the book's spam data and split, padding, freezing, loss, accuracy, training."""

import random

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from helpers.classify import (  # noqa: E402
    SpamDataset,
    add_classification_head,
    calc_accuracy_loader,
    calc_loss_batch_classifier,
    calc_loss_loader_classifier,
    classify_review,
    confusion_matrix,
    freeze_for_classification,
    input_length,
    load_sms_spam,
    message_ids,
    plot_confusion_matrix,
    plot_values,
    prepare_spam_splits,
    spam_dataloaders,
    spam_probability,
    train_classifier_simple,
)
from helpers.training_run import ClassifierUpdate, train_classifier  # noqa: E402
from helpers.model import GPTModel  # noqa: E402
from helpers.tokenizer import SimpleTokenizerV2, build_vocab  # noqa: E402
from rigged_models import CountingClassifier  # noqa: E402

TINY_CFG = {
    "vocab_size": 50257,
    "context_length": 32,
    "emb_dim": 32,
    "n_heads": 2,
    "n_layers": 2,
    "drop_rate": 0.0,
    "qkv_bias": False,
}
# A word-level stand-in for GPT-2's tokenizer: a 20-token vocabulary trains in seconds.
WORDS = "see you at home later call me when the bus is late dinner tonight ok thanks".split()
VOCAB = build_vocab(" ".join(WORDS + ["prize"]), special_tokens=("<|endoftext|>", "<|unk|>"))
PAD = VOCAB["<|endoftext|>"]


@pytest.fixture(scope="module")
def words():
    return SimpleTokenizerV2(VOCAB)


@pytest.fixture(scope="module")
def splits():
    return prepare_spam_splits()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def tiny_classifier(seed=123, **changes) -> GPTModel:
    torch.manual_seed(seed)
    return add_classification_head(GPTModel({**TINY_CFG, **changes}))


def rigged():
    """Spam when "prize" is there (and "home" is not)."""
    return CountingClassifier({VOCAB["prize"]: 5.0, VOCAB["home"]: -4.0}, len(VOCAB))


# --- the data --------------------------------------------------------------------------------


def test_load_sms_spam_counts():
    df = load_sms_spam()
    assert list(df.columns) == ["Label", "Text"]
    assert len(df) == 5572
    assert df["Label"].value_counts().to_dict() == {"ham": 4825, "spam": 747}


def test_split_sizes_and_class_counts(splits):
    train, val, test = splits
    assert [len(s) for s in splits] == [1045, 149, 300]
    counts = [s["Label"].value_counts().sort_index().tolist() for s in splits]
    assert counts == [[528, 517], [70, 79], [149, 151]]  # [ham, spam] of the book's split
    combined = pd.concat(splits)
    assert set(combined["Label"]) == {0, 1}
    assert combined["Label"].value_counts().tolist() == [747, 747]  # balanced
    assert list(train.index) == list(range(1045))  # fresh positions in every split


def test_split_is_repeatable_and_depends_on_seed(splits):
    again = prepare_spam_splits(seed=123)
    for a, b in zip(splits, again):
        pd.testing.assert_frame_equal(a, b)
    other = prepare_spam_splits(seed=1)
    assert not other[0]["Text"].equals(splits[0]["Text"])


def test_longest_training_message_and_batches(gpt2):
    train_loader, val_loader, test_loader = spam_dataloaders(gpt2, batch_size=8)
    assert train_loader.dataset.max_length == 120  # the book's longest training message
    assert val_loader.dataset.max_length == test_loader.dataset.max_length == 120
    assert [len(x) for x in (train_loader, val_loader, test_loader)] == [130, 19, 38]
    ids, labels = next(iter(val_loader))
    assert ids.shape == (8, 120) and ids.dtype == labels.dtype == torch.long
    assert set(labels.tolist()) <= {0, 1}
    short_loader = spam_dataloaders(gpt2, batch_size=8, context_length=64)[1]
    assert short_loader.dataset.max_length == 64  # capped by the model's context


def test_dataset_pads_and_truncates(words, tmp_path):
    df = pd.DataFrame({"Label": ["ham", "spam", 1], "Text": ["ok", "call me prize now", ""]})
    longest = SpamDataset(df, words, pad_token_id=PAD)
    assert longest.max_length == 4  # "now" is unknown: <|unk|>
    assert longest[0][0].tolist() == [VOCAB["ok"], PAD, PAD, PAD]
    assert [longest[i][1].item() for i in range(3)] == [0, 1, 1]
    assert longest[2][0].tolist() == [PAD] * 4

    short = SpamDataset(df, words, max_length=2, pad_token_id=PAD)
    assert short[1][0].tolist() == [VOCAB["call"], VOCAB["me"]]  # cut after 2 tokens
    capped = SpamDataset(df, words, max_length=100, pad_token_id=PAD, context_length=3)
    assert capped.max_length == 3 and len(capped[0][0]) == 3

    path = tmp_path / "train.csv"
    df.to_csv(path, index=None)
    from_csv = SpamDataset(str(path), words, pad_token_id=PAD)
    assert [from_csv[i][0].tolist() for i in range(3)] == [longest[i][0].tolist() for i in range(3)]


def test_dataset_reads_a_csv_path_an_open_file_or_a_dataframe(words, tmp_path):
    df = pd.DataFrame({"Label": [0, 1], "Text": ["ok", None]})  # an empty message
    path = tmp_path / "messages.csv"
    df.to_csv(path, index=False)
    by_path = SpamDataset(csv_file=path, tokenizer=words, pad_token_id=PAD)  # the book's name
    with open(path, encoding="utf-8") as f:
        by_file = SpamDataset(f, words, pad_token_id=PAD)
    by_frame = SpamDataset(df, words, pad_token_id=PAD)
    for dataset in (by_path, by_file, by_frame):
        assert dataset.max_length == 1 and len(dataset) == 2
        assert [dataset[i][0].tolist() for i in range(2)] == [[VOCAB["ok"]], [PAD]]
        assert [dataset[i][1].item() for i in range(2)] == [0, 1]
        assert list(dataset.data["Text"]) == ["ok", ""]
    assert df["Text"].isna().sum() == 1  # the caller's DataFrame is left as it was


def test_dataset_length_is_at_least_one_token(words):
    empty = pd.DataFrame({"Label": [0], "Text": [""]})
    with pytest.raises(ValueError, match="at least 1 token"):
        SpamDataset(empty, words, pad_token_id=PAD)
    with pytest.raises(ValueError, match="at least 1 token"):
        SpamDataset(pd.DataFrame({"Label": [0], "Text": ["ok"]}), words, max_length=0)
    assert SpamDataset(empty, words, max_length=2, pad_token_id=PAD)[0][0].tolist() == [PAD, PAD]


def test_dataset_pads_with_gpt2_endoftext(gpt2):
    df = pd.DataFrame({"Label": [0, 1], "Text": ["Hi", "Hello there, friend"]})
    dataset = SpamDataset(df, gpt2)
    assert dataset[0][0].tolist() == gpt2.encode("Hi") + [50256] * (dataset.max_length - 1)


# --- the model -------------------------------------------------------------------------------


def test_classification_head_replaces_out_head():
    model = tiny_classifier()
    assert isinstance(model.out_head, nn.Linear)
    assert tuple(model.out_head.weight.shape) == (2, 32) and model.out_head.bias is not None
    assert model(torch.tensor([[1, 2, 3]])).shape == (1, 3, 2)
    same = tiny_classifier()
    assert torch.equal(model.out_head.weight, same.out_head.weight)  # seeded by the caller


def trainable_names(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_freeze_last_block_head_and_all():
    model = tiny_classifier()
    n = freeze_for_classification(model)
    expected = {
        "final_norm.scale",
        "final_norm.shift",
        "out_head.weight",
        "out_head.bias",
    } | {name for name, _ in model.named_parameters() if name.startswith("trf_blocks.1.")}
    assert trainable_names(model) == expected
    assert "trf_blocks.1.att.W_query.weight" in expected
    assert n == sum(p.numel() for name, p in model.named_parameters() if name in expected)

    assert freeze_for_classification(model, "head") == 32 * 2 + 2
    assert trainable_names(model) == {"out_head.weight", "out_head.bias"}

    every = {name for name, _ in model.named_parameters()}
    assert freeze_for_classification(model, "all") == sum(p.numel() for p in model.parameters())
    assert trainable_names(model) == every
    with pytest.raises(ValueError, match="last_block"):
        freeze_for_classification(model, "everything")


def test_loss_uses_only_the_last_token():
    model = tiny_classifier().eval()
    ids, targets = torch.randint(0, 50257, (4, 6)), torch.tensor([0, 1, 1, 0])
    loss = calc_loss_batch_classifier(ids, targets, model, "cpu")
    expected = nn.functional.cross_entropy(model(ids)[:, -1, :], targets)
    assert torch.allclose(loss, expected)
    loader = DataLoader(TensorDataset(ids, targets), batch_size=2)
    first = calc_loss_batch_classifier(ids[:2], targets[:2], model, "cpu").item()
    assert calc_loss_loader_classifier(loader, model, "cpu", num_batches=1) == pytest.approx(first)


# --- accuracy and the confusion matrix on a rigged model ----------------------------------------


def rigged_loader(batch_size=2):
    """Six messages; the rigged model gets all right but the last (spam without "prize")."""
    texts_labels = [
        ("call me", 0),
        ("prize tonight", 1),
        ("home prize", 0),
        ("you prize", 1),
        ("ok", 0),
        ("see you", 1),
    ]
    df = pd.DataFrame({"Text": [t for t, _ in texts_labels], "Label": [y for _, y in texts_labels]})
    return DataLoader(SpamDataset(df, SimpleTokenizerV2(VOCAB), pad_token_id=PAD), batch_size)


def test_accuracy_loader_semantics():
    model, loader = rigged().train(), rigged_loader()
    assert calc_accuracy_loader(loader, model, "cpu") == pytest.approx(5 / 6)
    assert calc_accuracy_loader(loader, model, "cpu", num_batches=2) == 1.0
    assert calc_accuracy_loader(loader, model, "cpu", num_batches=99) == pytest.approx(5 / 6)
    assert model.training  # measured in eval mode, handed back as it came
    uneven = DataLoader(loader.dataset, batch_size=4)  # 4 + 2: counted per example
    assert calc_accuracy_loader(uneven, model, "cpu") == pytest.approx(5 / 6)
    empty = DataLoader(loader.dataset, batch_size=8, drop_last=True)
    with pytest.raises(ValueError, match="no batches"):
        calc_accuracy_loader(empty, model, "cpu")
    with pytest.raises(ValueError, match="no batches"):
        calc_loss_loader_classifier(empty, model, "cpu")


def test_confusion_matrix_and_plots():
    cm = confusion_matrix(rigged(), rigged_loader(), "cpu")
    assert cm.tolist() == [[3, 0], [1, 2]]  # rows: true not spam / spam; columns: predicted
    fig = plot_confusion_matrix(cm)
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["0", "1", "2", "3"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["not spam", "spam"]
    assert "83.3%" in ax.get_title()

    epochs, examples = torch.linspace(0, 5, 4), torch.linspace(0, 5200, 4)
    train_accs, val_accs = [0.5, 0.7, 0.9, 0.95], [0.5, 0.6, 0.8, 0.9]
    fig = plot_values(epochs, examples, train_accs, val_accs, label="accuracy")
    main, top = fig.axes
    assert main.get_ylabel() == "Accuracy" and main.get_xlabel() == "Epochs"
    assert top.get_xlabel() == "Examples seen"
    assert [t.get_text() for t in main.get_legend().get_texts()] == [
        "Training accuracy",
        "Validation accuracy",
    ]


# --- classifying one message -----------------------------------------------------------------


def test_classify_review_on_rigged_model(words):
    model = rigged()
    assert classify_review("you won a prize", model, words, "cpu", pad_token_id=PAD) == "spam"
    assert classify_review("see you at home", model, words, "cpu", pad_token_id=PAD) == "not spam"
    p = spam_probability("you won a prize", model, words, "cpu", pad_token_id=PAD)
    assert p == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())
    # "prize" beyond max_length is cut off, so the model never sees it
    late = "see you at home later call me prize"
    assert classify_review(late, model, words, "cpu", max_length=3, pad_token_id=PAD) == "not spam"


def test_classify_review_longer_than_context(gpt2):
    model = tiny_classifier(context_length=32)
    long_text = "Free entry to win a prize! " * 200  # about 1,400 tokens, context is 32
    assert classify_review(long_text, model, gpt2, "cpu") in ("spam", "not spam")
    assert classify_review(long_text, model, gpt2, "cpu", max_length=1024) in ("spam", "not spam")
    assert len(message_ids(long_text, gpt2, model)) == 32
    assert len(message_ids("Hi", gpt2, model, max_length=10)) == 10
    p = spam_probability(long_text, model, gpt2, "cpu", max_length=5000)
    assert 0.0 <= p <= 1.0
    verdict = classify_review(long_text, model, gpt2, "cpu")
    assert verdict == ("spam" if p > 0.5 else "not spam")
    assert (input_length(model), input_length(model, 5000), input_length(model, 10)) == (32, 32, 10)


def test_classify_review_is_the_last_tokens_larger_logit_and_keeps_the_mode(gpt2):
    model = tiny_classifier(context_length=32).train()
    for text in ("Hi there", "WINNER!! Claim your prize now", "see you at home later"):
        ids = message_ids(text, gpt2, model, max_length=12)
        assert len(ids) == 12 and ids[-1] == 50256  # padded, as in training
        with torch.no_grad():
            last = model.eval()(torch.tensor([ids]))[0, -1]
        model.train()
        expected = "spam" if last[1] > last[0] else "not spam"
        assert classify_review(text, model, gpt2, "cpu", max_length=12) == expected
        assert model.training  # dropout is off only while classifying


# --- training --------------------------------------------------------------------------------


def synthetic_frame(n: int, seed: int) -> pd.DataFrame:
    """An easy task: half the messages contain "prize", and exactly those are spam."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        message = rng.choices(WORDS, k=rng.randint(3, 10))
        if i % 2:
            message.insert(rng.randrange(len(message) + 1), "prize")
        rows.append({"Label": i % 2, "Text": " ".join(message)})
    return pd.DataFrame(rows)


def test_tiny_training_run_beats_chance(words, capsys):
    train_set = SpamDataset(synthetic_frame(160, seed=1), words, pad_token_id=PAD)
    test_set = SpamDataset(synthetic_frame(80, seed=2), words, train_set.max_length, PAD)
    torch.manual_seed(123)
    train_loader = DataLoader(train_set, batch_size=16, shuffle=True, drop_last=True)
    test_loader = DataLoader(test_set, batch_size=16)
    model = tiny_classifier(vocab_size=len(VOCAB), context_length=16)
    freeze_for_classification(model, "all")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    updates = []
    train_losses, val_losses, train_accs, val_accs, examples_seen = train_classifier(
        model,
        train_loader,
        test_loader,
        optimizer,
        "cpu",
        num_epochs=3,
        eval_freq=5,
        eval_iter=2,
        callback=updates.append,
        progress=False,
    )
    accuracy = calc_accuracy_loader(test_loader, model, "cpu")
    assert accuracy >= 0.9, accuracy  # chance is 0.5
    assert examples_seen == 3 * 10 * 16
    assert len(train_losses) == len(val_losses) == 6  # steps 0, 5, ..., 25
    assert len(train_accs) == len(val_accs) == 3
    assert val_losses[-1] < val_losses[0]

    out = capsys.readouterr().out
    assert "Ep 1 (Step 000000): Train loss " in out
    assert "Ep 3 (Step 000025): " in out
    assert out.count("Training accuracy: ") == 3 and "% | Validation accuracy: " in out
    events = [u.event for u in updates]
    assert events.count("evaluation") == 6 and events.count("epoch_end") == 3
    assert events[-1] == "finished"
    last = updates[-1]
    assert isinstance(last, ClassifierUpdate)
    assert last.examples_seen == examples_seen and list(last.val_accs) == val_accs
    assert updates[events.index("epoch_end")].sample.startswith("Training accuracy: ")


def test_interrupt_returns_what_was_recorded(words, capsys):
    train_set = SpamDataset(synthetic_frame(32, seed=3), words, pad_token_id=PAD)
    loader = DataLoader(train_set, batch_size=8)
    model = tiny_classifier(vocab_size=len(VOCAB), context_length=16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    events = []

    def stop_at_second_evaluation(update):
        events.append(update.event)
        if events.count("evaluation") == 2 and update.event == "evaluation":
            raise KeyboardInterrupt

    result = train_classifier(
        model,
        loader,
        loader,
        optimizer,
        "cpu",
        num_epochs=3,
        eval_freq=1,
        eval_iter=1,
        callback=stop_at_second_evaluation,
        progress=False,
    )
    train_losses, val_losses, train_accs, val_accs, examples_seen = result
    assert len(train_losses) == len(val_losses) == 2
    assert train_accs == val_accs == [] and examples_seen == 16
    assert events[-1] == "interrupted"
    assert "Training interrupted after step 1" in capsys.readouterr().out


@pytest.mark.parametrize("handed_over_in", ["train", "eval"])
def test_train_classifier_runs_exactly_the_steps_of_the_books_loop(words, capsys, handed_over_in):
    """train_classifier (progress bar, callbacks, a clean stop) with its extras off is
    train_classifier_simple: the same results, printed lines and weights, bit for bit."""
    train_set = SpamDataset(synthetic_frame(64, seed=4), words, pad_token_id=PAD)
    loader = DataLoader(train_set, batch_size=8, shuffle=True)

    def run(trainer, **extras):
        torch.manual_seed(5)
        model = tiny_classifier(vocab_size=len(VOCAB), context_length=16)
        model.train(handed_over_in == "train")
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        result = trainer(model, loader, loader, optimizer, "cpu", num_epochs=2, eval_freq=3,
                         eval_iter=2, **extras)
        return result, model.state_dict(), capsys.readouterr().out

    simple, simple_weights, simple_out = run(train_classifier_simple)
    full, full_weights, full_out = run(train_classifier, progress=False)
    assert simple == full and simple_out == full_out and "Ep 2 (Step" in simple_out
    assert all(torch.equal(simple_weights[k], full_weights[k]) for k in simple_weights)


def test_updates_feed_the_training_dashboard():
    from helpers.widgets.training_dashboard import TrainingDashboard

    dashboard = TrainingDashboard()
    update = ClassifierUpdate(
        event="epoch_end",
        step=9,
        epoch=1,
        num_epochs=2,
        steps_per_epoch=10,
        tokens_seen=1200,
        train_losses=[0.7, 0.5],
        val_losses=[0.7, 0.6],
        track_tokens_seen=[120, 1200],
        eval_steps=[0, 9],
        sample="Training accuracy: 80.00% | Validation accuracy: 75.00%",
        start_context="",
        tokens_per_second=500.0,
        learning_rate=5e-5,
        elapsed_seconds=2.0,
        examples_seen=80,
        train_accs=(0.8,),
        val_accs=(0.75,),
    )
    dashboard(update)
    assert "Validation accuracy: 75.00%" in dashboard.sample.value
    assert "<img" in dashboard.plot.value
