"""The Colab cell, the first cell of every notebook.

In Colab it clones the project, pins Colab's own torch, ipywidgets and ipython and installs the
project editable; anywhere else it does nothing. The cheap tests run everywhere; the one that
runs the cell for real needs a fresh virtual environment that imitates Colab (the project not
installed; ipywidgets 7.7, ipython 7.34 and torch already there). ``.ci/colab-env`` builds it
and names its interpreter in ``LLM_COLAB_PYTHON``; without that variable the test is skipped.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PINNED = ("torch", "ipywidgets", "ipython")  # what the cell must leave exactly as Colab ships it
COLAB_PYTHON = os.environ.get("LLM_COLAB_PYTHON", "")

# Runs the cell the way a Colab kernel would, in one process: optionally a stand-in for the
# `google.colab` module Colab always imports, then the cell, then what a notebook does next.
DRIVER = """
import json, sys, types
cell_file, fake_colab = sys.argv[1], sys.argv[2] == "colab"
if fake_colab:
    sys.modules["google.colab"] = types.ModuleType("google.colab")
path_before = list(sys.path)
namespace = {"__name__": "__main__"}
with open(cell_file, encoding="utf-8") as f:
    exec(compile(f.read(), "<colab cell>", "exec"), namespace)
report = {
    "added_to_path": [p for p in sys.path if p not in path_before],
    "names": sorted(k for k in namespace if not k.startswith("__")),
}
if fake_colab:
    import helpers, ipywidgets, IPython, torch
    report["helpers_file"] = helpers.__file__
    report["loaded"] = {
        "torch": torch.__version__, "ipywidgets": ipywidgets.__version__,
        "ipython": IPython.__version__,
    }
print("REPORT " + json.dumps(report))
"""

VERSIONS = """
import json
from importlib.metadata import PackageNotFoundError, version
def v(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return None
print(json.dumps({name: v(name) for name in ("torch", "ipywidgets", "ipython",
                                            "llm-from-scratch-notebooks")}))
"""


def first_cell(path: Path) -> tuple[str, str]:
    cell = json.loads(path.read_text(encoding="utf-8"))["cells"][0]
    return cell["cell_type"], "".join(cell["source"])


COLAB_CELL = first_cell(NOTEBOOKS[0])[1] if NOTEBOOKS else ""


def run_cell(python: str, tmp_path: Path, env: dict, colab: bool) -> dict:
    """Run the cell in a new `python` process started in `tmp_path`; the driver's report."""
    cell_file = tmp_path / "colab_cell.py"
    cell_file.write_text(COLAB_CELL, encoding="utf-8")
    result = subprocess.run(
        [python, "-c", DRIVER, str(cell_file), "colab" if colab else "local"],
        cwd=tmp_path,  # not the repository: `helpers` must come from what the cell did
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"the cell failed:\n{result.stdout}\n{result.stderr}"
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    assert len(lines) == 1, result.stdout
    report = json.loads(lines[0][len("REPORT ") :])
    report["stdout"] = result.stdout.replace(lines[0], "").strip()
    return report


def installed(python: str, cwd: Path, env: dict) -> dict:
    out = subprocess.run(
        [python, "-c", VERSIONS], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def test_every_notebook_starts_with_the_same_colab_cell():
    """One cell in ten notebooks: testing it once (below) covers them all."""
    assert len(NOTEBOOKS) == 10
    assert 'if "google.colab" in sys.modules:' in COLAB_CELL
    for path in NOTEBOOKS:
        kind, source = first_cell(path)
        assert kind == "code", f"{path.name}: cell 0 is {kind}, not the Colab cell"
        assert source == COLAB_CELL, f"{path.name}: cell 0 differs from {NOTEBOOKS[0].name}'s"


def test_colab_cell_does_nothing_outside_colab(tmp_path):
    checkout = tmp_path / "checkout"
    env = clean_env(LLM_REPO_URL=str(tmp_path / "no-such-repo"), LLM_CHECKOUT=str(checkout))
    report = run_cell(sys.executable, tmp_path, env, colab=False)
    assert report["stdout"] == ""
    assert report["added_to_path"] == []
    assert report["names"] == ["os", "sys"]  # imported, nothing else defined
    assert not checkout.exists()


@pytest.mark.skipif(
    not COLAB_PYTHON,
    reason="set LLM_COLAB_PYTHON to the python of a Colab imitation (.ci/colab-env builds one)",
)
def test_colab_cell_installs_the_project_and_keeps_colabs_versions(tmp_path):
    python = COLAB_PYTHON
    checkout = tmp_path / "llm-from-scratch-notebooks"
    # Like Colab's https URL: a clone of this repository's committed HEAD (file:// so that
    # --depth=1 applies, as it does on GitHub).
    env = clean_env(LLM_REPO_URL=ROOT.as_uri(), LLM_CHECKOUT=str(checkout))

    before = installed(python, tmp_path, env)
    assert before["llm-from-scratch-notebooks"] is None, "the imitation must not have the project"
    assert before["ipywidgets"].startswith("7.") and before["ipython"].startswith("7."), before
    assert before["torch"], before

    report = run_cell(python, tmp_path, env, colab=True)

    # The same kernel goes on to `import helpers` from the fresh checkout ...
    assert Path(report["helpers_file"]).resolve().is_relative_to(checkout.resolve())
    assert report["added_to_path"] == [str(checkout)]
    # ... with Colab's packages untouched, both on disk and in the running process.
    after = installed(python, tmp_path, env)
    assert {k: after[k] for k in PINNED} == {k: before[k] for k in PINNED}
    assert report["loaded"] == {k: before[k] for k in PINNED}
    assert after["llm-from-scratch-notebooks"] is not None
    pins = (checkout / ".colab-pins.txt").read_text(encoding="utf-8").splitlines()
    assert pins == [f"{k}=={before[k]}" for k in PINNED]

    # A new process (a restarted runtime) finds `helpers` through the editable install.
    probe = "import helpers, helpers.widgets; print(helpers.__file__)"
    out = subprocess.run(
        [python, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).resolve().is_relative_to(checkout.resolve())
