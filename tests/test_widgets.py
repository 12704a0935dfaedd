"""helpers.widgets: the pure functions on known inputs, and the widgets' callbacks (no browser)."""

import html as html_lib
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from helpers.data import read_text  # noqa: E402
from helpers.dataset import GPTDatasetV1, create_dataloader_v1  # noqa: E402
from helpers.tokenizer import (  # noqa: E402
    BPETokenizer,
    SimpleTokenizerV1,
    SimpleTokenizerV2,
    build_vocab,
    gpt2_tokenizer,
)
from helpers.widgets import (  # noqa: E402
    PALETTE,
    TokenPiece,
    compare_html,
    plot_tokens,
    plot_windows,
    token_pieces,
    token_viewer,
    tokens_html,
    window_explorer,
    window_stats,
    windows,
    windows_html,
)

SHORT = "It was a bright cold day in April, and the clocks were striking thirteen. " * 3


@pytest.fixture(scope="module")
def verdict():
    return read_text("the-verdict.txt")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def titles(html):
    """The hover texts of an HTML fragment, unescaped."""
    return [html_lib.unescape(t) for t in re.findall(r'title="([^"]*)"', html)]


def shown(html):
    """The HTML without its hover texts (which always use ·)."""
    return re.sub(r'title="[^"]*"', "", html)


def backgrounds(html):
    return re.findall(r"background:(#[0-9a-f]{6}); border-radius:3px", html)


# --- token_pieces ----------------------------------------------------------------------------


def test_hello_world_gpt2(gpt2):
    pieces = token_pieces("Hello, world!", gpt2)
    assert [p.ids for p in pieces] == [(15496,), (11,), (995,), (0,)]
    assert [p.text for p in pieces] == ["Hello", ",", " world", "!"]
    assert pieces[1] == TokenPiece((11,), b",", ",")


def test_emoji_split_over_byte_tokens_is_one_piece(gpt2):
    ids = gpt2.encode("\U0001f44b")
    assert len(ids) == 2  # GPT-2 has no single token for it
    (piece,) = token_pieces("\U0001f44b", gpt2)
    assert piece.ids == tuple(ids) == (41840, 233)
    assert piece.raw == "\U0001f44b".encode() and piece.text == "\U0001f44b"
    cjk = token_pieces("\u4f60\u597d", gpt2)  # 你好: two characters, two byte tokens each
    assert [p.text for p in cjk] == ["\u4f60", "\u597d"] and [len(p.ids) for p in cjk] == [2, 2]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=30))
def test_pieces_cover_the_text_and_every_id(text):
    enc = gpt2_tokenizer()
    pieces = token_pieces(text, enc)
    assert "".join(p.text for p in pieces) == text
    assert [i for p in pieces for i in p.ids] == enc.encode(text, allowed_special="all")


def test_special_token_is_one_piece(gpt2):
    pieces = token_pieces("end<|endoftext|>", gpt2)
    assert pieces[-1].ids == (50256,) and pieces[-1].text == "<|endoftext|>"


def test_bpe_tokenizer_from_scratch():
    bpe = BPETokenizer().train("hello hello world, hello there " * 20, vocab_size=270)
    text = "hello \U0001f44b world"
    pieces = token_pieces(text, bpe)
    assert "".join(p.text for p in pieces) == text
    assert [i for p in pieces for i in p.ids] == bpe.encode(text)
    assert any(p.text == " \U0001f44b" or p.text == "\U0001f44b" for p in pieces)


def test_simple_tokenizers_give_words():
    vocab = build_vocab("Hello, world! Hi there.", special_tokens=("<|unk|>",))
    v1 = SimpleTokenizerV1(vocab)
    pieces = token_pieces("Hello, world!", v1)
    assert [p.text for p in pieces] == ["Hello", ",", "world", "!"]
    assert all(p.raw is None for p in pieces)
    assert [p.ids[0] for p in pieces] == v1.encode("Hello, world!")
    v2 = SimpleTokenizerV2(vocab)
    assert [p.text for p in token_pieces("Hello, moon!", v2)] == ["Hello", ",", "<|unk|>", "!"]


# --- tokens_html / compare_html --------------------------------------------------------------


def test_tokens_html_hover_and_count(gpt2):
    html = tokens_html(token_pieces("Hello, world!", gpt2))
    assert titles(html) == [
        "id 15496 \u00b7 b'Hello'",
        "id 11 \u00b7 b','",
        "id 995 \u00b7 b' world'",
        "id 0 \u00b7 b'!'",
    ]
    assert "4 tokens" in html
    emoji = tokens_html(token_pieces("\U0001f44b", gpt2))
    assert titles(emoji) == ["ids 41840, 233 \u00b7 b'\\xf0\\x9f\\x91\\x8b'"]
    assert "2 tokens" in emoji and "\U0001f44b" in emoji


def test_whitespace_rendering(gpt2):
    pieces = token_pieces("a b\n\tc", gpt2)
    plain = shown(tokens_html(pieces))
    assert "\u00b7" not in plain and "\u21b5" not in plain and "\u2192" not in plain
    marked = shown(tokens_html(pieces, show_whitespace=True))
    assert "\u00b7" in marked and "\u2192" in marked
    assert "\u21b5</span>\n" in marked  # the mark, then a real line break


def test_html_escaping(gpt2):
    html = tokens_html(token_pieces('<script>alert("x")</script>', gpt2))
    assert "<script>" not in html and "</script>" not in html
    assert "&lt;" in html and "script" in html
    table = compare_html("<b>bold</b>", {"<i>name</i>": gpt2})
    assert "<b>bold" not in table and "<i>name" not in table


def test_palette_cycles(gpt2):
    pieces = token_pieces(" one two three four five six seven eight nine ten", gpt2)
    assert len(pieces) == 10 and len(PALETTE) == 8
    colours = backgrounds(tokens_html(pieces))
    assert colours == [PALETTE[i % 8] for i in range(10)]
    assert colours[8] == colours[0] and len(set(colours[:8])) == 8


def test_simple_tokens_are_space_separated():
    vocab = build_vocab("Hello, world!")
    html = tokens_html(token_pieces("Hello, world!", SimpleTokenizerV1(vocab)))
    assert "</span> <span" in html
    assert titles(html)[0] == f"id {vocab['Hello']} \u00b7 'Hello'"


def test_empty_text(gpt2):
    html = tokens_html(token_pieces("", gpt2))
    assert "0 tokens" in html and "type some text" in html


def test_compare_rows(gpt2):
    vocab = build_vocab("Hello, world!")
    html = compare_html("Hello, world!", {"GPT-2": gpt2, "simple": SimpleTokenizerV1(vocab)})
    assert html.count("<tr>") == 3  # header + 2
    assert "<td style" in html and ">4</td>" in html and "3.25" in html  # 13 chars / 4 tokens
    failing = compare_html("Hello, moon!", {"GPT-2": gpt2, "V1": SimpleTokenizerV1(vocab)})
    assert "cannot encode this text" in failing and "moon" in failing


# --- plot_tokens ------------------------------------------------------------------------------


def test_plot_tokens_draws_one_box_per_piece(gpt2):
    fig = plot_tokens("Hello, world! \U0001f44b", gpt2)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.patches) == 5  # Hello , world ! and the emoji (two ids, one box)
    texts = [t.get_text() for t in ax.texts]
    assert "15496" in texts and "50169 233" in texts
    assert "U+1F44B" in " ".join(texts)  # the monospace font has no emoji glyph: named instead


def test_plot_tokens_truncates_and_accepts_an_axes(gpt2, verdict):
    fig = plot_tokens(verdict[:500], gpt2, max_tokens=20)
    assert len(fig.axes[0].patches) == 20
    assert "first 20 shown" in " ".join(t.get_text() for t in fig.axes[0].texts)
    fig2, ax = plt.subplots()
    assert plot_tokens("Hi", gpt2, ax=ax) is fig2 and len(ax.patches) == 1


# --- token_viewer widget ----------------------------------------------------------------------


def test_token_viewer_callbacks(gpt2):
    viewer = token_viewer("Hello, world!", tokenizers=gpt2)
    assert titles(viewer.output.value)[0] == "id 15496 \u00b7 b'Hello'"
    viewer.text.value = "Good night, moon"
    assert "4 tokens" in viewer.output.value and "night" in viewer.output.value
    assert "\u00b7" not in shown(viewer.output.value)
    viewer.whitespace.value = True
    assert "\u00b7</span>night" in viewer.output.value


def test_token_viewer_shows_encoding_errors():
    viewer = token_viewer("Hello", tokenizers=SimpleTokenizerV1(build_vocab("Hello world")))
    assert "1 token" in viewer.output.value
    viewer.text.value = "Hello moon"
    assert "cannot encode this text" in viewer.output.value and "moon" in viewer.output.value


def test_token_viewer_default_and_comparison(gpt2):
    viewer = token_viewer("Hello, world!")
    assert "4 tokens" in viewer.output.value  # GPT-2 by default
    vocab = build_vocab("Hello, world!", special_tokens=("<|unk|>",))
    both = token_viewer("Hello, world!", tokenizers={"GPT-2": gpt2, "V2": SimpleTokenizerV2(vocab)})
    assert both.output.value.count("<tr>") == 3
    before = both.output.value
    both.text.value = "Hello, moon!"
    assert both.output.value != before and "&lt;|unk|&gt;" in both.output.value


# --- windows / window_stats -------------------------------------------------------------------


def test_windows_shift_targets_by_one():
    ws = windows(list(range(10, 20)), max_length=4, stride=3)
    assert [w.start for w in ws] == [0, 3]
    assert ws[1].input_ids == (13, 14, 15, 16) and ws[1].target_ids == (14, 15, 16, 17)
    assert windows([1, 2, 3], max_length=4, stride=1) == []


def test_window_stats_match_the_dataset(gpt2, verdict):
    assert len(gpt2.encode(verdict)) == 5145
    stats = window_stats(5145, max_length=4, stride=4, batch_size=8)
    assert stats["num_samples"] == 1286 == len(GPTDatasetV1(verdict, gpt2, 4, 4))
    assert stats["batches_per_epoch"] == 160 and stats["samples_dropped"] == 6
    loader = create_dataloader_v1(verdict, batch_size=8, max_length=4, stride=4, shuffle=False)
    assert len(loader) == stats["batches_per_epoch"]
    assert stats["overlap"] == 0 and stats["gap"] == 0
    assert (
        window_stats(5145, 4, 1, 8)["num_samples"] == 5141 == len(GPTDatasetV1(verdict, gpt2, 4, 1))
    )
    assert window_stats(5145, 256, 128, 2)["overlap"] == 128


@pytest.mark.parametrize("num_tokens", [0, 3, 5, 17, 40])
@pytest.mark.parametrize("max_length,stride", [(4, 1), (4, 4), (4, 6), (3, 2), (1, 5)])
def test_unused_token_counts_brute_force(num_tokens, max_length, stride):
    ws = windows(range(num_tokens), max_length, stride)
    used_in = {i for w in ws for i in w.input_ids}
    used_tg = {i for w in ws for i in w.target_ids}
    stats = window_stats(num_tokens, max_length, stride, batch_size=2)
    assert stats["num_samples"] == len(ws)
    assert stats["tokens_never_input"] == num_tokens - len(used_in)
    assert stats["tokens_never_target"] == num_tokens - len(used_tg)
    assert stats["tokens_never_seen"] == num_tokens - len(used_in | used_tg)
    assert stats["input_tokens_per_epoch"] == sum(len(w.input_ids) for w in ws)


# --- windows_html -----------------------------------------------------------------------------


def test_windows_html_marks_the_sample(gpt2, verdict):
    html = windows_html(verdict, gpt2, max_length=4, stride=1, batch_size=8, sample=0)
    assert "[40, 367, 2885, 1464]" in html and "[367, 2885, 1464, 1807]" in html
    assert "5,141" in html  # samples
    marked = re.findall(r'<span title="position (\d+) [^"]*" style="([^"]*)"', html)
    inputs = [int(p) for p, s in marked if "background:#bfdbfe" in s]
    targets = [int(p) for p, s in marked if "border-bottom" in s]
    assert inputs == [0, 1, 2, 3] and targets == [1, 2, 3, 4]
    second = windows_html(verdict, gpt2, 4, 1, 8, sample=1)
    assert "[367, 2885, 1464, 1807]" in second and "row 1 of batch 0" in second


def test_windows_html_neighbours_context_and_clamping(gpt2, verdict):
    html = windows_html(verdict, gpt2, max_length=4, stride=4, batch_size=8, sample=100, context=10)
    marked = re.findall(r'<span title="position (\d+) [^"]*" style="([^"]*)"', html)
    positions = [int(p) for p, _ in marked]
    assert positions == list(range(390, 415))  # 10 either side of the 5-token window at 400
    faint = [int(p) for p, s in marked if "#e5e7eb" in s]
    # the previous sample's inputs, and the next one's (404 is also this sample's last target)
    assert faint == list(range(396, 400)) + list(range(404, 408))
    last = windows_html(verdict, gpt2, 4, 4, 8, sample=10**6)
    assert "Sample 1,285 starts at token 5,140" in last
    assert "<code>drop_last=True</code> drops" in last  # 1,285 is in the incomplete last batch


def test_windows_html_friendly_messages(gpt2):
    short = windows_html("Hi there", gpt2, max_length=4, stride=1, batch_size=2, sample=0)
    assert "2 tokens long" in short and "max_length + 1 = 5" in short
    assert "at least 1" in windows_html(SHORT, gpt2, 4, 0, 2, 0)
    vocab = build_vocab("Hello world")
    failing = windows_html("Hello moon", SimpleTokenizerV1(vocab), 1, 1, 1, 0)
    assert "cannot encode" in failing


def test_windows_html_escapes_and_handles_split_characters(gpt2):
    html = windows_html("<script>x</script> \U0001f44b and more words here", gpt2, 2, 1, 1, 0)
    assert "<script>" not in html and "&lt;" in html
    hover = [t for t in titles(html) if "part" in t]
    assert [t.split(" \u00b7 ", 1)[1] for t in hover] == [
        "id 50169 \u00b7 part 1 of 2 of ' \U0001f44b'",
        "id 233 \u00b7 part 2 of 2 of ' \U0001f44b'",
    ]


def test_windows_html_word_level():
    text = "the cat sat on the mat and the dog sat on the log"
    v1 = SimpleTokenizerV1(build_vocab(text))
    html = windows_html(text, v1, max_length=3, stride=3, batch_size=2, sample=1)
    assert ">on </span>" in html  # words get a space after them


# --- plot_windows -----------------------------------------------------------------------------


def test_plot_windows_rows_and_panels():
    fig = plot_windows(16, max_length=4, stride=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert len(fig.axes[0].patches) == 2 * 3  # starts 0, 4, 8: input and target bar each
    fig = plot_windows(16, max_length=4, stride=(1, 2, 4))
    assert [len(ax.patches) // 2 for ax in fig.axes] == [12, 6, 3]
    assert "overlap 3 tokens" in fig.axes[0].get_title()
    fig = plot_windows(16, 4, 1, max_rows=5, tokens=[f"t{i}" for i in range(16)])
    assert len(fig.axes[0].patches) == 10 and "first 5 of 12" in fig.axes[0].get_title()
    assert fig.axes[0].get_xticklabels()[3].get_text() == "t3"
    fig, ax = plt.subplots()
    assert plot_windows(10, 3, 5, ax=ax) is fig and "2 skipped" in ax.get_title()


# --- window_explorer widget -------------------------------------------------------------------


def test_window_explorer_callbacks(gpt2):
    ex = window_explorer(SHORT, tokenizer=gpt2, max_length=4, stride=1, batch_size=8)
    n_tokens = len(gpt2.encode(SHORT))
    assert ex.sample.max == n_tokens - 4 - 1
    before = ex.output.value
    ex.sample.value = 3
    assert ex.output.value != before and "Sample 3 starts at token 3" in ex.output.value

    ex.stride.value = 4
    assert ex.sample.max == len(range(0, n_tokens - 4, 4)) - 1
    assert "Sample 3 starts at token 12" in ex.output.value

    ex.max_length.value = 8
    assert re.search(r"overlap of consecutive inputs</td><td [^>]*><b>4 tokens", ex.output.value)

    ex.batch_size.value = 2
    assert "batch_size=2" in ex.output.value and "row 1 of batch 1" in ex.output.value


def test_window_explorer_sample_slider_clamps(gpt2):
    ex = window_explorer(SHORT, tokenizer=gpt2, max_length=4, stride=1, batch_size=1)
    ex.sample.value = ex.sample.max
    ex.stride.value = 8  # far fewer samples: the value follows the new max
    assert ex.sample.value == ex.sample.max == len(range(0, len(gpt2.encode(SHORT)) - 4, 8)) - 1
    assert f"Sample {ex.sample.value} starts" in ex.output.value


def test_window_explorer_short_text_never_raises(gpt2):
    ex = window_explorer(SHORT, tokenizer=gpt2)
    ex.sample.value = 5
    ex.text.value = "Too short"
    assert "tokens long" in ex.output.value and "Type more text" in ex.output.value
    assert ex.sample.max == 0 and ex.sample.value == 0 and ex.sample.disabled
    ex.text.value = ""
    assert "0 tokens long" in ex.output.value
    ex.text.value = SHORT
    assert "Sample 0 starts at token 0" in ex.output.value and not ex.sample.disabled


def test_window_explorer_defaults(verdict):
    ex = window_explorer()
    assert ex.text.value == verdict
    assert "[40, 367, 2885, 1464]" in ex.output.value and ex.sample.max == 5140
