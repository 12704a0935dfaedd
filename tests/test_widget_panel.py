"""helpers.widgets.panel, and every widget's plain-text line: what a reader sees where no kernel
runs (GitHub, nbviewer). It must name the widget, carry its key numbers, fit the 110 characters
ipywidgets keeps, and follow the widget's state. Written for ipywidgets 8 and 7.7 alike."""

import dataclasses
import re
import sys

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch

from helpers.classify import add_classification_head
from helpers.model import GPTModel
from helpers.tokenizer import SimpleTokenizerV1, build_vocab
from helpers.training_run import TrainingUpdate
from helpers.widgets import (
    architecture_explorer,
    attention_viewer,
    instruction_chat,
    lora_counts,
    lora_explorer,
    sampling_playground,
    spam_probe,
    token_viewer,
    tokens_html,
    window_explorer,
    window_stats,
)
from helpers.widgets.panel import MAX_SUMMARY, SUFFIX, fit_summary, panel, quote
from helpers.widgets.spam_probe import probe
from helpers.widgets.token_viewer import MAX_DRAWN_TOKENS, token_pieces
from helpers.widgets.training_dashboard import TrainingDashboard

TINY_CFG = {
    "vocab_size": 50257,
    "context_length": 48,
    "emb_dim": 16,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.0,
    "qkv_bias": False,
}

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(123)
    return GPTModel(TINY_CFG).eval()


@pytest.fixture(autouse=True)
def _no_windows():
    matplotlib.use("Agg")  # the widgets draw their figures into PNGs: no window, ever
    yield
    plt.close("all")


def plain_text(box) -> str:
    """What IPython saves as the output's ``text/plain``: ipywidgets 8 builds it in
    ``_repr_mimebundle_``; 7.7 builds the same line from ``repr`` in ``_ipython_display_``."""
    if hasattr(box, "_repr_mimebundle_"):
        return box._repr_mimebundle_()["text/plain"]
    return repr(box)


def readable(box, *needles: str) -> str:
    """The summary of ``box`` (its plain text without the suffix), checked to be readable."""
    text = plain_text(box)
    assert text == repr(box)
    assert len(text) <= 110, text  # ipywidgets cuts the line at 110 characters
    assert not text.startswith(("VBox(", "Panel(")), text
    assert text.endswith(SUFFIX), text
    for needle in needles:
        assert needle in text, (needle, text)
    return text[: -len(SUFFIX)]


# --- the panel itself -------------------------------------------------------------------------


def test_panel_repr_is_its_summary_read_at_display_time():
    import ipywidgets as widgets

    state = {"n": 1}
    box = panel([widgets.HTML("x")], summary=lambda: f"Demo: {state['n']} things")
    assert isinstance(box, widgets.VBox) and len(box.children) == 1
    assert readable(box, "Demo: 1 things") == "Demo: 1 things"
    state["n"] = 2
    assert readable(box) == "Demo: 2 things"  # not frozen when the box was built


def test_panel_passes_layout_and_keeps_attributes():
    import ipywidgets as widgets

    box = panel([], summary=lambda: "s", layout=widgets.Layout(width="100%"))
    box.update = lambda: "updated"  # the widgets hang their parts and callbacks on the box
    assert box.layout.width == "100%" and box.update() == "updated"


@pytest.mark.parametrize(
    "summary",
    [lambda: 1 / 0, lambda: None, lambda: 12345, "not callable"],
    ids=["raises", "none", "number", "not-callable"],
)
def test_a_broken_summary_never_breaks_the_repr(summary):
    text = repr(panel([], summary=summary))
    assert len(text) <= MAX_SUMMARY and text.endswith(SUFFIX)
    assert not text.startswith("VBox(")


def test_fit_summary_cuts_the_text_and_keeps_the_suffix():
    line = fit_summary("word " * 50, suffix=" [tail]")
    assert len(line) <= MAX_SUMMARY and line.endswith("word\u2026 [tail]")
    assert fit_summary("a\nb   c") == "a b c"  # one line, single spaces
    assert fit_summary("short", " [tail]") == "short [tail]"


def test_quote_cuts_long_text_at_a_word():
    assert quote("Hello, world!") == "'Hello, world!'"
    assert quote("Hello, world! Tokenizers split text", 24) == "'Hello, world!\u2026'"
    assert quote("x" * 40, 10) == "'" + "x" * 9 + "\u2026'"  # no space: cut mid-word
    assert quote("a\n\nb") == "'a b'"


class FakeHandle:
    def __init__(self, bundle):
        self.bundles = [bundle]

    def update(self, bundle, raw=False):
        assert raw
        self.bundles.append(bundle)


@pytest.fixture
def displays(monkeypatch):
    """Every display of a live panel, as a ``FakeHandle`` holding the bundles it was sent."""
    import IPython.display

    handles = []

    def fake_display(obj, raw=False, display_id=None):
        if not raw:  # as IPython does: an object with _ipython_display_ shows itself
            return obj._ipython_display_()
        assert display_id is True
        handles.append(FakeHandle(obj))
        return handles[-1]

    monkeypatch.setattr(IPython.display, "display", fake_display)
    return handles


def test_live_panel_rewrites_its_displayed_line(displays):
    from IPython.core.formatters import DisplayFormatter

    state = {"step": 0}
    box = panel([], summary=lambda: f"Live: step {state['step']}", live=True)
    # IPython hands the box to its _ipython_display_ (ipywidgets 7.7 and 8 alike)
    assert DisplayFormatter().format(box) == ({}, {})
    (handle,) = displays
    first = handle.bundles[0]
    assert first["text/plain"] == repr(box) and "step 0" in first["text/plain"]
    view = first["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == box.model_id and view["version_major"] == 2
    state["step"] = 7
    box.refresh()
    assert len(handle.bundles) == 2 and "step 7" in handle.bundles[1]["text/plain"]
    assert handle.bundles[1]["application/vnd.jupyter.widget-view+json"] == view


def test_live_panel_outside_a_kernel_has_nothing_to_refresh(monkeypatch):
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda *args, **kwargs: None)
    box = panel([], summary=lambda: "Live", live=True)
    box._ipython_display_()
    box.refresh()  # no handle: nothing to do, and no error
    assert not hasattr(panel([], summary=lambda: "x"), "refresh")  # only live panels refresh


# --- token viewer -----------------------------------------------------------------------------


def test_token_viewer_line_follows_the_text(gpt2):
    viewer = token_viewer("Hello, world!", tokenizers=gpt2)
    readable(viewer, "Token viewer: 'Hello, world!' is 4 tokens")
    viewer.text.value = "Hello"
    readable(viewer, "'Hello' is 1 token (")
    viewer.text.value = "   "
    readable(viewer, "Token viewer: no text")


def test_token_viewer_line_compares_tokenizers(gpt2):
    words = SimpleTokenizerV1(build_vocab("Hello world"))  # cannot encode "The"
    text = "Hello, world! The Verdict was painted in 1908 by Jack Gisburn."
    viewer = token_viewer(text, tokenizers={"GPT-2": gpt2, "V1": words})
    n = len(gpt2.encode(text))
    readable(viewer, "Token viewer: 'Hello,", f"GPT-2 {n}", "V1 cannot encode it")


def test_token_viewer_draws_at_most_2000_tokens(gpt2):
    pasted = "The quick brown fox jumps over the lazy dog. " * 2300  # 103,500 characters
    viewer = token_viewer("short", tokenizers=gpt2)
    viewer.text.value = pasted
    n = len(gpt2.encode(pasted))
    assert n > MAX_DRAWN_TOKENS
    page = viewer.output.value
    assert page.count("<span title=") == MAX_DRAWN_TOKENS  # one box per token here
    assert f"{n:,} tokens" in page and f"showing the first 2,000 of {n:,} tokens" in page
    readable(viewer, f"is {n:,} tokens")


def test_tokens_html_caps_whole_pieces_and_says_so(gpt2):
    pieces = token_pieces("Hi \U0001f44b there", gpt2)  # the emoji's box holds several ids
    assert [len(p.ids) for p in pieces][:2] == [1, 2]
    n = sum(len(p.ids) for p in pieces)
    page = tokens_html(pieces, max_tokens=2)  # the emoji's 2 ids do not fit: not split
    assert page.count("<span title=") == 1 and f"showing the first 1 of {n} tokens" in page
    page = tokens_html(pieces, max_tokens=3)
    assert page.count("<span title=") == 2 and f"showing the first 3 of {n} tokens" in page
    whole = tokens_html(pieces)
    assert "showing" not in whole and whole.count("<span title=") == len(pieces)
    # in a comparison row (count=False) the note still says what is left out
    assert "showing the first 1 of" in tokens_html(pieces, count=False, max_tokens=2)


# --- window explorer --------------------------------------------------------------------------


def test_window_explorer_line_follows_the_sliders(gpt2):
    text = "It was a bright cold day in April, and the clocks were striking thirteen. " * 3
    ex = window_explorer(text, tokenizer=gpt2, max_length=4, stride=2, batch_size=4)
    s = window_stats(len(gpt2.encode(text)), 4, 2, 4)
    readable(
        ex,
        f"Window explorer: {s['num_tokens']} tokens",
        f"{s['num_samples']} windows of 4, stride 2; {s['batches_per_epoch']} batches of 4",
    )
    ex.stride.value = 4
    s = window_stats(s["num_tokens"], 4, 4, 4)
    readable(ex, f"{s['num_samples']} windows of 4, stride 4")


# --- attention viewer -------------------------------------------------------------------------


def test_attention_viewer_line_names_layer_head_and_view(tiny, gpt2):
    viewer = attention_viewer(tiny, gpt2, text="Your journey starts with one step")
    readable(viewer, "Attention viewer: layer 0, head 0 of 2 layers \u00d7 4 heads, 6 tokens")
    viewer.layer.value, viewer.head.value = 1, 3
    readable(viewer, "layer 1, head 3 of 2 layers")
    viewer.view.value = "all heads"
    readable(viewer, "Attention viewer: all 4 heads of layer 1 (2 layers), 6 tokens")
    viewer.dropout.value = True
    readable(viewer, "dropout on")
    viewer.text.value = ""
    readable(viewer, "Attention viewer: no text")
    viewer.text.value = " ".join(["word"] * 50)  # more than the 48 tokens the model reads
    readable(viewer, "50 tokens, more than the model's 48")


def test_attention_viewer_says_it_scales_then_masks(tiny, gpt2):
    module = sys.modules["helpers.widgets.attention_viewer"]  # the package's name is the function
    assert "then masks" in module.__doc__ and "still −∞" in module.__doc__
    viewer = attention_viewer(tiny, gpt2, text="Hi")
    captions = " ".join(w.value for w in viewer.children[2].children if isinstance(w.value, str))
    assert "scaled, then masked" in captions


# --- architecture explorer --------------------------------------------------------------------


def test_architecture_explorer_line_follows_the_config():
    ex = architecture_explorer()
    readable(ex, "Architecture explorer: 12 layers, 12 heads, emb_dim 768: 124.4 M parameters")
    ex.tied.value = False
    readable(ex, "163.0 M parameters, untied")
    ex.emb_dim.value = 770
    readable(ex, "emb_dim 770 is not divisible by n_heads 12")
    ex.preset.value = "gpt2-xl (1558M)"
    readable(ex, "48 layers, 25 heads, emb_dim 1600")


# --- training dashboard -----------------------------------------------------------------------


def update(**changes) -> TrainingUpdate:
    """A made-up update in the middle of the second of four epochs."""
    values = {
        "event": "evaluation",
        "step": 13,
        "epoch": 2,
        "num_epochs": 4,
        "steps_per_epoch": 10,
        "tokens_seen": 14 * 64,
        "train_losses": [3.5, 3.0, 2.6],
        "val_losses": [3.6, 3.2, 3.04],
        "track_tokens_seen": [64, 448, 896],
        "eval_steps": [0, 6, 13],
        "sample": None,
        "start_context": "Every effort",
        "tokens_per_second": 1234.5,
        "learning_rate": 4e-4,
        "elapsed_seconds": 75.0,
    }
    values.update(changes)
    return TrainingUpdate(**values)


def test_dashboard_line_is_its_latest_state(displays):
    import IPython.display

    dashboard = TrainingDashboard()
    readable(dashboard.widget, "Training dashboard: waiting for the first evaluation")
    IPython.display.display(dashboard.widget)  # as notebooks 06 and 09 show it
    (handle,) = displays
    dashboard(update())
    readable(dashboard.widget, "training, step 14/40, train loss 2.600, val 3.040")
    assert len(handle.bundles) == 1  # an evaluation does not rewrite the saved line
    dashboard(dataclasses.replace(update(), event="epoch_end", sample="Every effort moves"))
    assert "step 14/40" in handle.bundles[-1]["text/plain"]  # an epoch's end does
    final = update(
        event="finished", step=39, train_losses=[3.5, 3.0, 1.25], val_losses=[3.6, 3.2, 2.5]
    )
    dashboard(final)
    text = handle.bundles[-1]["text/plain"]
    assert text == repr(dashboard.widget)
    assert "Training dashboard: finished, step 40/40, train loss 1.250, val 2.500" in text


# --- sampling playground ----------------------------------------------------------------------


def test_sampling_playground_line_follows_the_settings(tiny, gpt2):
    pg = sampling_playground(tiny, gpt2, prompt="Every effort moves you", max_new_tokens=2)
    readable(pg, "Sampling playground: 'Every effort moves you', temperature 1.00, top-k off")
    pg.top_k.value, pg.top_p.value = 40, 0.9
    readable(pg, "top-k 40, top-p 0.90")
    pg.temperature.value = 0.0
    readable(pg, "greedy (temperature 0)")
    pg.prompt.value = ""
    readable(pg, "Sampling playground: no prompt")


# --- LoRA explorer ----------------------------------------------------------------------------


def test_lora_explorer_line_follows_rank_and_head():
    ex = lora_explorer(rank=8)
    row = lora_counts(8)[0]
    text = readable(ex, "LoRA explorer: r=8:", f"({row['percent']:.2f}%)", "gpt2-small")
    kept = int(re.search(r"(\d+)% of W's energy", text).group(1))
    ex.rank.value = 1
    text = readable(ex, "r=1", f"{lora_counts(1)[0]['lora']:,} trainable")
    assert int(re.search(r"(\d+)% of W's energy", text).group(1)) < kept  # rank 1 keeps less
    ex.head.value = list(ex.head.options)[1]  # the 2-class head: far fewer parameters
    readable(ex, f"{lora_counts(1, num_classes=2)[0]['lora']:,} trainable")


# --- spam probe -------------------------------------------------------------------------------


def test_spam_probe_line_gives_p_spam_and_the_strongest_token(gpt2):
    torch.manual_seed(123)
    cfg = {**TINY_CFG, "context_length": 32, "n_heads": 2}
    model = add_classification_head(GPTModel(cfg)).eval()
    box = spam_probe(model, gpt2, text="Claim your prize now")
    result = probe("Claim your prize now", model, gpt2)
    readable(box, "Spam probe: 'Claim your prize now'", f"P(spam) {result.probability:.1%}")
    readable(box, f"{len(result.tokens)} tokens; strongest '")
    box.text.value = " ".join(["word"] * 40)  # 40 tokens, the model reads 32
    readable(box, "32 tokens (+8 unread)")
    box.text.value = ""
    readable(box, "Spam probe: no message")


# --- instruction chat -------------------------------------------------------------------------


def test_instruction_chat_line_gives_instruction_and_response(tiny, gpt2):
    chat = instruction_chat(tiny, gpt2, instruction="Name a colour.", max_new_tokens=3)
    readable(chat, "Instruction chat: 'Name a colour.' \u2192 ")
    chat.instruction.value = "   "
    chat.update()
    readable(chat, "Instruction chat: no instruction")
