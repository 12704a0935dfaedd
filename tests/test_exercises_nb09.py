"""Checkers of notebook 09's exercises: right answers pass; wrong, malformed and trivial ones
get feedback (never an exception, never a pass)."""

import pytest
import torch

from helpers import exercises
from helpers.instruct import IGNORE_INDEX, custom_collate_fn, format_input_phi3

MALFORMED = [None, "five", "", [], {}, float("nan"), True, lambda *a: 1 / 0, object()]


def passes(feedback) -> bool:
    return feedback.correct is True


# --- exercise 1: the Phi-3-style prompt --------------------------------------------------------

def test_phi3_reference_implementation_passes():
    assert passes(exercises.check_format_input_phi3(format_input_phi3))


def test_phi3_student_version_passes():
    def student(entry):
        text = "<|user|>\n" + entry["instruction"]
        if entry["input"]:
            text += "\n" + entry["input"]
        return text

    assert passes(exercises.check_format_input_phi3(student))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        # always adds the input line, even when it is empty
        (lambda e: f"<|user|>\n{e['instruction']}\n{e['input']}", "empty input"),
        # includes the assistant header the notebook appends itself
        (lambda e: format_input_phi3(e) + "\n<|assistant|>:\n", "prompt only"),
        # the Alpaca template instead
        (lambda e: f"### Instruction:\n{e['instruction']}", "<|user|>"),
        # no newline after the role marker
        (lambda e: f"<|user|>{e['instruction']}", "<|user|>"),
        # input and instruction swapped
        (lambda e: f"<|user|>\n{e['input']}\n{e['instruction']}" if e["input"] else format_input_phi3(e), "expected"),
        (lambda e: e, "str"),  # returns its input
        (lambda e: "", "<|user|>"),  # a constant
    ],
)
def test_phi3_wrong_versions_fail_with_a_hint(wrong, hint):
    feedback = exercises.check_format_input_phi3(wrong)
    assert feedback.correct is False
    assert hint in feedback.message


@pytest.mark.parametrize("answer", MALFORMED[1:] + [format_input_phi3({"instruction": "x", "input": ""})])
def test_phi3_malformed_answers_fail(answer):
    assert exercises.check_format_input_phi3(answer).correct is False


def test_phi3_unanswered():
    assert exercises.check_format_input_phi3(None).correct is None


# --- exercise 2: targets ignored with mask_prompt ----------------------------------------------

BATCH = [([0, 1, 2, 3, 4], 3), ([5, 6], 1), ([7, 8, 9], 2)]


def test_masked_count_matches_the_collate_function():
    _, targets = custom_collate_fn(BATCH, mask_prompt=True)
    count = int((targets == IGNORE_INDEX).sum())
    assert count == 8
    assert passes(exercises.check_masked_ignored_targets(count))
    assert passes(exercises.check_masked_ignored_targets(torch.tensor(count)))


@pytest.mark.parametrize("wrong", [5, 11, 3, 6, 0, 15, 7, 9])
def test_masked_count_wrong_answers_fail(wrong):
    assert exercises.check_masked_ignored_targets(wrong).correct is False


@pytest.mark.parametrize("answer", MALFORMED[1:] + [8.5, "8"])
def test_masked_count_malformed_answers_fail(answer):
    assert exercises.check_masked_ignored_targets(answer).correct is False
