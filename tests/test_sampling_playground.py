"""helpers.widgets.sampling_playground: candidates, labels, figures, widget callbacks."""

import html

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from helpers.generate import filter_logits, generate, softmax_with_temperature  # noqa: E402
from helpers.model import GPTModel  # noqa: E402
from helpers.tokenizer import SimpleTokenizerV1, build_vocab  # noqa: E402
from helpers.widgets.sampling_playground import (  # noqa: E402
    DROPPED_COLOR,
    KEPT_COLOR,
    Candidate,
    plot_next_token_probs,
    plot_temperature_effect,
    sampling_playground,
    token_label,
    top_candidates,
)

VOCAB = {
    "closer": 0,
    "every": 1,
    "effort": 2,
    "forward": 3,
    "inches": 4,
    "moves": 5,
    "pizza": 6,
    "toward": 7,
    "you": 8,
}
LOGITS = torch.tensor([4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79])
TINY_CFG = {
    "vocab_size": 50257,
    "context_length": 16,
    "emb_dim": 32,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.1,
    "qkv_bias": False,
}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(123)
    return GPTModel(TINY_CFG).eval()


@pytest.fixture(scope="module")
def words():
    """The book's nine-word vocabulary as a word-level tokenizer."""
    return SimpleTokenizerV1(VOCAB)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def gpt2_probs(gpt2, scores: dict) -> torch.Tensor:
    """A GPT-2-sized distribution with the given logits for a few tokens, -5 elsewhere."""
    logits = torch.full((50257,), -5.0)
    for text, value in scores.items():
        (token_id,) = gpt2.encode(text)
        logits[token_id] = value
    return logits


# --- candidates and labels ----------------------------------------------------------------------


def test_top_candidates(words, gpt2):
    probs = softmax_with_temperature(LOGITS, 1.0)
    top = top_candidates(probs, words, n=3)
    assert [c.text for c in top] == ["forward", "toward", "closer"]
    assert [c.id for c in top] == [3, 7, 0]
    assert top[0] == Candidate("forward", 3, pytest.approx(0.5721, abs=1e-4))
    assert len(top_candidates(probs, words, n=50)) == 9  # no more than the vocabulary
    ties = top_candidates(torch.tensor([0.2, 0.4, 0.2, 0.2]), words, n=3)
    assert [c.id for c in ties] == [1, 0, 2]  # equal probabilities: lower id first
    logits = gpt2_probs(gpt2, {" the": 5.0, "\n": 4.0})
    top = top_candidates(torch.softmax(logits, 0), gpt2, n=2)
    assert [(c.text, c.id) for c in top] == [(" the", 262), ("\n", 198)]


def test_token_labels_make_whitespace_visible(gpt2, words):
    assert token_label(262, gpt2) == "\u00b7the"  # " the"
    assert token_label(198, gpt2) == "\u21b5"  # newline
    (first_half, *_) = gpt2.encode("\U0001f600")  # an emoji is split into byte tokens
    assert token_label(first_half, gpt2).startswith("\\x")
    long_id = gpt2.encode(" supercalifragilisticexpialidocious")[0]
    assert len(token_label(long_id, gpt2)) <= 14
    assert token_label(3, words) == "forward"


# --- figures ------------------------------------------------------------------------------------


def bar_colours(ax):
    return [to_hex(bar.get_facecolor()) for bar in ax.patches]


def test_next_token_chart_without_filtering(words):
    probs = softmax_with_temperature(LOGITS, 1.0)
    fig = plot_next_token_probs(probs, words, n=5)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "forward",
        "toward",
        "closer",
        "you",
        "inches",
    ]
    widths = [bar.get_width() for bar in ax.patches]
    assert widths == sorted(widths, reverse=True)
    assert widths[0] == pytest.approx(0.5721, abs=1e-4)
    assert bar_colours(ax) == [KEPT_COLOR] * 5
    assert [t.get_text() for t in ax.texts][:2] == ["57.2%", "35.8%"]
    assert ax.get_legend() is None  # nothing removed, nothing to explain
    assert "5 likeliest next tokens (of 9)" in ax.get_title(loc="left")


def test_next_token_chart_shows_what_top_k_keeps(words):
    probs = softmax_with_temperature(LOGITS, 1.0)
    kept = torch.isfinite(filter_logits(LOGITS, 1.0, top_k=3))
    fig = plot_next_token_probs(probs, words, n=5, kept_mask=kept, title="top-k 3")
    (ax,) = fig.axes
    assert bar_colours(ax) == [KEPT_COLOR] * 3 + [DROPPED_COLOR] * 2
    labels = [t.get_text() for t in ax.texts]
    # the kept ones show their share after renormalising: the book's 0.5775, 0.3610, 0.0615
    assert labels[:3] == ["57.2% \u2192 57.8%", "35.8% \u2192 36.1%", "6.1% \u2192 6.1%"]
    assert "\u2192" not in labels[3] and "\u2192" not in labels[4]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["kept: 3 tokens", "removed by top-k / top-p"]
    assert ax.get_title(loc="left") == "top-k 3"


def test_next_token_chart_of_gpt2_tokens(gpt2):
    logits = gpt2_probs(gpt2, {" the": 5.0, " a": 4.3, "\n": 3.9, ",": 3.5})
    fig = plot_next_token_probs(softmax_with_temperature(logits, 1.0), gpt2, n=4)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["\u00b7the", "\u00b7a", "\u21b5", ","]
    tiny = plot_next_token_probs(torch.full((50257,), 1 / 50257), gpt2, n=3)
    assert tiny.axes[0].texts[0].get_text() == "0.002%"  # small, but not shown as 0


def test_temperature_figure_is_the_books(words):
    fig = plot_temperature_effect(LOGITS, VOCAB)
    (ax,) = fig.axes
    assert len(ax.patches) == 27  # 9 words x 3 temperatures
    assert [t.get_text() for t in ax.get_xticklabels()] == list(VOCAB)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["temperature = 1", "temperature = 0.1", "temperature = 5"]
    heights = torch.tensor([float(bar.get_height()) for bar in ax.patches]).reshape(3, 9)
    for row, t in zip(heights, (1, 0.1, 5), strict=True):
        assert torch.allclose(row, softmax_with_temperature(LOGITS, t))
    assert heights[1, 3] > 0.99  # T = 0.1: nearly all on "forward"
    reordered = {word: i for i, word in reversed(list(enumerate(VOCAB)))}
    fig = plot_temperature_effect(LOGITS, reordered, temperatures=(1, 2))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(VOCAB)  # by id
    assert len(fig.axes[0].patches) == 18
    with pytest.raises(ValueError, match="8 labels for 9 logits"):
        plot_temperature_effect(LOGITS, list(VOCAB)[:8])


# --- the widget ---------------------------------------------------------------------------------


def test_playground_callbacks(tiny, gpt2):
    rng_before = torch.random.get_rng_state()
    pg = sampling_playground(tiny, gpt2, max_new_tokens=6)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the notebook's RNG is untouched
    assert pg.chart.value.startswith("<img") and "Every effort moves you" in pg.text.value
    assert pg.top_k.max == 100 and pg.top_p.value == 1.0 and pg.seed.value == 123
    charts, texts = [pg.chart.value], [pg.text.value]

    def changed(chart: bool, text: bool) -> bool:
        charts.append(pg.chart.value)
        texts.append(pg.text.value)
        return (charts[-1] != charts[-2]) == chart and (texts[-1] != texts[-2]) == text

    pg.temperature.value = 0.5
    assert changed(chart=True, text=True)
    pg.top_k.value = 5
    assert changed(chart=True, text=True)
    pg.top_p.value = 0.5
    assert changed(chart=True, text=True)
    pg.seed.value = 7  # only the text depends on the seed and the length
    assert changed(chart=False, text=True) and "seed 7" in pg.text.value
    pg.max_new_tokens.value = 3
    assert changed(chart=False, text=True) and "3 new tokens" in pg.text.value
    pg.seed.value = 123
    pg.max_new_tokens.value = 6
    pg.top_k.value, pg.top_p.value, pg.temperature.value = 0, 1.0, 1.0
    assert pg.chart.value == charts[0] and pg.text.value == texts[0]  # same settings, same text
    pg.temperature.value = 0.0
    assert "greedy" in pg.text.value
    pg.prompt.value = "Hello, I am"
    assert "Hello, I am" in pg.text.value and pg.chart.value.startswith("<img")


def test_playground_text_is_generate_with_the_seed(tiny, gpt2):
    pg = sampling_playground(tiny, gpt2, max_new_tokens=5, temperature=1.2, top_k=20, seed=42)
    torch.manual_seed(42)
    ids = torch.tensor([gpt2.encode("Every effort moves you")])
    out = generate(tiny, ids, 5, 16, temperature=1.2, top_k=20)
    continuation = gpt2.decode(out[0, 4:].tolist())
    assert html.escape(continuation) in pg.text.value


def test_playground_friendly_messages(tiny, gpt2):
    pg = sampling_playground(tiny, gpt2, prompt="", max_new_tokens=3)
    for shown in (pg.chart.value, pg.text.value):
        assert "Type a prompt" in shown and "<img" not in shown and "Traceback" not in shown
    pg.temperature.value = 1.5  # moving a slider with an empty prompt must not fail either
    assert "Type a prompt" in pg.chart.value
    pg.prompt.value = " ".join(["word"] * 30)  # 30 tokens, the context is 16
    assert "sees only the last 16" in pg.text.value and pg.chart.value.startswith("<img")
    simple = SimpleTokenizerV1(build_vocab("Every effort moves you"))
    odd = sampling_playground(tiny, simple, prompt="Every pizza", max_new_tokens=2)
    assert "cannot encode" in odd.chart.value and "cannot encode" in odd.text.value
