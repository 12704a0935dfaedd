"""helpers.widgets.training_dashboard: the figure and HTML functions, and the live widget
driven by a real (tiny) training run."""

import dataclasses

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers.dataset import create_dataloader_v1  # noqa: E402
from helpers.model import GPTModel  # noqa: E402
from helpers.training_run import TrainingUpdate, train_model_resumable  # noqa: E402
from helpers.widgets.training_dashboard import (  # noqa: E402
    TrainingDashboard,
    dashboard_figure,
    sample_html,
    status_html,
    training_dashboard,
)

TEXT = "Every effort moves you forward. The sun set slowly over the quiet town.\n" * 8
CHARS = sorted(set(TEXT))


class CharTokenizer:
    def encode(self, text, allowed_special=None):
        return [CHARS.index(ch) for ch in text]

    def decode(self, ids):
        return "".join(CHARS[i] for i in ids)


def update(**changes) -> TrainingUpdate:
    """A made-up update in the middle of the second of four epochs."""
    values = dict(
        event="evaluation",
        step=13,
        epoch=2,
        num_epochs=4,
        steps_per_epoch=10,
        tokens_seen=14 * 64,
        train_losses=[3.5, 3.0, 2.6],
        val_losses=[3.6, 3.2, 3.0],
        track_tokens_seen=[64, 448, 896],
        eval_steps=[0, 6, 13],
        sample=None,
        start_context="Every effort",
        tokens_per_second=1234.5,
        learning_rate=4e-4,
        elapsed_seconds=75.0,
    )
    values.update(changes)
    return TrainingUpdate(**values)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --- pure functions -----------------------------------------------------------------------------


def test_figure_shows_the_curves_so_far_over_the_whole_run():
    fig = dashboard_figure(update())
    ax = fig.axes[0]
    assert ax.get_xlim() == (0, 4)  # the full run's width, so progress is visible
    assert ax.get_xlabel() == "Epochs" and ax.get_ylabel() == "Loss"
    train_line, _, val_line, _ = ax.get_lines()
    assert list(train_line.get_xdata()) == pytest.approx([0.1, 0.7, 1.4])  # (step + 1) / 10
    assert list(val_line.get_ydata()) == [3.6, 3.2, 3.0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["Training 2.600", "Validation 3.000"]
    (top,) = ax.child_axes  # tokens seen along the top: 64 tokens a step, 640 an epoch
    assert top.get_xlabel() == "Tokens seen"
    fig.draw_without_rendering()  # a secondary axis takes its range when drawn
    assert top.get_xlim() == pytest.approx((0, 4 * 640))
    assert plt.get_fignums() == []  # built without pyplot: nothing left for the notebook to show


def test_figure_before_the_first_evaluation():
    for empty in (None, update(train_losses=[], val_losses=[], eval_steps=[])):
        ax = dashboard_figure(empty).axes[0]
        assert not ax.get_lines() and "waiting" in ax.texts[0].get_text()


def test_status_html():
    text = status_html(update())
    for expected in ("14 / 40", "2 / 4", "896", "1,234", "2.600", "3.000", "0.0004", "1 min 15 s"):
        assert expected in text, expected
    assert "perplexity 13.5" in text  # exp(2.6)
    assert ">training<" in text
    assert ">finished<" in status_html(update(event="finished", step=39))
    assert ">interrupted<" in status_html(update(event="interrupted"))
    assert "\u2013" in status_html(update(tokens_per_second=None))  # no pace known yet
    assert ">waiting<" in status_html(None)


def test_sample_html_escapes_and_marks_the_prompt():
    html = sample_html("Every effort <moves>\n\nyou", "Every effort", epoch=3)
    assert "after epoch 3" in html
    assert "<b>Every effort</b>" in html and "&lt;moves&gt;" in html
    assert html.count("\u21b5") == 2 and "\n" not in html  # line breaks shown as marks
    assert "follows each epoch" in sample_html(None)
    assert "<b></b>Other" in sample_html("Other text", "Every effort")


# --- the widget ---------------------------------------------------------------------------------


def test_dashboard_follows_a_real_training_run():
    torch.manual_seed(123)
    cfg = {
        "vocab_size": len(CHARS),
        "context_length": 16,
        "emb_dim": 32,
        "n_heads": 2,
        "n_layers": 2,
        "drop_rate": 0.1,
        "qkv_bias": False,
    }
    model = GPTModel(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-3)
    split = int(0.8 * len(TEXT))
    train_loader = create_dataloader_v1(TEXT[:split], 4, 16, 16, tokenizer=CharTokenizer())
    val_loader = create_dataloader_v1(
        TEXT[split:], 4, 16, 16, shuffle=False, drop_last=False, tokenizer=CharTokenizer()
    )
    dashboard = training_dashboard()
    assert isinstance(dashboard, TrainingDashboard)
    assert "appear after the first evaluation" in dashboard.plot.value
    assert list(dashboard.widget.children) == [dashboard.status, dashboard.plot, dashboard.sample]
    shown = []

    def callback(update):
        dashboard(update)
        shown.append((update, dashboard.status.value, dashboard.plot.value, dashboard.sample.value))

    train_losses, _, _ = train_model_resumable(
        model,
        train_loader,
        val_loader,
        optimizer,
        "cpu",
        num_epochs=2,
        eval_freq=4,
        eval_iter=1,
        start_context="Every",
        tokenizer=CharTokenizer(),
        progress=False,
        callback=callback,
    )
    evaluations = [s for s in shown if s[0].event == "evaluation"]
    assert len(evaluations) == len(train_losses) >= 3
    plots = [plot for _, _, plot, _ in evaluations]
    assert all(plot.startswith("<img") for plot in plots)
    assert len(set(plots)) == len(plots)  # redrawn in place at every evaluation
    statuses = [status for _, status, _, _ in evaluations]
    assert len(set(statuses)) == len(statuses)
    assert f"{evaluations[-1][0].step + 1} / " in statuses[-1]

    epoch_ends = [i for i, s in enumerate(shown) if s[0].event == "epoch_end"]
    assert len(epoch_ends) == 2
    for epoch, i in enumerate(epoch_ends, start=1):
        _, _, plot, sample = shown[i]
        assert f"after epoch {epoch}" in sample and "<b>Every</b>" in sample
        assert plot == shown[i - 1][2]  # no new evaluation: the picture is not redrawn
    final = shown[-1]
    assert final[0].event == "finished" and ">finished<" in final[1]
    assert dashboard.last_update.event == "finished"
    assert "tokens / s" in final[1] and "\u2013" not in final[1]  # the last pace is kept
    fig = dashboard.figure()
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == len(train_losses)


def test_dashboard_keeps_the_last_pace():
    dashboard = TrainingDashboard()
    dashboard(update(tokens_per_second=500.0))
    dashboard(dataclasses.replace(update(), event="epoch_end", tokens_per_second=None, sample="x"))
    assert "500" in dashboard.status.value and dashboard.last_update.tokens_per_second == 500.0
    assert "after epoch 2" in dashboard.sample.value
