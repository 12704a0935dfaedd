"""helpers.display: show_source renders the real source, with a relative path and line range."""

import inspect
import os
from pathlib import Path

import pytest

import helpers
import helpers.widgets
from helpers.dataset import GPTDatasetV1, window_starts
from helpers.display import SourceView, highlight_python, show_source


def _lines(obj):
    lines, start = inspect.getsourcelines(obj)
    return start, start + len(lines) - 1


def test_function_header_and_plain_text():
    view = show_source(window_starts)
    assert isinstance(view, SourceView)
    start, end = _lines(window_starts)
    assert view.header == f"helpers/dataset.py, lines {start}\u2013{end}"
    text = repr(view)
    assert text.startswith(view.header)
    assert "def window_starts(num_tokens: int, max_length: int, stride: int) -> range:" in text
    assert str(view) == text


def test_html_is_highlighted_with_inline_styles_and_escaped():
    html = show_source(window_starts)._repr_html_()
    assert "helpers/dataset.py, lines" in html
    assert 'style="color: #008000; font-weight: bold">def</span>' in html  # keyword colour
    assert "-&gt;" in html and "->" not in html.replace("-&gt;", "")  # escaped annotation arrow
    start, _ = _lines(window_starts)
    assert f'user-select: none; padding-left: 5px; padding-right: 5px;">{start}</span>' in html
    assert "<style" not in html  # no stylesheet: GitHub and Colab drop those


def test_no_absolute_paths_anywhere():
    view = show_source(GPTDatasetV1)
    root = str(Path(helpers.__file__).resolve().parent.parent)
    for shown in (repr(view), view._repr_html_(), view.path):
        assert root not in shown
        assert os.getcwd() not in shown
    assert not Path(view.path).is_absolute()


def test_class_method_and_package():
    cls = show_source(GPTDatasetV1)
    assert "class GPTDatasetV1(Dataset):" in cls.code and "def __getitem__" in cls.code
    method = show_source(GPTDatasetV1.__getitem__)
    assert method.code.startswith("def __getitem__")  # dedented
    assert method.path == "helpers/dataset.py"
    assert show_source(helpers.widgets).path == "helpers/widgets/__init__.py"
    assert show_source(helpers).start == 1


def test_objects_without_source_give_a_clear_error():
    with pytest.raises(TypeError, match="no source file"):
        show_source(len)


def test_highlight_without_line_numbers():
    html = highlight_python("x = 1 < 2\n")
    assert "&lt;" in html and "user-select" not in html
