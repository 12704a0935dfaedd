"""What a student sees: each notebook run in JupyterLab, in a real browser, with working widgets.

One JupyterLab server (headless, loopback only, our own token) serves *copies* of the ten
notebooks from a temporary folder, and one Chromium (Debian's, driven by Playwright) opens them
one after the other, 00 to 09, in one session: notebook 06 saves the small base model that
07-09 load. For each notebook the test runs every cell in the smoke profile and checks

- that no cell shows an error and the kernel is still alive,
- that no "Error displaying widget" / "model not found" text is anywhere on the page,
- that every widget the notebook displays is there and visible (the kinds expected below),
- that moving one control of each widget (slider, dropdown, text box, toggle or button) changes
  what the widget shows (the HTML of its output parts, before and after), and for the training
  dashboard, which has no controls, that the run filled it (curves, a "finished" badge),

and saves a PNG of the notebook's main widget in ``LLM_SCREENSHOT_DIR`` (default: a pytest
temporary folder). The README's screenshots come from
``LLM_SCREENSHOT_DIR=docs/screenshots pytest tests/test_browser.py``.

Needs ``playwright`` (the Python package only: it drives the installed Chromium through
``executable_path`` and never downloads a browser) and a ``chromium`` on PATH; without either
the test is skipped, unless ``LLM_BROWSER_TEST=require`` (CI), where that is an error.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))

SERVER_START_TIMEOUT = 120  # s until JupyterLab answers
NOTEBOOK_TIMEOUT = 600  # s to run all cells of one notebook (06: 40 s, 09: 60 s on an idle CI box)
CHANGE_TIMEOUT = 90  # s for a widget to redraw after a control moved (some run a model)
VIEWPORT = {"width": 1280, "height": 1000}

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_ERROR_TEXTS = ("Error displaying widget", "model not found")

# The top-level widgets each notebook displays, in order. Notebook 06 shows GPT-2's attention
# viewer and embedding explorer only where GPT-2's weights are available (never offline).
EXPECTED_WIDGETS = {
    "00_basic_llm_concepts": [],
    "01_tokenizing": ["token_viewer"],
    "02_data_sampling": ["window_explorer"],
    "03_token_embeddings": ["embedding_explorer"],
    "04_attention_mechanisms": ["attention_viewer"],
    "05_llm_architecture": ["architecture_explorer"],
    "06_pretraining_and_loading_models": [
        "training_dashboard",
        "sampling_playground",
        "training_dashboard",
    ],
    "07_lora": ["lora_explorer"],
    "08_finetuning_for_classification": ["spam_probe"],
    "09_finetuning_to_follow_instructions": ["training_dashboard", "instruction_chat"],
}
OPTIONAL_WIDGETS = {
    "06_pretraining_and_loading_models": [
        "training_dashboard",
        "sampling_playground",
        "attention_viewer",
        "embedding_explorer",
        "training_dashboard",
    ],
}
# The widget whose screenshot is saved for each notebook (the first of its kind on the page).
MAIN_WIDGET = {
    "01_tokenizing": "token_viewer",
    "02_data_sampling": "window_explorer",
    "03_token_embeddings": "embedding_explorer",
    "04_attention_mechanisms": "attention_viewer",
    "05_llm_architecture": "architecture_explorer",
    "06_pretraining_and_loading_models": "training_dashboard",
    "07_lora": "lora_explorer",
    "08_finetuning_for_classification": "spam_probe",
    "09_finetuning_to_follow_instructions": "instruction_chat",
}
# The README's names for three of them.
SCREENSHOT_NAMES = {
    "token_viewer": "token_viewer.png",
    "attention_viewer": "attention_viewer.png",
    "training_dashboard": "training_dashboard.png",
}


# --------------------------------------------------------------------------------------------
# What is needed, or a clear skip


def _require_or_skip(reason: str):
    if os.environ.get("LLM_BROWSER_TEST", "").strip().lower() == "require":
        pytest.fail(f"LLM_BROWSER_TEST=require, but {reason}", pytrace=False)
    pytest.skip(reason)


def _chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


# --------------------------------------------------------------------------------------------
# The JupyterLab server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")


@dataclass
class Lab:
    url: str  # http://127.0.0.1:PORT
    token: str
    root: Path  # the folder of notebook copies the server serves
    log: Path
    process: subprocess.Popen

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no server log)"


def _lab_environment(home: Path) -> dict:
    env = dict(os.environ)
    env["LLM_PROFILE"] = "smoke"
    env["LLM_OFFLINE"] = "1"
    mirror = env.get("LLM_DATA_MIRROR", "").strip()
    if mirror:  # the kernels run in the copies' folder: a relative path would point nowhere
        env["LLM_DATA_MIRROR"] = str(Path(mirror).expanduser().resolve())
    # JupyterLab's defaults, not this machine's user settings or last workspace
    env["JUPYTER_CONFIG_DIR"] = str(home / "config")
    env["JUPYTER_RUNTIME_DIR"] = str(home / "runtime")
    env["JUPYTERLAB_SETTINGS_DIR"] = str(home / "settings")
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(home / "workspaces")
    # no "get Jupyter news?" toast over the widgets in the screenshots
    _write_json(
        home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
        {"fetchNews": "false", "checkForUpdates": False},
    )
    env.pop("JUPYTER_TOKEN", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start_lab(home: Path) -> Lab:
    root = home / "notebooks"
    root.mkdir(parents=True)
    for notebook in NOTEBOOKS:
        shutil.copy2(notebook, root / notebook.name)
    token = secrets.token_hex(24)
    port = _free_port()
    command = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = home / "jupyterlab.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=_lab_environment(home),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    lab = Lab(f"http://127.0.0.1:{port}", token, root, log, process)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with code {process.returncode} before answering:\n"
                + lab.log_tail()
            )
        try:
            request = urllib.request.Request(
                f"{lab.url}/api/status", headers={"Authorization": f"token {token}"}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return lab
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            _stop_lab(lab)
            raise RuntimeError(
                f"JupyterLab did not answer within {SERVER_START_TIMEOUT} s:\n" + lab.log_tail()
            )
        time.sleep(0.5)


def _stop_lab(lab: Lab) -> None:
    """SIGTERM lets the server shut its kernels down; SIGKILL if it does not within 30 s."""
    if lab.process.poll() is not None:
        return
    lab.process.terminate()
    try:
        lab.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        lab.process.kill()
        lab.process.wait(timeout=10)


# --------------------------------------------------------------------------------------------
# Fixtures: one server, one browser, one page for all ten notebooks


@dataclass
class Session:
    lab: Lab
    page: object  # playwright.sync_api.Page
    console: list


@pytest.fixture(scope="module")
def lab_session(tmp_path_factory):
    chromium = _chromium_path()
    if chromium is None:
        _require_or_skip(
            "no Chromium to drive: install Debian's `chromium` (see .ci/browser-deps)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require_or_skip(
            "the playwright package is not installed (pip install -r requirements-test.txt)"
        )

    home = tmp_path_factory.mktemp("jupyterlab")
    lab = _start_lab(home)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True)
            try:
                context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
                page = context.new_page()
                console: list = []
                page.on(
                    "console",
                    lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None,
                )
                page.on("pageerror", lambda e: console.append(f"page error: {e}"))
                page.goto(f"{lab.url}/lab?token={lab.token}", timeout=120_000)
                page.wait_for_function("() => window.jupyterapp !== undefined", timeout=120_000)
                # the notebook as wide as the window: no file browser beside it
                page.evaluate(
                    "async () => { await window.jupyterapp.restored;"
                    " window.jupyterapp.shell.collapseLeft(); window.jupyterapp.shell.collapseRight(); }"
                )
                yield Session(lab, page, console)
            finally:
                browser.close()
    finally:
        _stop_lab(lab)


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory) -> Path:
    chosen = os.environ.get("LLM_SCREENSHOT_DIR", "").strip()
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------------------------
# JupyterLab, driven through its app object (exposed by --LabApp.expose_app_in_browser)

OPEN_NOTEBOOK_JS = """
async (path) => {
  const app = window.jupyterapp;
  const panel = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  await panel.context.ready;
  await panel.sessionContext.ready;
  app.shell.activateById(panel.id);
  window.__llmPanel = panel;
  window.__llmRun = null;
  // errors the kernel reports outside any cell, e.g. from a widget's callback
  window.__llmKernelErrors = [];
  panel.sessionContext.iopubMessage.connect((_, msg) => {
    if (msg.header.msg_type === 'error' && window.__llmPanel === panel) {
      window.__llmKernelErrors.push(`${msg.content.ename}: ${msg.content.evalue}\\n` +
                                    (msg.content.traceback || []).join("\\n"));
    }
  });
}
"""

KERNEL_READY_JS = """
() => {
  const kernel = window.__llmPanel.sessionContext.session?.kernel;
  return !!kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected';
}
"""

RUN_ALL_JS = """
() => {
  const app = window.jupyterapp;
  app.shell.activateById(window.__llmPanel.id);
  window.__llmRun = {done: false};
  app.commands.execute('notebook:run-all-cells').then(
    (result) => { window.__llmRun = {done: true, result: result}; },
    (error) => { window.__llmRun = {done: true, error: String(error)}; },
  );
}
"""

# How far the run is: code cells still without an execution count, error outputs, kernel state.
RUN_STATE_JS = """
() => {
  const panel = window.__llmPanel;
  const state = {pending: [], errors: [], cells: 0, run: window.__llmRun,
                 kernelErrors: window.__llmKernelErrors,
                 kernel: panel.sessionContext.session?.kernel?.status ?? 'none'};
  panel.content.widgets.forEach((cell, index) => {
    const model = cell.model;
    if (model.type !== 'code' || !model.sharedModel.getSource().trim()) return;
    state.cells += 1;
    if (!model.executionCount) state.pending.push(index);
    for (const output of model.outputs.toJSON()) {
      if (output.output_type === 'error') {
        state.errors.push({cell: index, ename: output.ename, evalue: output.evalue,
                           traceback: (output.traceback || []).join('\\n')});
      }
    }
  });
  return state;
}
"""

# Every widget a cell displays (the widget-view outputs of the cells' models; the views inside
# those are their parts), its output element tagged data-llm-widget="i" for the locators, with
# what identifies it: its controls' labels.
FIND_WIDGETS_JS = """
() => {
  const found = [];
  window.__llmPanel.content.widgets.forEach((cell, cellIndex) => {
    if (cell.model.type !== 'code') return;
    const outputs = cell.outputArea.model.toJSON();
    outputs.forEach((output, outputIndex) => {
      if (!output.data || !output.data['WIDGET_VIEW_MIME']) return;
      const child = cell.outputArea.widgets[outputIndex];
      const el = child && (child.node.querySelector('.jp-OutputArea-output') || child.node);
      if (!el) return;
      const i = found.length;
      el.setAttribute('data-llm-widget', String(i));
      const view = el.querySelector(':scope > .jupyter-widgets');
      const text = (sel) => [...el.querySelectorAll(sel)].map((n) => n.textContent.trim());
      found.push({
        index: i,
        cell: cellIndex,
        rendered: view !== null,
        labels: text('.widget-label, .widget-label-basic, label'),
        buttons: text('button'),
        sliders: el.querySelectorAll('.widget-slider').length,
        textareas: el.querySelectorAll('textarea').length,
        selects: el.querySelectorAll('select').length,
        html: text('.widget-html-content').join(' ').slice(0, 300),
      });
    });
  });
  return found;
}
""".replace("WIDGET_VIEW_MIME", WIDGET_VIEW_MIME)

# What a widget shows, as opposed to its controls: the HTML of its HTML and Output parts.
SHOWN_JS = """
(el) => [...el.querySelectorAll('.widget-html-content, .widget-output .jp-OutputArea')]
  .map((n) => n.innerHTML).join('\\n<!-- next part -->\\n')
"""

CLOSE_NOTEBOOK_JS = """
async () => {
  const panel = window.__llmPanel;
  if (!panel) return;
  window.__llmPanel = null;
  try { await panel.sessionContext.shutdown(); } finally { panel.dispose(); }
}
"""


def _page_text(page) -> str:
    return page.evaluate("() => document.body.textContent")


def _assert_no_widget_errors(page, when: str) -> None:
    text = _page_text(page)
    found = [t for t in WIDGET_ERROR_TEXTS if t in text]
    if found:
        where = text.find(found[0])
        raise AssertionError(
            f"{when}: the page shows {found!r}: ...{text[max(0, where - 200):where + 300]}..."
        )


def _run_all_cells(session: Session, name: str) -> dict:
    page = session.page
    page.wait_for_function(KERNEL_READY_JS, timeout=120_000, polling=250)
    page.evaluate(RUN_ALL_JS)
    deadline = time.monotonic() + NOTEBOOK_TIMEOUT
    while True:
        state = page.evaluate(RUN_STATE_JS)
        if state["errors"]:
            first = state["errors"][0]
            raise AssertionError(
                f"{name}: cell {first['cell']} shows {first['ename']}: {first['evalue']}\n"
                f"{_strip_ansi(first['traceback'])[-3000:]}"
            )
        if state["kernel"] in ("dead", "none", "unknown"):
            raise AssertionError(
                f"{name}: the kernel is {state['kernel']} with cells {state['pending']} not run\n"
                + session.lab.log_tail()
            )
        run = state["run"] or {}
        if run.get("error"):
            raise AssertionError(f"{name}: run-all-cells failed: {run['error']}")
        if run.get("done") and not state["pending"] and state["kernel"] == "idle":
            return state
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{name}: after {NOTEBOOK_TIMEOUT} s, cells {state['pending']} of "
                f"{state['cells']} have not run (kernel {state['kernel']})"
            )
        time.sleep(1)


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def _find_widgets(page, expected_count: int, wait: float = 60) -> list[dict]:
    """The top-level widget views, once as many as expected have rendered and stay put."""
    deadline = time.monotonic() + wait
    previous = None
    while True:
        widgets = page.evaluate(FIND_WIDGETS_JS)
        settled = (
            len(widgets) >= expected_count
            and all(w["rendered"] for w in widgets)
            and widgets == previous
        )
        if settled or time.monotonic() > deadline:
            return widgets
        previous = widgets
        time.sleep(1)


def _classify(widget: dict) -> str:
    """Which of helpers/widgets a rendered view is, from its controls' labels."""
    labels = set(widget["labels"])
    if "show whitespace" in labels:
        return "token_viewer"
    if {"max_length", "stride", "batch_size"} <= labels:
        return "window_explorer"
    if "neighbours of" in labels:
        return "embedding_explorer"
    if "dropout (training mode)" in labels:
        return "attention_viewer"
    if "preset" in labels and "n_layers" in labels:
        return "architecture_explorer"
    if "temperature" in labels and "seed" in labels:
        return "sampling_playground"
    if "rank r" in labels:
        return "lora_explorer"
    if any("Respond" in b for b in widget["buttons"]):
        return "instruction_chat"
    if widget["textareas"] == 1 and not widget["sliders"] and not widget["buttons"]:
        return "spam_probe"
    if not widget["sliders"] and not widget["textareas"] and "steps done" in widget["html"]:
        return "training_dashboard"
    return f"unknown widget (labels {sorted(labels)}, buttons {widget['buttons']})"


# --------------------------------------------------------------------------------------------
# Moving one control per widget


def _slider(root, description: str):
    return root.locator(".widget-slider").filter(
        has=root.page.locator(".widget-label", has_text=description)
    ).first


def _nudge_slider(root, description: str, key: str = "ArrowRight") -> str:
    slider = _slider(root, description)
    readout = slider.locator(".widget-readout")
    before = readout.inner_text()
    handle = slider.locator(".noUi-handle")
    handle.focus()
    handle.press(key)
    return f'slider "{description}" {before} -> {readout.inner_text()} ({key})'


def _set_textarea(root, index: int, text: str, blur: bool) -> str:
    box = root.locator("textarea").nth(index)
    box.fill(text)
    if blur:  # continuous_update=False: the value is sent when the box loses focus
        box.blur()
    return f"text box {index} <- {text!r}" + (" (then left the box)" if blur else "")


def _click_toggle(root, label: str) -> str:
    root.locator(".widget-toggle-button", has_text=label).first.click()
    return f'toggle button "{label}"'


def _choose(root, label: str) -> str:
    root.locator("select").first.select_option(label=label)
    return f'dropdown -> "{label}"'


def _move_token_viewer(root):
    return _set_textarea(root, 0, "Tokenizers split unbelievably long words into pieces.", False)


def _move_window_explorer(root):
    return _nudge_slider(root, "stride")


def _move_embedding_explorer(root):
    return _nudge_slider(root, "how many")


def _move_attention_viewer(root):
    return _click_toggle(root, "all heads")


def _move_architecture_explorer(root):
    return _choose(root, "gpt2-medium (355M)")


def _move_sampling_playground(root):
    return _nudge_slider(root, "temperature", "ArrowLeft")


def _move_lora_explorer(root):
    return _nudge_slider(root, "rank r")


def _move_spam_probe(root):
    return _set_textarea(root, 0, "WINNER!! Claim your free prize now, text WIN to 80082", True)


def _move_instruction_chat(root):
    done = _set_textarea(root, 0, "Name three primary colours.", False)
    root.locator("button", has_text="Respond").first.click()
    return done + ', then "Respond"'


MOVES = {
    "token_viewer": _move_token_viewer,
    "window_explorer": _move_window_explorer,
    "embedding_explorer": _move_embedding_explorer,
    "attention_viewer": _move_attention_viewer,
    "architecture_explorer": _move_architecture_explorer,
    "sampling_playground": _move_sampling_playground,
    "lora_explorer": _move_lora_explorer,
    "spam_probe": _move_spam_probe,
    "instruction_chat": _move_instruction_chat,
}


def _shown(root) -> str:
    return root.evaluate(SHOWN_JS)


def _wait_for_change(root, before: str, what: str) -> None:
    deadline = time.monotonic() + CHANGE_TIMEOUT
    while _shown(root) == before:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: the widget still shows the same after {CHANGE_TIMEOUT} s")
        time.sleep(0.25)
    # let a redraw that comes in parts (chart, then text) finish
    settled = _shown(root)
    while True:
        time.sleep(0.5)
        now = _shown(root)
        if now == settled or time.monotonic() > deadline:
            return
        settled = now


def _check_dashboard(root, what: str) -> str:
    shown = _shown(root)
    assert "finished" in shown, f"{what}: the training dashboard does not say 'finished'"
    assert "<img" in shown, f"{what}: the training dashboard shows no loss curves"
    assert "The loss curves appear after" not in shown, f"{what}: no evaluation drawn"
    return "no controls: filled during training (loss curves, 'finished')"


def _screenshot(root, path: Path) -> None:
    """A PNG of the widget alone; a widget taller than the window gets a taller window."""
    page = root.page
    height = root.bounding_box()["height"]
    grow = height + 250 > VIEWPORT["height"]
    if grow:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": int(height) + 300})
        page.wait_for_timeout(500)  # JupyterLab lays the notebook out again
    try:
        root.evaluate("(el) => el.scrollIntoView({block: 'center'})")
        page.wait_for_timeout(200)
        root.screenshot(path=str(path), animations="disabled")
    finally:
        if grow:
            page.set_viewport_size(VIEWPORT)


# --------------------------------------------------------------------------------------------
# The test


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_in_browser(lab_session: Session, screenshot_dir: Path, notebook: Path):
    name = notebook.stem
    page = lab_session.page
    lab_session.console.clear()
    started = time.monotonic()
    page.evaluate(OPEN_NOTEBOOK_JS, notebook.name)
    try:
        # as opened: the saved outputs, widgets drawn from the state saved in the notebook
        _find_widgets(page, len(EXPECTED_WIDGETS[name]), wait=20)
        _assert_no_widget_errors(page, f"{name} as opened, before running it")
        state = _run_all_cells(lab_session, name)
        ran = time.monotonic()
        expected = EXPECTED_WIDGETS[name]
        widgets = _find_widgets(page, len(expected))
        _assert_no_widget_errors(page, f"{name} after running all {state['cells']} cells")

        kinds = [_classify(w) for w in widgets]
        allowed = [expected, OPTIONAL_WIDGETS.get(name, expected)]
        assert kinds in allowed, f"{name}: expected widgets {expected}, found {kinds}"
        not_rendered = [k for k, w in zip(kinds, widgets) if not w["rendered"]]
        assert not not_rendered, f"{name}: widgets never rendered: {not_rendered}"

        report = []
        screenshot_taken = False
        for widget, kind in zip(widgets, kinds):
            what = f"{name}, cell {widget['cell']}, {kind}"
            root = page.locator(f'[data-llm-widget="{widget["index"]}"]')
            root.scroll_into_view_if_needed()
            assert root.is_visible(), f"{what}: not visible"
            box = root.bounding_box()
            assert box and box["width"] > 100 and box["height"] > 30, f"{what}: tiny: {box}"
            if kind == MAIN_WIDGET.get(name) and not screenshot_taken:
                _screenshot(root, screenshot_dir / SCREENSHOT_NAMES.get(kind, f"{name}.png"))
                screenshot_taken = True
            if kind == "training_dashboard":
                report.append(f"{kind}: {_check_dashboard(root, what)}")
                continue
            before = _shown(root)
            assert before.strip(), f"{what}: the widget shows nothing"
            moved = MOVES[kind](root)
            _wait_for_change(root, before, f"{what}, {moved}")
            report.append(f"{kind}: {moved} changed its output")
        _assert_no_widget_errors(page, f"{name} after moving the controls")
        state = page.evaluate(RUN_STATE_JS)
        assert not state["errors"], f"{name}: errors after moving the controls: {state['errors']}"
        assert not state["kernelErrors"], (
            f"{name}: the kernel reported errors: "
            + _strip_ansi("\n".join(state["kernelErrors"]))[-3000:]
        )
        if name in MAIN_WIDGET:
            assert screenshot_taken, f"{name}: no screenshot of {MAIN_WIDGET[name]}"
        print(
            f"\n{name}: cells ran in {ran - started:.0f} s, widgets checked in "
            f"{time.monotonic() - ran:.0f} s: " + ("; ".join(report) if report else "no widgets")
        )
    except Exception:
        if lab_session.console:
            print(f"\nbrowser console errors while testing {name}:")
            print("\n".join(lab_session.console[-20:]))
        raise
    finally:
        page.evaluate(CLOSE_NOTEBOOK_JS)
