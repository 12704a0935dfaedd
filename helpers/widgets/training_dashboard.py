"""Training dashboard: the loss curves redrawn as training runs, the latest sample, the pace
(notebooks 06, 09).

Pure functions do the work; the widget only puts their output on screen:

- ``dashboard_figure(update)``  training and validation loss so far, over epochs, tokens on top
- ``status_html(update)``       steps, epoch, tokens seen, tokens per second, losses, time
- ``sample_html(text, ...)``    the latest sample text, its prompt in bold
- ``TrainingDashboard()``       the live view: pass it as ``callback`` to ``train_model_resumable``

``update`` is the ``helpers.training_run.TrainingUpdate`` the training loop sends after each
evaluation and each epoch's sample. The figure is a PNG inside an ``HTML`` widget, replaced in
place, so the notebook does not grow a new plot per evaluation. For readers without a kernel
the dashboard's plain-text line says where training stands; it is rewritten after each epoch
and at the end, so a saved notebook tells how training ended.

    dashboard = TrainingDashboard()
    dashboard                                      # show it above the training output
    train_model_resumable(..., callback=dashboard)      # helpers.training_run
    dashboard.figure()                             # the final curves, also for GitHub readers
"""

from __future__ import annotations

import dataclasses
import html

from ..train import compact_count, perplexity
from ..training_run import TrainingUpdate
from .attention_viewer import figure_html, message_html
from .panel import panel
from .token_viewer import MUTED_COLOR, TEXT_COLOR, WHITESPACE_MARKS

TRAIN_COLOR = "#2563eb"
VAL_COLOR = "#ea580c"
STATUS_COLORS = {  # (text, background) of the badge that says how training stands
    "training": ("#1e40af", "#dbeafe"),
    "finished": ("#166534", "#dcfce7"),
    "interrupted": ("#92400e", "#fef3c7"),
}
_HEADING_STYLE = f"font-family:sans-serif; font-size:12px; color:{MUTED_COLOR}; margin:6px 0 2px"
_SAMPLE_STYLE = (
    f"font-family:monospace; font-size:13px; color:{TEXT_COLOR}; overflow-wrap:anywhere; "
    f"background:#f8fafc; border-left:3px solid {TRAIN_COLOR}; padding:6px 10px"
)
_CARD_STYLE = (
    "border:1px solid #e5e7eb; border-radius:6px; padding:2px 8px; background:#ffffff"
)


# --- the figure ----------------------------------------------------------------------------


def dashboard_figure(update: TrainingUpdate | None, width: float = 8.0, height: float = 3.0):
    """The losses so far against epochs (the whole run's width), tokens seen along the top.

    Built without pyplot, so drawing it during training leaves no figure behind for the
    notebook to show again at the end of the cell. Returns a ``matplotlib.figure.Figure``.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    num_epochs = update.num_epochs if update is not None else 1
    ax.set_xlim(0, num_epochs)  # fixed: the curves grow to the right as training goes on
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Epochs")
    ax.set_ylabel("Loss")
    ax.grid(alpha=0.3)
    if update is None or not update.train_losses:
        ax.set_yticks([])
        message = "waiting for the first evaluation"
        ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", color=MUTED_COLOR)
        return fig

    epochs = update.eval_epochs
    for values, color, style, name in (
        (update.train_losses, TRAIN_COLOR, "-", "Training"),
        (update.val_losses, VAL_COLOR, "-.", "Validation"),
    ):
        ax.plot(epochs, values, color=color, linestyle=style, label=f"{name} {values[-1]:.3f}")
        ax.plot(epochs[-1:], values[-1:], "o", color=color, markersize=4)  # where it is now
    ax.legend(loc="upper right", title="Loss now", title_fontsize=9, fontsize=9)

    # tokens grow by the same amount every step, so tokens seen is a second scale for epochs
    tokens_per_epoch = update.tokens_seen / (update.step + 1) * update.steps_per_epoch
    top = ax.secondary_xaxis(
        "top", functions=(lambda e: e * tokens_per_epoch, lambda t: t / tokens_per_epoch)
    )
    top.set_xlabel("Tokens seen")
    top.xaxis.set_major_formatter(FuncFormatter(compact_count))
    return fig


# --- HTML ----------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    """3725 -> "1 h 02 min", 65 -> "1 min 05 s", 4.2 -> "4.2 s"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _card(label: str, value: str, note: str = "") -> str:
    note_html = f'<div style="font-size:11px; color:{MUTED_COLOR}">{note}</div>' if note else ""
    return (
        f'<div style="{_CARD_STYLE}">'
        f'<div style="font-size:11px; color:{MUTED_COLOR}">{label}</div>'
        f'<div style="font-size:15px; color:{TEXT_COLOR}; font-variant-numeric:tabular-nums">'
        f"{value}</div>{note_html}</div>"
    )


def _status(update: TrainingUpdate | None) -> str:
    if update is None:
        return "waiting"
    if update.event == "finished":
        return "finished"
    if update.event == "interrupted":
        return "interrupted"
    return "training"


def status_html(update: TrainingUpdate | None) -> str:
    """A row of small cards: how far training is, how fast it goes, where the losses are."""
    status = _status(update)
    text_color, background = STATUS_COLORS.get(status, (MUTED_COLOR, "#f3f4f6"))
    badge = (
        f'<span style="color:{text_color}; background:{background}; border-radius:10px; '
        f'padding:2px 10px; font-size:12px">{status}</span>'
    )
    if update is None:
        cards = [_card("steps done", "0"), _card("tokens seen", "0")]
    else:
        rate = update.tokens_per_second
        cards = [
            _card("steps done", f"{update.step + 1:,} / {update.total_steps:,}"),
            _card("epoch", f"{update.epoch} / {update.num_epochs}"),
            _card("tokens seen", f"{update.tokens_seen:,}"),
            _card("tokens / s", "\u2013" if rate is None else f"{rate:,.0f}"),
        ]
        for name, losses in (("train loss", update.train_losses), ("val loss", update.val_losses)):
            if losses:
                note = f"perplexity {perplexity(losses[-1]):,.1f}"
                cards.append(_card(name, f"{losses[-1]:.3f}", note))
        if update.learning_rate is not None:
            cards.append(_card("learning rate", f"{update.learning_rate:.3g}"))
        cards.append(_card("time", _duration(update.elapsed_seconds)))
    return (
        '<div style="font-family:sans-serif">'
        f'<div style="margin:2px 0 6px 0">{badge}</div>'
        f'<div style="display:flex; flex-wrap:wrap; gap:6px">{"".join(cards)}</div></div>'
    )


def dashboard_summary(update: TrainingUpdate | None) -> str:
    """``Training dashboard: finished, step 90/90, train loss 0.391, val 6.452``."""
    if update is None:
        return "Training dashboard: waiting for the first evaluation"
    line = f"Training dashboard: {_status(update)}, step {update.step + 1:,}/{update.total_steps:,}"
    if update.train_losses:
        line += f", train loss {update.train_losses[-1]:.3f}"
    if update.val_losses:
        line += f", val {update.val_losses[-1]:.3f}"
    return line


def _with_newline_marks(text: str) -> str:
    """Escaped text with each line break shown as a grey ↵: an early model writes dozens of
    them, which would otherwise make the box very tall (the book prints them as spaces)."""
    newline = WHITESPACE_MARKS["\n"]
    mark = f'<span style="color:{MUTED_COLOR}">{newline}</span> '
    return mark.join(html.escape(line) for line in text.split("\n"))


def sample_html(text: str | None, start_context: str = "", epoch: int | None = None) -> str:
    """The latest sample on one line, the prompt it continues in bold."""
    if not text:
        note = "A sample of the model's writing follows each epoch."
        return f'<div style="{_HEADING_STYLE}">{html.escape(note)}</div>'
    prompt = start_context if start_context and text.startswith(start_context) else ""
    body = f"<b>{_with_newline_marks(prompt)}</b>{_with_newline_marks(text[len(prompt) :])}"
    after = f" after epoch {epoch}" if epoch is not None else ""
    heading = f"Sample{after} (greedy: the most likely next token, each time)"
    return f'<div style="{_HEADING_STYLE}">{heading}</div><div style="{_SAMPLE_STYLE}">{body}</div>'


# --- the widget ----------------------------------------------------------------------------


class TrainingDashboard:
    """A live view of a training run; call it with each ``TrainingUpdate`` (it is a callback).

    ``.widget`` is the ``VBox`` to display (showing the dashboard object itself works too);
    ``.status``, ``.plot`` and ``.sample`` are its ``HTML`` parts. The plot is redrawn only
    when there is a new evaluation. ``.figure()`` gives the latest curves as a static figure.
    The widget's ``repr`` is ``dashboard_summary`` of the latest update; where it is displayed,
    that line is rewritten after each epoch and at the end (not at every evaluation: each
    rewrite redraws the widget).
    """

    def __init__(self, dpi: int = 90):
        import ipywidgets as widgets

        self.dpi = dpi
        self.status = widgets.HTML(status_html(None))
        self.plot = widgets.HTML(message_html("The loss curves appear after the first evaluation."))
        self.sample = widgets.HTML(sample_html(None))
        self.last_update: TrainingUpdate | None = None
        self.widget = panel(
            [self.status, self.plot, self.sample],
            summary=lambda: dashboard_summary(self.last_update),
            live=True,
            layout=widgets.Layout(width="100%"),
        )
        self._evaluations_drawn = 0
        self._tokens_per_second: float | None = None

    def __call__(self, update: TrainingUpdate) -> None:
        if update.tokens_per_second is None:  # no steps since the last update: keep the last pace
            update = dataclasses.replace(update, tokens_per_second=self._tokens_per_second)
        self._tokens_per_second = update.tokens_per_second
        self.last_update = update
        self.status.value = status_html(update)
        if len(update.train_losses) != self._evaluations_drawn:
            self.plot.value = figure_html(dashboard_figure(update), dpi=self.dpi)
            self._evaluations_drawn = len(update.train_losses)
        if update.event == "epoch_end":
            self.sample.value = sample_html(update.sample, update.start_context, update.epoch)
        if update.event != "evaluation":
            self.widget.refresh()

    def figure(self):
        """The curves of the latest update, as a ``Figure`` (a static copy of the live plot)."""
        return dashboard_figure(self.last_update)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def training_dashboard(dpi: int = 90) -> TrainingDashboard:
    """A new ``TrainingDashboard``: display it, then pass it as ``callback=`` to the training."""
    return TrainingDashboard(dpi=dpi)


if __name__ == "__main__":  # usage example: python -m helpers.widgets.training_dashboard
    example = TrainingUpdate(
        event="evaluation",
        step=29,
        epoch=4,
        num_epochs=10,
        steps_per_epoch=9,
        tokens_seen=30 * 512,
        train_losses=[9.8, 7.6, 6.5, 6.0, 5.5, 5.1, 4.6],
        val_losses=[9.9, 7.9, 7.0, 6.7, 6.5, 6.4, 6.3],
        track_tokens_seen=[512, 3072, 5632, 8192, 10752, 13312, 15360],
        eval_steps=[0, 5, 10, 15, 20, 25, 29],
        sample="Every effort moves you, and the",
        start_context="Every effort moves you",
        tokens_per_second=1234.0,
        learning_rate=4e-4,
        elapsed_seconds=65.0,
    )
    fig = dashboard_figure(example)  # in a notebook, a Figure as the last line shows itself
    print(f"{len(fig.axes)} axes; status: {len(status_html(example)):,} characters of HTML")
