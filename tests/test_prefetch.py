"""helpers.prefetch: a classroom's files fetched, reported, and copied to and from a USB stick.

The stick is a temporary folder in the mirror layout, filled from the shared offline copies and a
small safetensors "GPT-2"; the hub is replaced by a fake that writes into the folder it is given.
"""

import os
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import torch
from safetensors.torch import save_file

from helpers import data, prefetch
from helpers.runtime import PROFILES
from helpers.weights import WeightsUnavailable, download_gpt2

MIRROR = os.environ.get("LLM_DATA_MIRROR")
needs_mirror = pytest.mark.skipif(not MIRROR, reason="set LLM_DATA_MIRROR to the offline copies")


def write_weights(folder: Path, n: int = 1000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"wte.weight": torch.arange(n, dtype=torch.float32).reshape(-1, 10)},
              folder / "model.safetensors")
    (folder / "config.json").write_text('{"n_embd": 10}')
    return folder


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A student's machine: an empty data folder, no mirror, offline, nothing in the hub cache."""
    monkeypatch.setenv("LLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("LLM_OFFLINE", "1")
    monkeypatch.delenv("LLM_DATA_MIRROR", raising=False)
    monkeypatch.setattr(
        huggingface_hub, "try_to_load_from_cache", lambda repo_id, filename: None
    )
    return tmp_path / "data"


@pytest.fixture
def stick(tmp_path):
    """A USB stick prepared by the teacher: every data file, GPT-2 small, a base model."""
    folder = tmp_path / "usb"
    folder.mkdir()
    if MIRROR:
        for entry in data.REGISTRY.values():
            shutil.copy(Path(MIRROR) / entry.name, folder / entry.name)
    write_weights(folder / "gpt2")
    write_weights(folder / "models" / "base-cpu", n=200)
    return folder


def test_profiles_name_the_sizes_their_notebooks_load():
    assert prefetch.gpt2_sizes_for(PROFILES["cpu"]) == ["gpt2-small (124M)"]
    assert prefetch.gpt2_sizes_for(PROFILES["gpu"]) == ["gpt2-small (124M)", "gpt2-medium (355M)"]


def test_a_cut_short_safetensors_file_is_recognised(tmp_path):
    path = write_weights(tmp_path / "w") / "model.safetensors"
    assert prefetch.safetensors_problem(path) is None
    full = path.read_bytes()
    path.write_bytes(full[:-1])
    assert "cut short" in prefetch.safetensors_problem(path)
    path.write_bytes(full[:6])
    assert "not a readable safetensors file" in prefetch.safetensors_problem(path)
    path.write_bytes(b"\xff" * 16)
    assert "header claims" in prefetch.safetensors_problem(path)


@needs_mirror
def test_everything_is_copied_from_the_stick_and_then_used_offline(machine, stick, capsys):
    assert prefetch.main(["--from", str(stick), "--profile", "cpu"]) == 0
    for entry in data.REGISTRY.values():
        assert data.is_valid(machine / entry.name, entry)
        assert data.fetch(entry.name) == machine / entry.name  # offline, from the data folder
    assert (machine / "gpt2" / "model.safetensors").read_bytes() == (
        stick / "gpt2" / "model.safetensors").read_bytes()
    assert (machine / "models" / "base-cpu" / "config.json").is_file()
    assert download_gpt2("gpt2-small (124M)") == machine / "gpt2"  # no hub, no network
    out = capsys.readouterr().out
    assert "gpt2/ (gpt2-small (124M))" in out and "data folder" in out
    assert not list(machine.rglob("*.part"))  # no temporary file left behind


@needs_mirror
def test_a_bad_copy_on_the_stick_is_refused_and_nothing_half_written(machine, stick, capsys):
    with open(stick / "the-verdict.txt", "ab") as f:
        f.write(b"!")
    weights = stick / "gpt2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    assert prefetch.main(["--from", str(stick), "--no-weights"]) == 1
    err = capsys.readouterr().err
    assert "the-verdict.txt is corrupted or incomplete" in err
    assert "model.safetensors is not usable" in err and "cut short" in err
    assert not (machine / "the-verdict.txt").exists()
    assert not (machine / "gpt2" / "model.safetensors").exists()
    assert (machine / "vocab.bpe").is_file()  # the good files were still copied


def test_missing_weights_offline_are_reported_with_their_size(machine, capsys):
    assert prefetch.main(["--profile", "gpu", "--no-weights"]) == 1  # no data files either
    capsys.readouterr()
    code = prefetch.main(["--list", "--profile", "gpu"])
    out = capsys.readouterr().out
    assert code == 0
    assert "gpt2-medium/ (gpt2-medium (355M))" in out
    assert "about 497.6 MB" in out and "about 1.4 GB" in out and "missing" in out
    with pytest.raises(WeightsUnavailable, match="LLM_OFFLINE is set"):
        prefetch.fetch_weights("gpt2-medium")


def test_weights_are_downloaded_into_the_data_folder(machine, monkeypatch):
    monkeypatch.delenv("LLM_OFFLINE")
    monkeypatch.setattr("helpers.hub.unreachable_reason", lambda: None)
    calls = []

    def fake_download(repo_id, filename, *, local_files_only=False, local_dir=None, **kwargs):
        calls.append((repo_id, filename, local_files_only, local_dir))
        if local_files_only:
            raise huggingface_hub.utils.LocalEntryNotFoundError("not cached")
        if filename == "model.safetensors":
            write_weights(Path(local_dir))
        return str(Path(local_dir) / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    assert prefetch.fetch_weights("small") == machine / "gpt2"
    assert ("openai-community/gpt2", "model.safetensors", False, str(machine / "gpt2")) in calls
    assert prefetch.weights_status("small").where == "data folder"
    calls.clear()
    assert prefetch.fetch_weights("small") == machine / "gpt2"  # already there: no hub call
    assert calls == []


def test_weights_in_the_hub_cache_are_copied_into_the_data_folder(machine, tmp_path, monkeypatch):
    cached = write_weights(tmp_path / "snapshot")
    monkeypatch.setattr(
        huggingface_hub, "try_to_load_from_cache",
        lambda repo_id, filename: str(cached / filename) if repo_id == "openai-community/gpt2" else None,
    )
    assert prefetch.weights_status("small").where == "Hugging Face cache"
    assert prefetch.fetch_weights("small") == machine / "gpt2"
    assert (machine / "gpt2" / "config.json").read_text() == '{"n_embd": 10}'


@needs_mirror
def test_export_makes_a_stick_that_works_as_a_mirror(machine, stick, tmp_path, monkeypatch):
    assert prefetch.main(["--from", str(stick), "--profile", "cpu"]) == 0
    new_stick = tmp_path / "new-usb"
    assert prefetch.main(["--profile", "cpu", "--to", str(new_stick)]) == 0
    names = {p.relative_to(new_stick).as_posix() for p in new_stick.rglob("*") if p.is_file()}
    assert set(data.REGISTRY) <= names
    assert {"gpt2/model.safetensors", "models/base-cpu/model.safetensors"} <= names
    # a fresh machine pointed at the new stick needs nothing else
    monkeypatch.setenv("LLM_DATA_DIR", str(tmp_path / "fresh"))
    monkeypatch.setenv("LLM_DATA_MIRROR", str(new_stick))
    assert data.fetch("instruction-data.json") == new_stick / "instruction-data.json"
    assert download_gpt2("small") == new_stick / "gpt2"


def test_from_a_folder_that_is_not_there(machine, tmp_path):
    with pytest.raises(data.DataError, match="is not a folder"):
        prefetch.copy_tree(tmp_path / "nothing", machine)
