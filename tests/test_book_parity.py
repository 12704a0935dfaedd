"""The book's own code (``llms_from_scratch``, the package of "Build a Large Language Model (From
Scratch)") and ours, side by side at equal weights and seeds: the same batches, logits, losses,
tokens and weights. Where ours keeps the book's name, it keeps the book's behaviour.

Skipped only where the book's package is not installed (``make setup`` installs it; CI has it).
"""

import pandas as pd
import pytest
import tiktoken
import torch
from torch.utils.data import DataLoader

book_ch02 = pytest.importorskip("llms_from_scratch.ch02")
book_ch03 = pytest.importorskip("llms_from_scratch.ch03")
book_ch04 = pytest.importorskip("llms_from_scratch.ch04")
book_ch05 = pytest.importorskip("llms_from_scratch.ch05")
book_ch06 = pytest.importorskip("llms_from_scratch.ch06")
book_ch07 = pytest.importorskip("llms_from_scratch.ch07")
book_appendix_e = pytest.importorskip("llms_from_scratch.appendix_e")

from helpers.attention import MultiHeadAttention  # noqa: E402
from helpers.classify import (  # noqa: E402
    SpamDataset,
    add_classification_head,
    calc_accuracy_loader,
    classify_review,
    train_classifier_simple,
)
from helpers.data import read_text  # noqa: E402
from helpers.dataset import create_dataloader_v1  # noqa: E402
from helpers.instruct import custom_collate_fn  # noqa: E402
from helpers.lora import LinearWithLoRA  # noqa: E402
from helpers.model import GPT_CONFIG_124M, GPTModel, generate_text_simple  # noqa: E402
from helpers.tokenizer import gpt2_tokenizer  # noqa: E402
from helpers.train import train_model_simple  # noqa: E402

TINY = {**GPT_CONFIG_124M, "vocab_size": 211, "context_length": 12, "emb_dim": 32,
        "n_heads": 4, "n_layers": 2, "drop_rate": 0.1}


@pytest.fixture(scope="module")
def verdict():
    return read_text("the-verdict.txt")


@pytest.fixture
def offline_tiktoken(monkeypatch):
    """The book's code calls tiktoken.get_encoding("gpt2"), which downloads; serve ours."""
    real = tiktoken.get_encoding
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: gpt2_tokenizer() if name == "gpt2" else real(name))


def both_ways(ours_cls, book_cls, *args, seed=1, **kwargs):
    """(ours, book's) built with the same arguments, then holding the same weights."""
    torch.manual_seed(seed)
    ours = ours_cls(*args, **kwargs)
    book = book_cls(*args, **kwargs)
    assert list(ours.state_dict()) == list(book.state_dict())  # the same names, same order
    book.load_state_dict(ours.state_dict(), strict=True)
    return ours, book


# --- chapter 2: the data loader ------------------------------------------------------------------


@pytest.mark.parametrize("stride, shuffle", [(4, False), (2, True)])
def test_dataloader_gives_the_books_batches(verdict, offline_tiktoken, stride, shuffle):
    text = verdict[:3000]
    torch.manual_seed(123)
    ours = list(create_dataloader_v1(text, batch_size=8, max_length=4, stride=stride, shuffle=shuffle))
    torch.manual_seed(123)
    books = list(book_ch02.create_dataloader_v1(text, batch_size=8, max_length=4, stride=stride,
                                                shuffle=shuffle))
    assert len(ours) == len(books) > 10
    for (x, y), (bx, by) in zip(ours, books, strict=True):
        assert torch.equal(x, bx) and torch.equal(y, by)


# --- chapters 3 and 4: attention and the model -------------------------------------------------------


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_multi_head_attention_gives_the_books_outputs(qkv_bias):
    ours, book = both_ways(MultiHeadAttention, book_ch03.MultiHeadAttention, 8, 12, 10, 0.0, 3,
                           qkv_bias=qkv_bias)
    x = torch.randn(2, 7, 8)
    torch.testing.assert_close(ours(x), book(x))
    ours.load_state_dict(book_ch03.MultiHeadAttention(8, 12, 10, 0.0, 3, qkv_bias).state_dict())
    book.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours(x), book(x))


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_gpt_model_gives_the_books_logits_and_state_dicts_load_both_ways(qkv_bias):
    cfg = {**TINY, "qkv_bias": qkv_bias}
    ours, book = both_ways(GPTModel, book_ch04.GPTModel, cfg)
    ours.eval(), book.eval()
    ids = torch.randint(0, cfg["vocab_size"], (3, cfg["context_length"]))
    torch.testing.assert_close(ours(ids), book(ids))
    torch.testing.assert_close(ours(ids[:, :3]), book(ids[:, :3]))  # shorter than the context
    torch.manual_seed(2)
    book = book_ch04.GPTModel(cfg).eval()
    ours.load_state_dict(book.state_dict(), strict=True)
    torch.testing.assert_close(ours(ids), book(ids))


def test_seeded_models_are_the_books_and_dropout_draws_alike():
    # the same seed gives the same initial weights (layers are created in the book's order),
    # and in training mode the same dropout masks
    torch.manual_seed(123)
    ours = GPTModel(TINY)
    torch.manual_seed(123)
    book = book_ch04.GPTModel(TINY)
    for (name, p), (_, q) in zip(ours.state_dict().items(), book.state_dict().items(), strict=True):
        assert torch.equal(p, q), name
    ids = torch.randint(0, TINY["vocab_size"], (2, 12))
    torch.manual_seed(5)
    train_ours = ours(ids)
    torch.manual_seed(5)
    torch.testing.assert_close(train_ours, book(ids))


def test_generate_text_simple_gives_the_books_tokens():
    ours, book = both_ways(GPTModel, book_ch04.GPTModel, TINY)
    ours.eval(), book.eval()
    idx = torch.randint(0, TINY["vocab_size"], (2, 5))
    out = generate_text_simple(ours, idx, max_new_tokens=15, context_size=TINY["context_length"])
    books = book_ch04.generate_text_simple(book, idx, max_new_tokens=15,
                                           context_size=TINY["context_length"])
    assert out.shape == (2, 20) and torch.equal(out, books)


# --- chapter 5: the training loop ------------------------------------------------------------------


@pytest.mark.parametrize("handed_over_in", ["train", "eval"])
def test_train_model_simple_gives_the_books_losses_tokens_and_weights(verdict, handed_over_in, capsys):
    """The book's loop calls model.train() each epoch, so a model that arrives in eval mode (as
    load_gpt2 returns it) still trains with dropout: the same run as the book's own function."""
    tokenizer = gpt2_tokenizer()
    cfg = {**TINY, "vocab_size": 50257}
    split = int(0.9 * 4000)
    torch.manual_seed(0)
    train_loader = create_dataloader_v1(verdict[:split], 2, 12, 12, tokenizer=tokenizer)
    val_loader = create_dataloader_v1(verdict[split:4000], 2, 12, 12, shuffle=False,
                                      drop_last=False, tokenizer=tokenizer)

    def run(trainer):
        torch.manual_seed(123)
        model = GPTModel(cfg)
        model.train(handed_over_in == "train")
        optimizer = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1)
        torch.manual_seed(7)  # the same shuffles and dropout masks for both
        result = trainer(model, train_loader, val_loader, optimizer, "cpu", num_epochs=2,
                         eval_freq=5, eval_iter=2, start_context="Every effort", tokenizer=tokenizer)
        return result, model.state_dict()

    (ours, ours_weights) = run(train_model_simple)
    ours_printed = capsys.readouterr().out
    (books, book_weights) = run(book_ch05.train_model_simple)
    assert ours_printed == capsys.readouterr().out  # the same progress lines and samples
    assert ours[0] == pytest.approx(books[0], rel=1e-5) and ours[1] == pytest.approx(books[1], rel=1e-5)
    assert list(ours[2]) == list(books[2])  # tokens seen
    for name, tensor in ours_weights.items():
        torch.testing.assert_close(tensor, book_weights[name], atol=1e-5, rtol=1e-4)


# --- chapter 7: batching instructions -------------------------------------------------------------


def test_custom_collate_fn_gives_the_books_batches():
    batch = [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]]
    for kwargs in ({}, {"allowed_max_length": 3}, {"pad_token_id": 0, "ignore_index": -1}):
        ours = custom_collate_fn(batch, **kwargs)
        books = book_ch07.custom_collate_fn(batch, **kwargs)
        assert all(torch.equal(a, b) for a, b in zip(ours, books, strict=True)), kwargs


# --- appendix E: LoRA ----------------------------------------------------------------------------------


def test_lora_equals_the_books_up_to_the_documented_scaling():
    # ours scales the update by alpha / rank (the LoRA paper); the book's by alpha alone
    torch.manual_seed(3)
    linear = torch.nn.Linear(6, 5)
    ours = LinearWithLoRA(linear, rank=4, alpha=8)
    book = book_appendix_e.LinearWithLoRA(linear, rank=4, alpha=8 / 4)
    book.lora.load_state_dict(ours.lora.state_dict())
    assert list(ours.state_dict()) == list(book.state_dict())
    with torch.no_grad():
        ours.lora.B.normal_()  # B starts at zero: give the update something to say
        book.lora.B.copy_(ours.lora.B)
    x = torch.randn(3, 6)
    torch.testing.assert_close(ours(x), book(x))


# --- chapter 6: classification ---------------------------------------------------------------------

MESSAGES = [  # (label, text): the book's CSV files hold 0 / 1 labels, as prepare_spam_splits gives
    (1, "WINNER!! As a valued network customer you have been selected to receive a £900 prize reward!"),
    (0, "Hey, just wanted to check if we're still on for dinner tonight? Let me know!"),
    (1, "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005."),
    (0, "Ok lar... Joking wif u oni..."),
    (0, "I'll be home soon"),
    (1, "URGENT! You have won a 1 week FREE membership in our £100,000 Prize Jackpot!"),
    (1, "Txt STOP to 87239 to end your subscription"),
]


@pytest.fixture
def spam_csv(tmp_path):
    path = tmp_path / "train.csv"
    pd.DataFrame(MESSAGES, columns=["Label", "Text"]).to_csv(path, index=None)
    return path


def tiny_spam_classifier(inputs):
    """A tiny GPT with a 2-class head whose bias splits ``inputs`` between the classes: an
    untrained head calls every message the same, which would hide a mix-up of classes."""
    torch.manual_seed(123)
    model = GPTModel({**TINY, "vocab_size": 50257, "context_length": 32})
    add_classification_head(model, num_classes=2).eval()
    with torch.no_grad():
        logits = model(inputs)[:, -1, :]
        gaps = (logits[:, 1] - logits[:, 0]).sort().values
        middle = len(gaps) // 2
        model.out_head.bias[1] -= (gaps[middle - 1] + gaps[middle]) / 2  # half each way
    return model


@pytest.mark.parametrize("max_length", [None, 8, 30])  # the longest message, cut, padded further
def test_spam_dataset_gives_the_books_items(spam_csv, max_length):
    tokenizer = gpt2_tokenizer()
    ours = SpamDataset(csv_file=spam_csv, tokenizer=tokenizer, max_length=max_length)
    books = book_ch06.SpamDataset(csv_file=spam_csv, tokenizer=tokenizer, max_length=max_length)
    assert ours.max_length == books.max_length and len(ours) == len(books) == len(MESSAGES)
    for i in range(len(books)):
        (ids, label), (book_ids, book_label) = ours[i], books[i]
        assert torch.equal(ids, book_ids) and torch.equal(label, book_label)
        assert ids.dtype == book_ids.dtype and label.dtype == book_label.dtype


def test_classify_review_and_accuracy_give_the_books_results(spam_csv):
    tokenizer = gpt2_tokenizer()
    dataset = SpamDataset(spam_csv, tokenizer, max_length=16)  # cuts four messages, pads three
    model = tiny_spam_classifier(torch.stack([ids for ids, _ in dataset]))
    verdicts = [classify_review(text, model, tokenizer, "cpu", max_length=16) for _, text in MESSAGES]
    assert verdicts == [book_ch06.classify_review(text, model, tokenizer, "cpu", max_length=16)
                        for _, text in MESSAGES]
    assert set(verdicts) == {"spam", "not spam"}
    loader = DataLoader(dataset, batch_size=4)  # a short last batch: counted by examples
    for num_batches in (None, 1):
        accuracy = calc_accuracy_loader(loader, model, "cpu", num_batches)
        assert accuracy == pytest.approx(book_ch06.calc_accuracy_loader(loader, model, "cpu", num_batches))
        assert 0 < accuracy < 1  # some right, some wrong: a miscount would show


@pytest.mark.parametrize("handed_over_in", ["train", "eval"])
def test_train_classifier_simple_gives_the_books_results_and_weights(spam_csv, handed_over_in, capsys):
    tokenizer = gpt2_tokenizer()
    loader = DataLoader(SpamDataset(spam_csv, tokenizer, max_length=16), batch_size=2, shuffle=True)

    def run(trainer):
        torch.manual_seed(123)
        model = GPTModel({**TINY, "vocab_size": 50257, "context_length": 32})
        add_classification_head(model, num_classes=2)
        model.train(handed_over_in == "train")
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.1)
        torch.manual_seed(7)  # the same shuffles and dropout masks for both
        result = trainer(model, loader, loader, optimizer, "cpu", num_epochs=2, eval_freq=2, eval_iter=2)
        return result, model.state_dict(), capsys.readouterr().out

    ours, ours_weights, ours_out = run(train_classifier_simple)
    books, book_weights, book_out = run(book_ch06.train_classifier_simple)
    assert ours_out == book_out and "Training accuracy" in ours_out
    for mine, theirs in zip(ours[:4], books[:4], strict=True):
        assert mine == pytest.approx(theirs, rel=1e-5)
    assert ours[4] == books[4] == 2 * len(MESSAGES)  # examples seen
    for name, tensor in ours_weights.items():
        torch.testing.assert_close(tensor, book_weights[name], atol=1e-5, rtol=1e-4)
