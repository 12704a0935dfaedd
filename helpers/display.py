"""Small display helpers for the notebooks, above all ``show_source``.

A notebook builds a class step by step, then says "this is the version in ``helpers/…``" and
shows it with ``show_source(obj)``: the real source, read from the package at run time, so the
notebook can never drift from the code it imports.

    >>> from helpers.dataset import window_starts
    >>> show_source(window_starts)            # in a notebook: highlighted, with a header line
    helpers/dataset.py, lines 15–23
    def window_starts(...

The HTML uses inline styles only (no CSS classes), so it looks the same in JupyterLab, Colab and
on GitHub, light or dark theme. ``repr`` is the plain code, for text-only frontends and nbval.
"""

from __future__ import annotations

import html
import inspect
import textwrap
from pathlib import PurePosixPath

_BOX_STYLE = (
    "border:1px solid #d0d7de; border-radius:6px; background:#f8f8f8; color:#1f2328; "
    "margin:4px 0; overflow:hidden"
)
_HEADER_STYLE = (
    "font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px; "
    "color:#57606a; background:#eef1f4; padding:4px 10px; border-bottom:1px solid #d0d7de"
)
_LINENO_COLOR = "#8c959f"
_CODE_STYLE = "padding:6px 10px; overflow-x:auto; font-size:13px; line-height:1.4"


def _module_path(obj) -> str:
    """``helpers/dataset.py`` for anything defined in ``helpers.dataset``; never absolute."""
    module = inspect.getmodule(obj)
    if module is None:
        raise TypeError(f"show_source: cannot tell which module {obj!r} comes from.")
    parts = module.__name__.split(".")
    source_file = getattr(module, "__file__", None) or ""
    if PurePosixPath(source_file.replace("\\", "/")).name == "__init__.py":
        parts.append("__init__")
    return "/".join(parts) + ".py"


class SourceView:
    """The source of one object, ready to display: ``_repr_html_`` for notebooks, ``repr`` as text.

    Attributes: ``path`` (e.g. ``"helpers/dataset.py"``), ``start`` and ``end`` (1-based line
    numbers, inclusive), ``code`` (the source text), ``name`` (the object's qualified name).
    """

    def __init__(self, obj):
        target = inspect.unwrap(obj) if callable(obj) else obj
        try:
            lines, start = inspect.getsourcelines(target)
        except (OSError, TypeError) as err:
            raise TypeError(
                f"show_source: no source file for {obj!r} (built-in, or defined in a notebook "
                f"cell?). It shows code that lives in a .py file, such as the helpers package."
            ) from err
        self.path = _module_path(target)
        self.start = max(start, 1)  # a whole module reports line 0
        self.end = self.start + len(lines) - 1
        self.code = textwrap.dedent("".join(lines)).rstrip("\n") + "\n"
        self.name = getattr(target, "__qualname__", getattr(target, "__name__", ""))

    @property
    def header(self) -> str:
        return f"{self.path}, lines {self.start}\u2013{self.end}"

    def __repr__(self) -> str:
        return f"{self.header}\n\n{self.code}"

    __str__ = __repr__

    def _repr_html_(self) -> str:
        return (
            f'<div style="{_BOX_STYLE}">'
            f'<div style="{_HEADER_STYLE}">{html.escape(self.header)}</div>'
            f'<div style="{_CODE_STYLE}">{highlight_python(self.code, first_line=self.start)}</div>'
            "</div>"
        )


def highlight_python(code: str, first_line: int | None = None) -> str:
    """Python code as HTML with inline colours (pygments), optionally with line numbers.

    Falls back to a plain escaped ``<pre>`` if pygments is missing (it ships with IPython).
    """
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer
        from pygments.styles.default import DefaultStyle
    except ImportError:  # pragma: no cover - pygments comes with every Jupyter install
        return f'<pre style="margin:0">{html.escape(code)}</pre>'

    class Style(DefaultStyle):
        line_number_color = _LINENO_COLOR
        line_number_background_color = "transparent"

    formatter = HtmlFormatter(
        noclasses=True,
        style=Style,
        nobackground=True,
        linenos="inline" if first_line is not None else False,
        linenostart=first_line or 1,
        cssstyles="margin:0",
        prestyles="margin:0; background:transparent; color:#1f2328; line-height:1.4",
    )
    out = highlight(code, PythonLexer(), formatter)
    # keep line numbers out of copy-paste (pygments has no option for it)
    lineno_style = f"color: {_LINENO_COLOR}; background-color: transparent;"
    return out.replace(lineno_style, lineno_style + " user-select: none;")


def show_source(obj) -> SourceView:
    """Display the source of a function, class or method from ``helpers`` in a notebook.

    Returns a ``SourceView``; as the last expression of a cell it renders as highlighted code
    under a header line such as ``helpers/dataset.py, lines 15–23``.
    """
    return SourceView(obj)


if __name__ == "__main__":  # usage example: python -m helpers.display
    from helpers.dataset import window_starts

    print(show_source(window_starts))
