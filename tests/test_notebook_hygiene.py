"""What a reader on GitHub sees: every notebook committed from one clean, top-to-bottom run.

These read the committed .ipynb files only (nothing is executed): the Colab cell first, every
code cell run in order with its outputs saved, no errors, nothing of the author's machine.
"""

import json
import re
import textwrap
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COLAB_MARK = 'if "google.colab" in sys.modules:'

# Home folders, temporary folders, this project's machines, Windows drives: none belong in a
# saved output (paths inside the project are printed relative, e.g. data/models/base-cpu).
LOCAL_PATH = re.compile(r"(/home/|/Users/|/root/|/tmp/|/work/|/content/|/private/var/|[A-Z]:\\\\)")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb: dict) -> list[dict]:
    return [cell for cell in nb["cells"] if cell["cell_type"] == "code"]


def output_texts(cell: dict):
    for output in cell.get("outputs", []):
        if "text" in output:
            yield "".join(output["text"])
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/") or mime.endswith("json"):
                yield value if isinstance(value, str) else json.dumps(value)
        if output["output_type"] == "error":
            yield "\n".join(output.get("traceback", []))


def test_all_ten_notebooks_are_there():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(10)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_colab_cell_comes_first_and_is_the_same_everywhere(path):
    first = code_cells(load(NOTEBOOKS[0]))[0]["source"]
    cell = load(path)["cells"][0]
    assert cell["cell_type"] == "code" and COLAB_MARK in "".join(cell["source"])
    assert cell["source"] == first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_colab_cell_is_folded_away(path):
    """Students meet the lesson first, not subprocess and pip: Colab shows the cell's title as a
    form, Jupyter collapses its source."""
    cell = load(path)["cells"][0]
    assert cell["source"][0].startswith("#@title ")
    assert cell["metadata"].get("cellView") == "form"
    assert cell["metadata"].get("jupyter", {}).get("source_hidden") is True


NEXT_LINK = re.compile(r"\A\*\*Next:\*\* \[(\d\d) · [^\]]+\]\((\d\d_\w+\.ipynb)\) \S")


@pytest.mark.parametrize("path", NOTEBOOKS[:-1], ids=lambda p: p.stem)
def test_every_notebook_ends_with_a_link_to_the_next(path):
    last = load(path)["cells"][-1]
    match = NEXT_LINK.match("".join(last["source"]))
    assert last["cell_type"] == "markdown" and match, "the last cell is '**Next:** [NN · Title](file) ...'"
    number, target = match.groups()
    assert int(number) == int(path.name[:2]) + 1 and target[:2] == number
    assert (path.parent / target).is_file()
    # The Next line is the only one: no second one left inside the solutions above it.
    assert all("**Next:**" not in "".join(c["source"]) for c in load(path)["cells"][:-1])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_kernelspec_is_python3(path):
    assert load(path)["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_ran_once_in_order(path):
    counts = [cell["execution_count"] for cell in code_cells(load(path))]
    assert counts == list(range(1, len(counts) + 1)), f"execution counts {counts}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_saved_and_none_is_an_error(path):
    cells = code_cells(load(path))
    with_output = [cell for cell in cells if cell.get("outputs")]
    assert len(with_output) >= len(cells) // 2, "most code cells show something; were outputs cleared?"
    for cell in cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", "".join(cell["source"])[:200]
            if output.get("name") == "stderr":
                assert "Traceback" not in "".join(output["text"]), "".join(cell["source"])[:200]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_absolute_local_paths_in_outputs(path):
    for cell in code_cells(load(path)):
        for text in output_texts(cell):
            found = LOCAL_PATH.search(text)
            assert found is None, f"{found.group(0)!r} in the output of: {''.join(cell['source'])[:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_widget_state_has_no_local_paths(path):
    state = json.dumps(load(path)["metadata"].get("widgets", {}))
    assert LOCAL_PATH.search(state) is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_saved_widget_reads_as_text(path):
    """Where widgets cannot run (GitHub, a closed notebook) each shows its text/plain line: a
    summary of what it showed (helpers/widgets/panel.py), never ``VBox(children=...``."""
    for cell in code_cells(load(path)):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                text = "".join(data.get("text/plain", ""))
                assert text.endswith("[run to interact]") and not text.startswith(("VBox(", "HBox(")), text


# show_source's plain-text form: "helpers/model.py, lines 12–40", a blank line, the code.
SOURCE_HEADER = re.compile(r"\A(helpers/[\w/]+\.py), lines (\d+)\u2013(\d+)\n\n")


def shown_sources(nb: dict):
    """(file, first line, last line, code) of every ``show_source`` output in a notebook."""
    for cell in code_cells(nb):
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain")
            text = "".join(text) if isinstance(text, list) else text
            match = SOURCE_HEADER.match(text or "")
            if match:
                yield match.group(1), int(match.group(2)), int(match.group(3)), text[match.end():]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_shown_source_is_todays_code(path):
    """A notebook that shows helpers' code was run after that code last changed: the listing
    (and its line numbers) match the file as committed. If this fails, re-run the notebook."""
    root = Path(__file__).parent.parent
    for file, first, last, code in shown_sources(load(path)):
        lines = (root / file).read_text(encoding="utf-8").splitlines(keepends=True)
        current = textwrap.dedent("".join(lines[first - 1 : last]))
        assert code.rstrip("\n") == current.rstrip("\n"), f"{path.name} shows {file}, lines {first}-{last}, as it was before a change"
