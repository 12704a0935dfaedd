"""The outer box of every widget, with a line of plain text for readers without a kernel.

A notebook saves each widget output twice: the live view, and a ``text/plain`` line for any
viewer that cannot run widgets (GitHub, nbviewer, a closed notebook). ipywidgets fills that line
with ``repr(widget)`` cut to 110 characters, which for a plain ``VBox`` is an unreadable
``VBox(children=(Textarea(value=...``. A ``Panel`` is a ``VBox`` whose repr is a short summary
of what the widget shows, so the saved notebook reads "Token viewer: ... is 17 tokens" instead.
Both ipywidgets 7.7 (Colab) and 8.x build the line from ``repr``, when the widget is displayed.

A widget that changes by itself after it is displayed (the training dashboard) passes
``live=True`` and calls ``.refresh()``: the displayed line is then replaced with the new
summary, so a notebook saved after training says how training ended, not how it began.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

# ipywidgets keeps the first 110 characters of the repr; staying under it avoids a cut mid-word.
MAX_SUMMARY = 108
# Said after every summary: the line stands in for something a reader could use.
SUFFIX = " [run to interact]"


def panel(children, summary: Callable[[], str], live: bool = False, **kwargs):
    """A ``VBox`` of ``children`` whose plain-text form is ``summary()``, read at display time.

    ``live``: the box also has ``.refresh()``, which rewrites the plain text of every place
    it is displayed with the current ``summary()`` (see the module docstring).
    """
    box = (_live_panel_class() if live else _panel_class())(children, **kwargs)
    box.summary = summary
    return box


def fit_summary(text: str, suffix: str = "") -> str:
    """``text`` on one line, then ``suffix``: at most ``MAX_SUMMARY`` characters in all.

    A long ``text`` is cut and ends in an ellipsis; the ``suffix`` is always kept whole.
    """
    line = " ".join(str(text).split())
    room = MAX_SUMMARY - len(suffix)
    if len(line) > room:
        line = line[: room - 1].rstrip() + "\u2026"
    return line + suffix


def quote(text: str, limit: int = 24) -> str:
    """``text`` on one line in quotes, cut after ``limit`` characters: ``'Hello, world!…'``."""
    line = " ".join(str(text).split())
    if len(line) > limit:
        cut = line[: limit - 1]
        # end on a whole word when that keeps most of the room
        if " " in cut[limit // 2 :]:
            cut = cut[: cut.rindex(" ")]
        line = cut.rstrip() + "\u2026"
    return f"'{line}'"


def quoted_summary(label: str, text: str, rest: str) -> str:
    """``Label: 'the text, cut…'rest``: the quote gets the room ``rest`` leaves (12 to 30
    characters), so the numbers in ``rest`` are never the part ``fit_summary`` cuts off."""
    room = MAX_SUMMARY - len(SUFFIX) - len(f"{label}: ''") - len(rest)
    return f"{label}: {quote(text, min(max(room, 12), 30))}{rest}"


def plural(n: int, word: str) -> str:
    """``1 token``, ``2,048 tokens``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


@cache
def _panel_class():
    # Built on first use so that importing helpers.widgets does not import ipywidgets.
    import ipywidgets as widgets

    class Panel(widgets.VBox):
        summary: Callable[[], str] = staticmethod(lambda: "interactive widget")

        def __repr__(self) -> str:
            # A repr must never raise: a broken summary would hide the widget itself.
            try:
                text = str(self.summary())
            except Exception as err:  # noqa: BLE001 - any failure falls back to a plain label
                text = f"interactive widget ({type(err).__name__} in its summary)"
            return fit_summary(text, SUFFIX)

    return Panel


@cache
def _live_panel_class():
    class LivePanel(_panel_class()):
        """Displays itself with a display id, so ``refresh()`` can rewrite its plain text."""

        def _mime_bundle(self) -> dict:
            # What ipywidgets 7.7 and 8.x both publish for a widget: the plain-text line and
            # a reference to the widget's model, which the front end draws.
            view = {"version_major": 2, "version_minor": 0, "model_id": self.model_id}
            return {"text/plain": repr(self), "application/vnd.jupyter.widget-view+json": view}

        def _ipython_display_(self, **kwargs):
            from IPython.display import display

            handle = display(self._mime_bundle(), raw=True, display_id=True)
            if handle is not None:  # None outside a kernel (plain Python prints instead)
                self._display_handles = [*getattr(self, "_display_handles", []), handle]

        def refresh(self) -> None:
            """Rewrite the plain text of every display of this box with ``summary()``."""
            for handle in getattr(self, "_display_handles", []):
                handle.update(self._mime_bundle(), raw=True)

    return LivePanel
