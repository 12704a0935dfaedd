"""Shared test setup: the smoke profile and an absolute data mirror, also for notebook kernels."""

import os
from pathlib import Path

import pytest

# Tests and the notebooks they run default to the tiny profile; CI sets it explicitly too.
os.environ.setdefault("LLM_PROFILE", "smoke")

# nbval starts each notebook's kernel in notebooks/, so a relative mirror path (CI passes
# ../shared/data) must be made absolute before any kernel inherits the environment.
if os.environ.get("LLM_DATA_MIRROR"):
    os.environ["LLM_DATA_MIRROR"] = str(Path(os.environ["LLM_DATA_MIRROR"]).resolve())


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny models (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``):
    they gain nothing from a second thread, and on busy shared CI cores the threads mostly wait
    for each other, which made such tests several times (once 50x) slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def gpt2():
    """GPT-2's tokenizer (tiktoken's encoding, built from the data mirror when offline)."""
    from helpers.tokenizer import gpt2_tokenizer

    return gpt2_tokenizer()
