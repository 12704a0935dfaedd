"""The book's own test files (``llms_from_scratch/tests``), run against our objects.

Each book module is seen through a shim: wherever ``helpers`` has the object, the book's name
resolves to ours (``BOOK_TO_HELPERS`` below); every other name stays the book's own object
(``GPTModelFast``, the ``kv_cache`` package, the spam download, ...). The book's tests then run
unchanged, each file in its own pytest process, because the shims replace entries of
``sys.modules`` and would otherwise leak into our other tests. Downloads come from the mirror
(``LLM_DATA_MIRROR``): ``book_suite_shims.py`` is the plugin that does both.

Skipped where the book's package is not installed (``make setup`` installs it; CI has it) or
where ``LLM_DATA_MIRROR`` is not set (CI sets it; the book's tests download otherwise).
"""

import importlib
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

llms_from_scratch = pytest.importorskip("llms_from_scratch")

BOOK_TESTS = Path(llms_from_scratch.__file__).parent / "tests"
TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent

# Book name -> our object ("module:name"). Names the book's modules only import from another
# chapter are listed too, so that every way of reaching a name gives the same object.
BOOK_TO_HELPERS = {
    "llms_from_scratch.ch02": {
        "GPTDatasetV1": "helpers.dataset:GPTDatasetV1",
        "create_dataloader_v1": "helpers.dataset:create_dataloader_v1",
    },
    "llms_from_scratch.ch03": {  # the book's PyTorchMultiHeadAttention (a bonus class) stays
        "SelfAttention_v1": "helpers.attention:SelfAttention_v1",
        "SelfAttention_v2": "helpers.attention:SelfAttention_v2",
        "CausalAttention": "helpers.attention:CausalAttention",
        "MultiHeadAttentionWrapper": "helpers.attention:MultiHeadAttentionWrapper",
        "MultiHeadAttention": "helpers.attention:MultiHeadAttention",
    },
    "llms_from_scratch.ch04": {  # the book's *Fast classes stay
        "MultiHeadAttention": "helpers.attention:MultiHeadAttention",  # imported from ch03
        "LayerNorm": "helpers.model:LayerNorm",
        "GELU": "helpers.model:GELU",
        "FeedForward": "helpers.model:FeedForward",
        "TransformerBlock": "helpers.model:TransformerBlock",
        "GPTModel": "helpers.model:GPTModel",
        "generate_text_simple": "helpers.model:generate_text_simple",
    },
    "llms_from_scratch.ch05": {  # the book's GPT-2 download and TensorFlow-checkpoint loading stay
        "generate_text_simple": "helpers.model:generate_text_simple",  # imported from ch04
        # Not called by the book's tests. Differs on purpose: a row that draws eos_id keeps it and
        # is padded with it after (the book stops before appending it, for a batch of one); top_p.
        "generate": "helpers.generate:generate",
        "train_model_simple": "helpers.train:train_model_simple",
        "evaluate_model": "helpers.train:evaluate_model",
        "generate_and_print_sample": "helpers.train:generate_and_print_sample",
        "calc_loss_batch": "helpers.train:calc_loss_batch",
        "calc_loss_loader": "helpers.train:calc_loss_loader",
        "plot_losses": "helpers.train:plot_losses",
        "text_to_token_ids": "helpers.model:text_to_token_ids",
        "token_ids_to_text": "helpers.model:token_ids_to_text",
    },
    "llms_from_scratch.ch06": {  # the book's download, balancing and splitting of the data stay
        "SpamDataset": "helpers.classify:SpamDataset",
        "calc_accuracy_loader": "helpers.classify:calc_accuracy_loader",
        # Chapter 6's loss functions share chapter 5's names; ours are named for what they do.
        "calc_loss_batch": "helpers.classify:calc_loss_batch_classifier",
        "calc_loss_loader": "helpers.classify:calc_loss_loader_classifier",
        "evaluate_model": "helpers.classify:evaluate_classifier",
        "train_classifier_simple": "helpers.classify:train_classifier_simple",
        "plot_values": "helpers.classify:plot_values",
        "classify_review": "helpers.classify:classify_review",
    },
    "llms_from_scratch.ch07": {  # the book's download, draft collates and Ollama calls stay
        "format_input": "helpers.instruct:format_input",
        "InstructionDataset": "helpers.instruct:InstructionDataset",
        "custom_collate_fn": "helpers.instruct:custom_collate_fn",
    },
    "llms_from_scratch.appendix_a": {  # the book's ToyDataset stays
        "NeuralNetwork": "helpers.concepts:SimpleNet",  # the same network under our name
    },
    "llms_from_scratch.appendix_d": {
        # The book's train_model (warmup, cosine decay, clipping always on) and
        # find_highest_gradient stay: helpers has the schedule as options of
        # training_run.train_model_resumable, a different function under a different name.
        "calc_loss_batch": "helpers.train:calc_loss_batch",  # imported from ch05
        "evaluate_model": "helpers.train:evaluate_model",  # imported from ch05
        "generate_and_print_sample": "helpers.train:generate_and_print_sample",  # from ch05
    },
    "llms_from_scratch.appendix_e": {
        # Ours scales the update by alpha / rank, the book's by alpha. test_appendix_e passes either
        # way: B starts at zero, so the first losses agree, and it checks only that the loss falls.
        "LoRALayer": "helpers.lora:LoRALayer",
        "LinearWithLoRA": "helpers.lora:LinearWithLoRA",
        "replace_linear_with_lora": "helpers.lora:replace_linear_with_lora",
    },
}

# test_appendix_d.py is not run: its one test trains with the book's own appendix-D train_model
# (helpers has none by that name) for a minute of CI, and the pieces of ours it calls (GPTModel,
# calc_loss_batch, evaluate_model, the sample) are what test_ch05 runs too.
BOOK_FILES = [
    "test_ch02.py", "test_ch03.py", "test_ch04.py", "test_ch05.py", "test_ch06.py",
    "test_ch07.py", "test_appendix_a.py", "test_appendix_e.py",
]

# Book tests that fail against ours because ours deliberately differs: (file, test) -> (why, a
# piece of the failure that must appear). Such a test is reported as xfailed only when it fails in
# exactly that way; if it passes, or fails otherwise, our test fails.
KNOWN_DIVERGENCES: dict[tuple[str, str], tuple[str, str]] = {}

# Book tests not run: (file, "test[parameters]") -> why. Passed to the book's pytest as --deselect.
NOT_RUN = {
    ("test_ch05.py", "test_train_simple[GPTModelFast]"): (
        "trains the book's own GPTModelFast (helpers has no such class) with our loop, which "
        "test_train_simple[GPTModel] already runs on our GPTModel"
    ),
}

OUTPUT_TAIL = 6000  # characters of a book test's report shown when it fails


def run_book_files(tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """Run every book test file with the shims, in one process (each start costs seconds):
    (the process, {(file, test): (outcome, seconds, report)})."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not our pyproject's options (nbval)
    report = tmp_path / "report.xml"
    env = {
        **os.environ,
        "BOOK_SUITE_SHIMS": json.dumps(BOOK_TO_HELPERS),
        "LLM_DATA_MIRROR": str(Path(os.environ["LLM_DATA_MIRROR"]).resolve()),  # cwd changes
        "LLM_OFFLINE": "1",  # the mirror (or the cache), never the network
        # this checkout's helpers, and book_suite_shims.py for -p
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO_ROOT), str(TESTS_DIR), os.environ.get("PYTHONPATH")])
        ),
        "PYTHONDONTWRITEBYTECODE": "1",  # write nothing into site-packages
        # Only the book's tests and our plugin: not nbval, hypothesis, ... (5 s of imports)
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    deselect = [f"--deselect={file}::{test}" for file, test in NOT_RUN]  # ids from --rootdir
    process = subprocess.run(
        [sys.executable, "-m", "pytest", *(str(BOOK_TESTS / name) for name in BOOK_FILES),
         *deselect, "-p", "book_suite_shims", "-p", "no:cacheprovider",
         "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(BOOK_TESTS),
         "-o", "junit_logging=all", "--junitxml", str(report), "-v"],
        cwd=tmp_path,  # test_ch02 downloads into the working directory
        env=env, capture_output=True, text=True, timeout=1800, check=False,  # outcomes: below
    )
    outcomes = {}
    if report.exists():
        for case in ET.parse(report).iter("testcase"):
            problems = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
            outcome = problems[0] if problems else "passed"
            text = "\n".join((child.text or child.get("message") or "") for child in case)
            file = case.get("classname", "").rsplit(".", 1)[-1] + ".py"  # "test_ch05" -> file
            outcomes[file, case.get("name")] = (outcome, float(case.get("time", 0)), text)
    return process, outcomes


@pytest.fixture(scope="module")
def book_run(tmp_path_factory):
    if not os.environ.get("LLM_DATA_MIRROR"):
        pytest.skip("LLM_DATA_MIRROR is not set: the book's tests would download their data")
    return run_book_files(tmp_path_factory.mktemp("book_suite"))


def test_every_test_not_run_exists():
    for file, test in NOT_RUN:
        source = (BOOK_TESTS / file).read_text(encoding="utf-8")
        assert f"def {test.split('[')[0]}(" in source, f"{file} has no {test}"


def test_every_mapped_name_exists():
    """A renamed book or helpers object shows here, not as a crash in another process."""
    from book_suite_shims import resolve

    for book_module, names in BOOK_TO_HELPERS.items():
        book = importlib.import_module(book_module)
        for name, target in names.items():
            assert hasattr(book, name), f"{book_module} has no {name}"
            resolve(target)


@pytest.mark.parametrize("name", BOOK_FILES)
def test_book_file_passes_against_helpers(name, book_run):
    process, all_outcomes = book_run
    outcomes = {test: result for (file, test), result in all_outcomes.items() if file == name}
    output = (process.stdout + process.stderr)[-OUTPUT_TAIL:]
    if not outcomes:
        pytest.fail(f"no book test of {name} ran (exit code {process.returncode}):\n{output}", pytrace=False)
    for test, (outcome, seconds, _) in outcomes.items():
        print(f"{name}::{test} {outcome} in {seconds:.1f} s")  # shown with -rP
    assert not [test for file, test in NOT_RUN if file == name and test in outcomes], "deselect failed"

    unexpected, expected = [], []
    for test, (outcome, _, report) in outcomes.items():
        why, symptom = KNOWN_DIVERGENCES.get((name, test), (None, None))
        if why is None and outcome != "passed":
            unexpected.append(f"{name}::{test} {outcome}:\n{report[-OUTPUT_TAIL:]}")
        elif why is not None and outcome == "passed":
            unexpected.append(f"{name}::{test} passes now: remove it from KNOWN_DIVERGENCES")
        elif why is not None and symptom not in report:
            unexpected.append(f"{name}::{test} {outcome}, not with {symptom!r}:\n{report[-OUTPUT_TAIL:]}")
        elif why is not None:
            expected.append(f"{name}::{test}: {why}")
    if unexpected:
        pytest.fail("\n\n".join(unexpected), pytrace=False)
    if expected:
        pytest.xfail("; ".join(expected))


def test_the_book_run_as_a_whole_passed(book_run):
    process, outcomes = book_run
    assert outcomes and process.returncode == 0, (process.stdout + process.stderr)[-OUTPUT_TAIL:]
