"""Interactive views for the notebooks, one small module per widget.

Each widget is a thin layer of ``ipywidgets`` controls (core widgets only, so it runs on
ipywidgets 7.7 in Colab and 8.x in JupyterLab) over pure functions that turn data into HTML or
a matplotlib figure. The figures are the static twin of each widget, for readers on GitHub.

token_viewer      tokens as coloured boxes, ids on hover; compare tokenizers      (01)
window_explorer   input/target sampling windows, stride and overlap              (02)
"""

from .token_viewer import (
    PALETTE,
    TokenPiece,
    compare_html,
    plot_tokens,
    token_pieces,
    token_viewer,
    tokens_html,
)
from .window_explorer import (
    Window,
    plot_windows,
    window_explorer,
    window_stats,
    windows,
    windows_html,
)

__all__ = [
    "PALETTE",
    "TokenPiece",
    "compare_html",
    "plot_tokens",
    "token_pieces",
    "token_viewer",
    "tokens_html",
    "Window",
    "plot_windows",
    "window_explorer",
    "window_stats",
    "windows",
    "windows_html",
]
