"""helpers.widgets.spam_probe: token influence by occlusion, the HTML, the widget's callbacks."""

import html
import re

import pytest
import torch

from helpers.classify import add_classification_head, spam_probability
from helpers.model import GPTModel
from helpers.tokenizer import SimpleTokenizerV2, build_vocab
from helpers.widgets.spam_probe import (
    DEFAULT_TEXT,
    TokenInfluence,
    influence_colour,
    probe,
    probe_html,
    spam_probe,
    token_influence,
)
from rigged_models import CountingClassifier

WORDS = "see you at home later call me when the bus is late dinner tonight ok thanks".split()
VOCAB = build_vocab(" ".join(WORDS + ["prize"]), special_tokens=("<|endoftext|>", "<|unk|>"))
PAD = VOCAB["<|endoftext|>"]


@pytest.fixture(scope="module")
def words():
    return SimpleTokenizerV2(VOCAB)


@pytest.fixture(scope="module")
def rigged():
    """"prize" pushes towards spam, "home" towards not spam, every other word not at all."""
    return CountingClassifier({VOCAB["prize"]: 4.0, VOCAB["home"]: -2.0}, len(VOCAB), bias=-1.0)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(123)
    cfg = dict(vocab_size=50257, context_length=32, emb_dim=32, n_heads=2, n_layers=2)
    cfg.update(drop_rate=0.0, qkv_bias=False)
    return add_classification_head(GPTModel(cfg)).eval()


def sigmoid(x: float) -> float:
    return torch.sigmoid(torch.tensor(float(x))).item()


def test_removing_the_decisive_token_lowers_p_spam(words, rigged):
    tokens = token_influence("call me prize home", rigged, words, pad_token_id=PAD)
    assert [t.text for t in tokens] == ["call", "me", "prize", "home"]
    assert [t.id for t in tokens] == [VOCAB[w] for w in ("call", "me", "prize", "home")]
    by_word = {t.text: t.influence for t in tokens}
    whole = sigmoid(-1 + 4 - 2)
    assert by_word["prize"] == pytest.approx(whole - sigmoid(-1 - 2))  # > 0: towards spam
    assert by_word["home"] == pytest.approx(whole - sigmoid(-1 + 4))  # < 0: towards not spam
    assert by_word["prize"] > 0.5 and by_word["home"] < -0.2
    assert by_word["call"] == pytest.approx(0.0) and by_word["me"] == pytest.approx(0.0)


def test_pad_method_and_probability_match_classify(words, rigged):
    result = probe("call prize", rigged, words, pad_token_id=PAD, method="pad")
    assert result.probability == pytest.approx(
        spam_probability("call prize", rigged, words, "cpu", pad_token_id=PAD)
    )
    assert result.tokens[1].influence == pytest.approx(sigmoid(3) - sigmoid(-1))
    with pytest.raises(ValueError, match="remove"):
        probe("call", rigged, words, pad_token_id=PAD, method="zero")


def test_influence_equals_leaving_the_token_out(gpt2, tiny):
    text = "Claim your free prize now"
    tokens = token_influence(text, tiny, gpt2, max_length=12)
    assert "".join(t.text for t in tokens) == text
    whole = spam_probability(text, tiny, gpt2, "cpu", max_length=12)
    ids = gpt2.encode(text)
    for i in (0, 3):
        without = gpt2.decode(ids[:i] + ids[i + 1 :])
        alone = spam_probability(without, tiny, gpt2, "cpu", max_length=12)
        assert tokens[i].influence == pytest.approx(whole - alone, abs=1e-5)


def test_tokens_beyond_max_length_are_not_read(words, rigged):
    result = probe("prize call me prize", rigged, words, max_length=2, pad_token_id=PAD)
    assert [t.text for t in result.tokens] == ["prize", "call"]
    assert [t.text for t in result.unread] == ["me", "prize"]
    assert all(t.influence == 0 for t in result.unread)
    page = probe_html("prize call me prize", rigged, words, max_length=2, pad_token_id=PAD)
    assert "Only the first 2 tokens are read; 2 more are crossed out." in page
    assert page.count("line-through") == 2


def test_probe_html_colours_and_titles(words, rigged):
    page = probe_html("call prize home", rigged, words, pad_token_id=PAD)
    p = sigmoid(-1 + 4 - 2)
    assert f"<b>{p:.1%}</b>" in page and ">spam</b>" in page
    spans = {word: style for style, word in re.findall(r'style="([^"]*)">(\w+)</span>', page)}
    assert "rgba(220,38,38,0.85)" in spans["prize"]  # the strongest token: full red
    assert spans["home"].startswith("background:rgba(22,163,74,")  # green
    assert "rgba(220,38,38,0.00)" in spans["call"] or "rgba(22,163,74,0.00)" in spans["call"]
    prize_points = (p - sigmoid(-3)) * 100
    assert f"id {VOCAB['prize']} \u00b7 P(spam) {prize_points:+.1f} points" in html.unescape(page)
    assert "Strongest token: &#x27;prize&#x27;" in page


def test_probe_html_escapes_and_handles_empty_text(gpt2, tiny):
    page = probe_html("<b>WIN</b> & more", tiny, gpt2)
    assert "<b>WIN" not in page and "</b> &" not in page
    assert ">&lt;</span>" in page and ">&lt;/</span>" in page and "&amp;" in page
    empty = probe_html("", tiny, gpt2)
    assert "Type a message above" in empty and "P(spam)" not in empty


def test_colour_scale():
    assert influence_colour(0.3, 0.3) == "rgba(220,38,38,0.85)"
    assert influence_colour(-0.15, 0.3) == "rgba(22,163,74,0.42)"
    assert influence_colour(0.9, 0.3) == "rgba(220,38,38,0.85)"  # capped


def test_widget_callbacks(gpt2, tiny):
    box = spam_probe(tiny, gpt2)
    assert box.text.value == DEFAULT_TEXT and box.text.continuous_update is False
    assert "P(spam)" in box.output.value and "winner" in box.output.value
    box.text.value = "Are we still on for dinner tonight?"
    assert "dinner" in box.output.value
    box.text.value = "   "  # whitespace only still has tokens: it is probed, not an error
    assert "P(spam)" in box.output.value
    box.text.value = ""
    assert "Type a message above" in box.output.value
    box.text.value = "ok"
    box.output.value = ""
    box.update()
    assert "P(spam)" in box.output.value


def test_widget_shows_errors_instead_of_raising(words, rigged):
    box = spam_probe(rigged, words, text="ok", method="remove", pad_token_id=PAD)
    assert "P(spam)" in box.output.value
    box.text.value = "call <|endoftext|> me"  # fine: special tokens are tokens too
    assert "Could not" not in box.output.value
    broken = spam_probe(rigged, words, text="ok", pad_token_id=len(VOCAB) + 5)
    assert "Could not probe this text (IndexError" in broken.output.value


def test_token_influence_rows_are_named_tuples(words, rigged):
    (token,) = token_influence("prize", rigged, words, pad_token_id=PAD)
    assert isinstance(token, TokenInfluence) and token.text == "prize"
