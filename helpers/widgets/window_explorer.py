"""Sampling-window explorer: how ``max_length`` and ``stride`` cut a text into examples (02).

Pure functions do the work; the widget only wires sliders to them:

- ``windows(token_ids, max_length, stride)``     the (start, inputs, targets) examples
- ``window_stats(num_tokens, max_length, ...)``  how many samples, batches, overlap, unused
- ``windows_html(text, tokenizer, ...)``         the text as tokens, one sample highlighted
- ``plot_windows(num_tokens_shown, ...)``        a static figure of windows and their overlap
- ``window_explorer(text)``                      the interactive version

Window positions come from ``helpers.dataset.window_starts``, the same function
``GPTDatasetV1`` uses, so what you see is what the dataloader gives.

    >>> windows([10, 11, 12, 13, 14, 15], max_length=2, stride=2)
    [Window(start=0, input_ids=(10, 11), target_ids=(11, 12)), Window(start=2, ...)]
"""

from __future__ import annotations

import html
from typing import NamedTuple

from ..dataset import window_starts
from .panel import panel as summary_panel
from .panel import plural
from .token_viewer import (
    MUTED_COLOR,
    TEXT_COLOR,
    encode,
    piece_title,
    pieces_from_ids,
    visible_text,
)

INPUT_COLOR = "#bfdbfe"  # background of the selected sample's inputs
TARGET_COLOR = "#ea580c"  # underline of its targets (inputs shifted by one)
NEIGHBOUR_COLOR = "#e5e7eb"  # background of the neighbouring samples' inputs
INPUT_BAR = "#60a5fa"
TARGET_BAR = "#fb923c"


class Window(NamedTuple):
    start: int
    input_ids: tuple[int, ...]
    target_ids: tuple[int, ...]


def windows(token_ids, max_length: int, stride: int) -> list[Window]:
    """Every training example: inputs ``ids[s : s+max_length]``, targets one token further."""
    ids = [int(i) for i in token_ids]
    return [
        Window(s, tuple(ids[s : s + max_length]), tuple(ids[s + 1 : s + max_length + 1]))
        for s in window_starts(len(ids), max_length, stride)
    ]


def _covered(n_windows: int, width: int, stride: int) -> int:
    """Positions covered by ``n_windows`` spans of ``width``, ``stride`` apart."""
    return 0 if n_windows == 0 else (n_windows - 1) * min(width, stride) + width


def window_stats(num_tokens: int, max_length: int, stride: int, batch_size: int = 1) -> dict:
    """What one epoch over ``num_tokens`` tokens looks like (``drop_last=True``).

    Keys: ``num_tokens``, ``max_length``, ``stride``, ``batch_size``, ``num_samples``,
    ``batches_per_epoch``, ``samples_dropped`` (the last, incomplete batch), ``overlap`` (tokens
    shared by consecutive input windows), ``gap`` (tokens skipped between them),
    ``tokens_never_input``, ``tokens_never_target``, ``tokens_never_seen`` (neither),
    ``input_tokens_per_epoch`` (counted with repeats) and ``reuse`` (that / ``num_tokens``).
    """
    n = len(window_starts(num_tokens, max_length, stride))
    batches = n // batch_size if batch_size >= 1 else 0
    input_covered = _covered(n, max_length, stride)
    seen = _covered(n, max_length + 1, stride)
    return {
        "num_tokens": num_tokens,
        "max_length": max_length,
        "stride": stride,
        "batch_size": batch_size,
        "num_samples": n,
        "batches_per_epoch": batches,
        "samples_dropped": n - batches * batch_size,
        "overlap": max(0, max_length - stride),
        "gap": max(0, stride - max_length),
        "tokens_never_input": num_tokens - input_covered,
        # targets cover the same number of positions, shifted by one (token 0 is never a target)
        "tokens_never_target": num_tokens - input_covered,
        "tokens_never_seen": num_tokens - seen,
        "input_tokens_per_epoch": n * max_length,
        "reuse": n * max_length / num_tokens if num_tokens else 0.0,
    }


# --- HTML ----------------------------------------------------------------------------------

_FONT = "font-family:sans-serif; font-size:13px"
_MONO = "font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace"
_CONTAINER = (
    f"{_MONO}; font-size:14px; line-height:2.1; white-space:pre-wrap; word-break:break-word; "
    "tab-size:4; "
    f"color:{TEXT_COLOR}; background:#ffffff; padding:6px 8px; border:1px solid #e5e7eb; "
    "border-radius:6px"
)


def _message(text: str) -> str:
    return (
        f'<div style="{_FONT}; color:#92400e; background:#fffbeb; border:1px solid #fcd34d; '
        f'border-radius:6px; padding:8px 10px">{text}</div>'
    )


def _position_labels(ids: list[int], tokenizer) -> list[tuple[str, str]]:
    """(visible HTML text, hover title) for every token position.

    A character split over several tokens (an emoji) is shown on its first position; the
    others show a faint ``+``; each position's title has its own id.
    """
    labels = []
    for piece in pieces_from_ids(ids, tokenizer):
        # word-level tokens (no bytes) are words: give each a space after it
        text = piece.text + " " if piece.raw is None else piece.text
        for k, token_id in enumerate(piece.ids):
            if len(piece.ids) == 1:
                title = piece_title(piece)
            else:
                title = f"id {token_id} \u00b7 part {k + 1} of {len(piece.ids)} of {piece.text!r}"
            shown = (
                visible_text(text, newlines=True)
                if k == 0
                else (f'<span style="color:{MUTED_COLOR}">+</span>')
            )
            labels.append((shown, title))
    return labels


_cache: dict = {}


def _encode_cached(text: str, tokenizer) -> tuple[list[int], list[tuple[str, str]]]:
    """Encoding and labels of the last text seen (sliders re-render without re-encoding)."""
    if _cache.get("text") != text or _cache.get("tokenizer") is not tokenizer:
        ids = encode(text, tokenizer)
        _cache.update(
            text=text, tokenizer=tokenizer, ids=ids, labels=_position_labels(ids, tokenizer)
        )
    return _cache["ids"], _cache["labels"]


def _ids_text(ids) -> str:
    return "[" + ", ".join(str(i) for i in ids) + "]"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _stats_html(stats: dict, sample: int, start: int) -> str:
    s = stats
    batch, row = divmod(sample, s["batch_size"])
    if batch < s["batches_per_epoch"]:
        where = f"with <code>shuffle=False</code> it is row {row} of batch {batch}"
    else:
        where = "it falls in the last, incomplete batch, which <code>drop_last=True</code> drops"
    dropped = s["samples_dropped"]
    rows = [
        ("tokens in the text", f"{s['num_tokens']:,}"),
        ("samples (windows)", f"{s['num_samples']:,}"),
        (
            f"batches per epoch (batch_size={s['batch_size']}, drop_last)",
            f"{s['batches_per_epoch']:,}"
            + (f" ({_plural(dropped, 'sample')} dropped)" if dropped else ""),
        ),
        ("overlap of consecutive inputs", _plural(s["overlap"], "token")),
        ("tokens skipped between inputs", f"{s['gap']}"),
        ("tokens never used as input", f"{s['tokens_never_input']:,}"),
        (
            "input positions per epoch",
            (
                f"{s['input_tokens_per_epoch']:,} "
                f"(each token {s['reuse']:.2f}\u00d7 as input, on average)"
            ),
        ),
    ]
    cell = "padding:1px 10px 1px 0; text-align:left"
    body = "".join(
        f'<tr><td style="{cell}">{k}</td><td style="{cell}"><b>{v}</b></td></tr>' for k, v in rows
    )
    table = f"{_FONT}; color:{TEXT_COLOR}; border-collapse:collapse; margin-top:4px"
    return (
        f'<div style="{_FONT}; color:{TEXT_COLOR}; margin-top:6px">'
        f"Sample {sample:,} starts at token {start:,}; {where}.</div>"
        f'<table style="{table}">{body}</table>'
    )


def windows_html(
    text: str,
    tokenizer,
    max_length: int,
    stride: int,
    batch_size: int = 1,
    sample: int = 0,
    context: int = 40,
) -> str:
    """The text as tokens with one training sample marked, its ids, and the epoch's numbers.

    The sample's inputs have a blue background, its targets an orange underline (so the
    overlap, everything but the first input and the last target, carries both); the previous
    and next samples' inputs are faintly grey. Shows ``context`` tokens either side.
    Never raises for user input: a too-short text or a bad setting gives a message.
    """
    if max_length < 1 or stride < 1 or batch_size < 1:
        return _message("max_length, stride and batch_size must each be at least 1.")
    try:
        ids, labels = _encode_cached(text, tokenizer)
    except Exception as err:  # noqa: BLE001 - shown to the user, not raised in a widget
        return _message(
            f"The tokenizer cannot encode this text: {html.escape(f'{type(err).__name__}: {err}')}"
        )
    stats = window_stats(len(ids), max_length, stride, batch_size)
    n = stats["num_samples"]
    if n == 0:
        return _message(
            f"The text is {_plural(len(ids), 'token')} long, but one sample needs "
            f"max_length + 1 = {max_length + 1} tokens ({max_length} inputs, and one more token "
            f"for the last target). Type more text or lower max_length."
        )
    sample = min(max(int(sample), 0), n - 1)
    starts = window_starts(len(ids), max_length, stride)
    start = starts[sample]
    inputs = range(start, start + max_length)
    targets = range(start + 1, start + max_length + 1)
    neighbours = set()
    for other in (sample - 1, sample + 1):
        if 0 <= other < n:
            neighbours.update(range(starts[other], starts[other] + max_length))

    lo = max(0, start - context)
    hi = min(len(ids), start + max_length + 1 + context)
    spans = []
    for pos in range(lo, hi):
        shown, title = labels[pos]
        style = "border-radius:2px; padding:2px 0"
        if pos in inputs:
            style += f"; background:{INPUT_COLOR}"
        elif pos in neighbours:
            style += f"; background:{NEIGHBOUR_COLOR}"
        if pos in targets:
            style += f"; border-bottom:3px solid {TARGET_COLOR}"
        hover = html.escape(f"position {pos} \u00b7 {title}")
        spans.append(f'<span title="{hover}" style="{style}">{shown}</span>')
    more = f'<span style="color:{MUTED_COLOR}">\u2026</span>'
    body = (more if lo > 0 else "") + "".join(spans) + (more if hi < len(ids) else "")

    legend = (
        f'<div style="{_FONT}; color:{TEXT_COLOR}; margin:2px 0 4px 0">'
        f'<span style="background:{INPUT_COLOR}; padding:1px 6px; border-radius:2px">'
        "input x</span> "
        f'<span style="border-bottom:3px solid {TARGET_COLOR}; padding:0 6px">target y</span> '
        f'<span style="background:{NEIGHBOUR_COLOR}; padding:1px 6px; border-radius:2px">'
        f"neighbouring samples' inputs</span>"
        f'<span style="color:{MUTED_COLOR}"> \u00b7 hover a token for its position and id</span>'
        "</div>"
    )
    x = ids[start : start + max_length]
    y = ids[start + 1 : start + max_length + 1]
    id_rows = (
        f'<table style="{_FONT}; color:{TEXT_COLOR}; border-collapse:collapse; margin-top:6px">'
        f'<tr><td style="padding:1px 10px 1px 0"><span style="background:{INPUT_COLOR}; '
        f'padding:0 6px">x</span></td><td style="{_MONO}">{_ids_text(x)}</td></tr>'
        f'<tr><td style="padding:1px 10px 1px 0"><span style="border-bottom:3px solid '
        f'{TARGET_COLOR}; padding:0 6px">y</span></td><td style="{_MONO}">{_ids_text(y)}</td></tr>'
        "</table>"
    )
    # a white card of its own, so it stays readable in dark themes
    card = f"background:#ffffff; color:{TEXT_COLOR}; padding:6px 8px; border-radius:6px"
    return (
        f'<div style="{card}">{legend}<div style="{_CONTAINER}">{body}</div>{id_rows}'
        f"{_stats_html(stats, sample, start)}</div>"
    )


# --- static figure -------------------------------------------------------------------------


def plot_windows(
    num_tokens_shown: int = 16,
    max_length: int = 4,
    stride=(1, 2, 4),
    max_rows: int = 16,
    tokens=None,
    ax=None,
):
    """Windows over the first ``num_tokens_shown`` token positions, one row per sample.

    Each row has the inputs as a blue bar and the targets (shifted one to the right) as an
    orange bar under it. ``stride`` may be a list: one panel per stride, side by side, to show
    how it changes the overlap. ``tokens`` optionally labels the positions (token strings).
    Returns the ``Figure``; each panel holds two bar patches per row (at most ``max_rows``).
    In a notebook, end the cell with ``;`` so the figure shows once.
    """
    import matplotlib.pyplot as plt

    strides = [stride] if isinstance(stride, int) else list(stride)
    if ax is not None and len(strides) != 1:
        raise ValueError("plot_windows: pass ax only with a single stride.")
    all_starts = [list(window_starts(num_tokens_shown, max_length, s)) for s in strides]
    n_rows = max(1, min(max_rows, max(len(st) for st in all_starts)))
    label_in = 0.09 * max((len(str(t)) for t in tokens), default=0) if tokens else 0.3
    height = 1.05 + 0.26 * n_rows + label_in
    if ax is None:
        panel_width = 0.26 * num_tokens_shown + 0.4
        fig, axes = plt.subplots(
            1,
            len(strides),
            sharey=True,
            squeeze=False,
            figsize=(panel_width * len(strides) + 0.7, height),
        )
        axes = list(axes[0])
    else:
        fig, axes = ax.figure, [ax]
    for panel, s, starts in zip(axes, strides, all_starts, strict=True):
        shown = starts[:n_rows]
        r = list(range(len(shown)))
        panel.barh(
            [i - 0.19 for i in r],
            [max_length] * len(r),
            left=[st - 0.5 for st in shown],
            height=0.36,
            color=INPUT_BAR,
            label="input x",
        )
        panel.barh(
            [i + 0.19 for i in r],
            [max_length] * len(r),
            left=[st + 0.5 for st in shown],
            height=0.36,
            color=TARGET_BAR,
            label="target y (shifted by 1)",
        )
        for pos in range(num_tokens_shown + 1):
            panel.axvline(pos - 0.5, color="#e5e7eb", linewidth=0.6, zorder=0)
        panel.set_xlim(-0.5, num_tokens_shown - 0.5)
        panel.set_ylim(n_rows - 0.5, -0.6)
        panel.set_yticks(range(n_rows))
        panel.set_yticklabels([f"sample {i}" for i in range(n_rows)], fontsize=8)
        if tokens is not None:
            panel.set_xticks(range(min(num_tokens_shown, len(tokens))))
            panel.set_xticklabels(
                [str(t) for t in tokens[:num_tokens_shown]],
                rotation=90,
                fontsize=8,
                family="monospace",
            )
        else:
            panel.set_xticks(range(0, num_tokens_shown, 2 if num_tokens_shown <= 24 else 4))
            panel.tick_params(axis="x", labelsize=8)
            panel.set_xlabel("token position", fontsize=8)
        for side in ("top", "right", "left"):
            panel.spines[side].set_visible(False)
        panel.tick_params(axis="y", length=0)
        overlap = max(0, max_length - s)
        subtitle = f"overlap {overlap} token{'s' if overlap != 1 else ''}"
        if s > max_length:
            subtitle += f", {s - max_length} skipped"
        if len(starts) > len(shown):
            subtitle += f" (first {len(shown)} of {len(starts)} samples)"
        panel.set_title(f"max_length={max_length}, stride={s}\n{subtitle}", fontsize=9)
    if ax is None:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 / height))
    return fig


# --- the widget ----------------------------------------------------------------------------

DEFAULT_TEXT = (
    "In the beginning, a language model knows nothing. It reads a long text, one window at a "
    "time, and learns to predict the next token."
)


def _default_text() -> str:
    """The book's short story when it is available (offline mirror or cache), else a sentence."""
    try:
        from ..data import read_text

        return read_text("the-verdict.txt")
    except Exception:  # noqa: BLE001 - any failure to get the file: use the built-in sentence
        return DEFAULT_TEXT


def explorer_summary(stats: dict) -> str:
    """``Window explorer: 135 tokens → 66 windows of 4, stride 2; 16 batches of 4``."""
    batches = stats["batches_per_epoch"]
    return (
        f"Window explorer: {plural(stats['num_tokens'], 'token')} \u2192 "
        f"{plural(stats['num_samples'], 'window')} of {stats['max_length']}, "
        f"stride {stats['stride']}; {batches:,} batch{'' if batches == 1 else 'es'} "
        f"of {stats['batch_size']}"
    )


def window_explorer(
    text: str | None = None,
    tokenizer=None,
    max_length: int = 4,
    stride: int = 1,
    batch_size: int = 8,
    max_slider: int = 32,
):
    """A text box and sliders for ``max_length``, ``stride``, ``batch_size`` and the sample.

    ``text`` defaults to the-verdict (the book's text), ``tokenizer`` to GPT-2's. The sample
    slider's range follows the number of samples. The returned ``VBox`` has ``.text``,
    ``.max_length``, ``.stride``, ``.batch_size``, ``.sample`` (the controls), ``.output``
    (HTML) and ``.update()``, for scripts and tests; its ``repr`` is one line: how many
    windows and batches the settings make.
    """
    import ipywidgets as widgets

    if tokenizer is None:
        from ..tokenizer import gpt2_tokenizer

        tokenizer = gpt2_tokenizer()
    if text is None:
        text = _default_text()
    style = {"description_width": "90px"}
    wide = widgets.Layout(width="420px")
    text_box = widgets.Textarea(value=text, layout=widgets.Layout(width="100%", height="6em"))
    length_slider = widgets.IntSlider(
        value=max_length,
        min=1,
        max=max(max_slider, max_length),
        description="max_length",
        style=style,
        layout=wide,
    )
    stride_slider = widgets.IntSlider(
        value=stride,
        min=1,
        max=max(max_slider, stride),
        description="stride",
        style=style,
        layout=wide,
    )
    batch_slider = widgets.IntSlider(
        value=batch_size,
        min=1,
        max=max(max_slider, batch_size),
        description="batch_size",
        style=style,
        layout=wide,
    )
    sample_slider = widgets.IntSlider(
        value=0, min=0, max=0, description="sample", style=style, layout=wide
    )
    output = widgets.HTML()
    busy = [False]
    state = {"summary": ""}

    def num_samples() -> int:
        try:
            ids, _ = _encode_cached(text_box.value, tokenizer)
        except Exception:  # noqa: BLE001 - windows_html shows the error
            state["summary"] = "Window explorer: the tokenizer cannot encode this text"
            return 0
        stats = window_stats(
            len(ids), length_slider.value, stride_slider.value, batch_slider.value
        )
        state["summary"] = explorer_summary(stats)
        return stats["num_samples"]

    def update(change=None):
        if busy[0]:
            return
        busy[0] = True
        try:
            n = num_samples()
            # widen before narrowing so max never drops below min, then clamp the value
            sample_slider.max = max(n - 1, 0)
            sample_slider.value = min(sample_slider.value, sample_slider.max)
            sample_slider.disabled = n <= 1
        finally:
            busy[0] = False
        output.value = windows_html(
            text_box.value,
            tokenizer,
            length_slider.value,
            stride_slider.value,
            batch_slider.value,
            sample_slider.value,
        )

    for control in (text_box, length_slider, stride_slider, batch_slider, sample_slider):
        control.observe(update, names="value")
    update()

    box = summary_panel(
        [
            text_box,
            widgets.HBox([length_slider, stride_slider]),
            widgets.HBox([batch_slider, sample_slider]),
            output,
        ],
        summary=lambda: state["summary"],
        layout=widgets.Layout(width="100%"),
    )
    box.text, box.output, box.update = text_box, output, update
    box.max_length, box.stride, box.batch_size, box.sample = (
        length_slider,
        stride_slider,
        batch_slider,
        sample_slider,
    )
    box.tokenizer = tokenizer
    return box
