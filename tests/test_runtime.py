import random

import pytest
import torch

from helpers import runtime


def test_profiles_exist_and_share_fields():
    assert set(runtime.PROFILES) == {"smoke", "cpu", "gpu"}
    for name, profile in runtime.PROFILES.items():
        assert profile.name == name


def test_smoke_is_the_smallest():
    smoke, cpu = runtime.PROFILES["smoke"], runtime.PROFILES["cpu"]
    assert smoke.bpe_vocab_size < cpu.bpe_vocab_size
    assert smoke.bpe_corpus_chars < cpu.bpe_corpus_chars


def test_active_profile_from_env(monkeypatch):
    monkeypatch.setenv("LLM_PROFILE", "CPU ")
    assert runtime.active_profile().name == "cpu"


def test_default_profile_follows_the_device(monkeypatch):
    monkeypatch.delenv("LLM_PROFILE", raising=False)
    monkeypatch.setenv("LLM_DEVICE", "cpu")
    assert runtime.active_profile().name == "cpu"
    monkeypatch.setenv("LLM_DEVICE", "cuda")
    assert runtime.default_profile_name() == "gpu"


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("LLM_PROFILE", "huge")
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        runtime.active_profile()


def test_device_override_and_default(monkeypatch):
    monkeypatch.setenv("LLM_DEVICE", "cpu")
    assert runtime.get_device() == torch.device("cpu")
    monkeypatch.delenv("LLM_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected:
        assert runtime.get_device().type == expected
    else:
        assert runtime.get_device().type in ("cpu", "mps")


def test_set_seed_makes_all_generators_repeat():
    import numpy as np

    runtime.set_seed(123)
    first = (random.random(), np.random.rand(), torch.rand(3))
    runtime.set_seed(123)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])


def test_seeded_tensor_matches_the_book():
    # The book's torch.manual_seed(123) example (chapter 3, the weight matrices) starts here.
    runtime.set_seed(123)
    assert torch.allclose(torch.rand(2), torch.tensor([0.2961, 0.5166]), atol=1e-4)


def test_colab_detection(monkeypatch):
    import sys
    import types

    assert runtime.in_colab() is False
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert runtime.in_colab() is True


def test_describe_names_profile_and_device(monkeypatch):
    monkeypatch.setenv("LLM_PROFILE", "smoke")
    line = runtime.describe()
    assert "profile: smoke" in line and "device:" in line


def test_profile_table_lists_every_setting():
    table = runtime.profile_table()
    assert "bpe_vocab_size" in table and "smoke" in table
