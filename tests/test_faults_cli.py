"""Fault injection for the commands and the settings (issue 16): every bad flag, file or
environment variable is refused up front in one line, and nothing a run did is lost.

Each probe is one parametrized case. The commands run in this process (``main([...])``) with
stderr captured; a few run as real subprocesses, to prove no traceback reaches a terminal.
Pretraining runs use a one-layer model on the-verdict: a few steps take well under a second.
"""

import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import data, prefetch, pretrain, runtime
from helpers.checkpoint import load_checkpoint, read_checkpoint_metadata
from helpers.data import SettingError, env_flag

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--n-layers", "1", "--emb-dim", "16", "--n-heads", "2", "--context-length", "8",
        "--drop-rate", "0", "--batch-size", "2", "--eval-freq", "100", "--eval-iter", "1"]
STEPS = 6


@pytest.fixture(autouse=True)
def _quiet_machine(monkeypatch):
    """One thread, the shared offline copies, and no leftover settings from the caller."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for name in ("LLM_DEVICE", "LLM_DATA_DIR", "RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLM_OFFLINE", "1")
    monkeypatch.setenv("LLM_PROFILE", "smoke")
    yield
    torch.set_num_threads(threads)


def run_command(main, argv, capsys) -> tuple[int, str]:
    """(exit code, stderr) of a command's ``main``, whether it returns or exits."""
    try:
        code = main(argv)
    except SystemExit as done:
        code = done.code
    return code, capsys.readouterr().err


def assert_one_line_error(code, err, pattern):
    assert code not in (0, None)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]


def tiny(output, *extra) -> list[str]:
    return [*TINY, "--output", str(output), *extra]


def steps_saved(output) -> int:
    return read_checkpoint_metadata(Path(output) / "checkpoint")["step"]


# ---------------------------------------------------------------------------------------------
# pretrain: flags, files and settings, each refused before any work
# ---------------------------------------------------------------------------------------------


def write(path: Path, text) -> str:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def config_file(tmp_path, content) -> list[str]:
    """(Its keys must not be among TINY's flags, which override the file.)"""
    return ["--config", write(tmp_path / "run.json", json.dumps(content))]


PRETRAIN_PROBES = {
    "batch-size -4": (lambda t: ["--batch-size", "-4"], r"--batch-size: batch_size must be at least 1"),
    "batch-size 0": (lambda t: ["--batch-size", "0"], r"batch_size must be at least 1"),
    "batch-size abc": (lambda t: ["--batch-size", "abc"], r"--batch-size: invalid int value"),
    "batch-size 2.5": (lambda t: ["--batch-size", "2.5"], r"invalid int value: '2.5'"),
    "batch-size larger than the corpus": (lambda t: ["--batch-size", "4000"], r"fewer than one global batch"),
    "max-steps -1": (lambda t: ["--max-steps", "-1"], r"max_steps must be at least 1"),
    "max-steps 0": (lambda t: ["--max-steps", "0"], r"max_steps must be at least 1"),
    "epochs 0": (lambda t: ["--epochs", "0"], r"epochs must be at least 1"),
    "train-ratio -0.5": (lambda t: ["--train-ratio", "-0.5"], r"train_ratio must be in \(0, 1\)"),
    "train-ratio 1": (lambda t: ["--train-ratio", "1"], r"train_ratio must be in \(0, 1\)"),
    "train-ratio nan": (lambda t: ["--train-ratio", "nan"], r"train_ratio must be a finite number"),
    "train-ratio 0.999 leaves no validation": (lambda t: ["--train-ratio", "0.999"], r"validation part .* too short"),
    "eval-freq 0": (lambda t: ["--eval-freq", "0"], r"eval_freq must be at least 1"),
    "eval-iter 0": (lambda t: ["--eval-iter", "0"], r"eval_iter must be at least 1"),
    "checkpoint-every 0": (lambda t: ["--checkpoint-every", "0"], r"checkpoint_every must be at least 1"),
    "seed -1": (lambda t: ["--seed", "-1"], r"seed must be at least 0"),
    "lr 0": (lambda t: ["--lr", "0"], r"lr must be in \(0, inf\]"),
    "lr inf": (lambda t: ["--lr", "inf"], r"lr must be a finite number"),
    "weight-decay -0.1": (lambda t: ["--weight-decay", "-0.1"], r"weight_decay must be in \[0, inf\]"),
    "drop-rate 1": (lambda t: ["--drop-rate", "1"], r"drop_rate must be in \[0, 1\)"),
    "n-heads 0": (lambda t: ["--n-heads", "0"], r"n_heads must be at least 1"),
    "emb-dim not divisible by n-heads": (lambda t: ["--emb-dim", "15"], r"divisible by n_heads"),
    "pad-vocab 0": (lambda t: ["--pad-vocab", "0"], r"pad_vocab_multiple must be at least 1"),
    "loss-chunk-rows -1": (lambda t: ["--loss-chunk-rows", "-1"], r"loss_chunk_rows must be at least 1"),
    "bf16 maybe": (lambda t: ["--bf16", "maybe"], r"--bf16: invalid choice"),
    "unknown flag": (lambda t: ["--batchsize", "4"], r"unrecognized arguments: --batchsize"),
    "corpus missing": (lambda t: ["--corpus", str(t / "nope.txt")], r"neither a text file .* nor a registry name"),
    "corpus misspelt": (lambda t: ["--corpus", "the-verdit.txt"], r"did you mean 'the-verdict.txt'"),
    "corpus is a folder": (lambda t: ["--corpus", str(t)], r"--corpus .* is a folder"),
    "corpus not UTF-8": (lambda t: ["--corpus", write(t / "latin.txt", "caf\xe9 ".encode("latin-1") * 999)],
                         r"not UTF-8 text"),
    "corpus too short": (lambda t: ["--corpus", write(t / "short.txt", "Far too short.")], r"too short"),
    "config missing": (lambda t: ["--config", str(t / "run.json")], r"--config .*run.json does not exist"),
    "config is a folder": (lambda t: ["--config", str(t)], r"--config .* is a folder"),
    "config not JSON": (lambda t: ["--config", write(t / "run.json", '{"lr": 0.1,}')], r"not valid JSON: .* line 1"),
    "config a list": (lambda t: config_file(t, [1, 2]), r"must hold a JSON object"),
    "config key misspelt": (lambda t: config_file(t, {"batchsize": 4}), r"'batchsize' \(did you mean 'batch_size'\?\)"),
    "config model key misspelt": (lambda t: config_file(t, {"model": {"n_layer": 1}}), r"did you mean 'n_layers'"),
    "config option misspelt": (lambda t: config_file(t, {"options": {"fused_adam": True}}), r"did you mean 'fused_adamw'"),
    "config lr as text": (lambda t: config_file(t, {"lr": "0.1"}), r"lr in --config .* must be a finite number, got '0.1'"),
    "config qkv_bias 'False'": (lambda t: config_file(t, {"model": {"qkv_bias": "False"}}), r"qkv_bias .* must be true or false"),
    "config epochs null": (lambda t: config_file(t, {"epochs": None}), r"epochs .* must be a whole number, got None"),
    "config seed true": (lambda t: config_file(t, {"seed": True}), r"seed .* must be a whole number, got True"),
    "config model null": (lambda t: config_file(t, {"model": None}), r"'model' .* must be an object"),
    "config sdpa 'yes'": (lambda t: config_file(t, {"options": {"sdpa": "yes"}}), r"options.sdpa .* true or false"),
    "config bf16 1": (lambda t: config_file(t, {"options": {"bf16": 1}}), r"bf16 .* must be false, true or \"auto\""),
    "config resume 'no'": (lambda t: config_file(t, {"resume": "no"}), r"resume .* must be true or false"),
    "config corpus empty": (lambda t: config_file(t, {"corpus": " "}), r"corpus .* non-empty"),
    "output under a file": (lambda t: ["--output", str(Path(write(t / "afile", "x")) / "run")], r"--output: cannot write .* is a file"),
    "output is a file": (lambda t: ["--output", write(t / "afile", "x")], r"--output: cannot write .*afile is a file"),
    "device gpu": (lambda t: ["--device", "gpu"], r"--device='gpu' is not a device; use cpu, cuda"),
    "device cuda:99": (lambda t: ["--device", "cuda:99"], r"--device='cuda:99': this machine has"),
    "device meta": (lambda t: ["--device", "meta"], r"is not a device"),
}


@pytest.mark.parametrize("probe", PRETRAIN_PROBES, ids=list(PRETRAIN_PROBES))
def test_pretrain_refuses_bad_input_in_one_line(probe, tmp_path, capsys):
    make_flags, pattern = PRETRAIN_PROBES[probe]
    output = tmp_path / "out"
    code, err = run_command(pretrain.main, tiny(output, "--max-steps", "2", *make_flags(tmp_path)), capsys)
    assert_one_line_error(code, err, pattern)
    assert not (output / "checkpoint").exists()  # refused before the first step


ENV_PROBES = {
    "LLM_DEVICE gpu": ("LLM_DEVICE", "gpu", r"LLM_DEVICE='gpu' is not a device; use cpu"),
    "LLM_DEVICE cuda:99": ("LLM_DEVICE", "cuda:99", r"LLM_DEVICE='cuda:99': this machine has"),
    "LLM_PROFILE bogus": ("LLM_PROFILE", "bogus", r"LLM_PROFILE='bogus' is not a profile; use one of smoke, cpu, gpu"),
    "LLM_OFFLINE maybe": ("LLM_OFFLINE", "maybe", r"LLM_OFFLINE='maybe' is not a yes/no value; use one of 1, true"),
    "LLM_DATA_DIR under a file": ("LLM_DATA_DIR", "{afile}/data", r"LLM_DATA_DIR=.* because .*afile is a file"),
    "LLM_DATA_MIRROR missing": ("LLM_DATA_MIRROR", "{tmp}/no-stick", r"LLM_DATA_MIRROR=.*no-stick' does not exist"),
    "LLM_DATA_MIRROR a file": ("LLM_DATA_MIRROR", "{afile}", r"LLM_DATA_MIRROR=.* is a file"),
}


def set_env(monkeypatch, tmp_path, name, value):
    afile = write(tmp_path / "afile", "x")
    monkeypatch.setenv(name, value.format(afile=afile, tmp=tmp_path))


# helpers.data reads only the data settings: the device and the profile are not its business
ENV_CASES = [(probe, command) for probe in ENV_PROBES for command in ("pretrain", "prefetch", "data")
             if command != "data" or ENV_PROBES[probe][0] not in ("LLM_DEVICE", "LLM_PROFILE")]


@pytest.mark.parametrize("probe, command", ENV_CASES, ids=[f"{c} with {p}" for p, c in ENV_CASES])
def test_every_command_refuses_a_bad_setting_naming_it(probe, command, tmp_path, monkeypatch, capsys):
    name, value, pattern = ENV_PROBES[probe]
    set_env(monkeypatch, tmp_path, name, value)
    argv = {"pretrain": tiny(tmp_path / "out", "--max-steps", "1"), "prefetch": ["--list"],
            "data": ["list"]}[command]
    main = {"pretrain": pretrain.main, "prefetch": prefetch.main, "data": data.main}[command]
    assert_one_line_error(*run_command(main, argv, capsys), pattern)


def test_pretrain_says_when_the_corpus_cannot_be_had_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LLM_DATA_MIRROR", raising=False)
    monkeypatch.setenv("LLM_DATA_DIR", str(tmp_path / "empty"))
    code, err = run_command(pretrain.main, tiny(tmp_path / "out", "--corpus", "tinyshakespeare.txt"), capsys)
    assert_one_line_error(code, err, r"Could not download tinyshakespeare.txt .*LLM_OFFLINE is set")


def test_pretrain_refuses_bad_torchrun_variables(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("RANK", "first")
    code, err = run_command(pretrain.main, tiny(tmp_path), capsys)
    assert_one_line_error(code, err, r"RANK='first' is not a whole number; torchrun sets it")


# ---------------------------------------------------------------------------------------------
# prefetch and data: folders and names
# ---------------------------------------------------------------------------------------------

PREFETCH_PROBES = {
    "from a missing folder": (lambda t: ["--from", str(t / "no-stick")], r"--from .*no-stick does not exist"),
    "from a file": (lambda t: ["--from", write(t / "afile", "x")], r"--from .*afile is a file"),
    "to a file": (lambda t: ["--to", write(t / "afile", "x")], r"--to: cannot write .*afile is a file"),
    "to under a file": (lambda t: ["--to", str(Path(write(t / "afile", "x")) / "usb")], r"--to: cannot write"),
    "profile bogus": (lambda t: ["--profile", "bogus"], r"--profile: invalid choice: 'bogus'"),
    "unknown flag": (lambda t: ["--form", str(t)], r"unrecognized arguments: --form"),
}


@pytest.mark.parametrize("probe", PREFETCH_PROBES, ids=list(PREFETCH_PROBES))
def test_prefetch_refuses_bad_folders_before_fetching(probe, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLM_DATA_DIR", str(tmp_path / "data"))
    make_flags, pattern = PREFETCH_PROBES[probe]
    assert_one_line_error(*run_command(prefetch.main, make_flags(tmp_path), capsys), pattern)
    assert not any((tmp_path / "data").iterdir()) if (tmp_path / "data").exists() else True


DATA_PROBES = {
    "fetch a misspelt name": (["fetch", "the-verdit.txt"], r"did you mean 'the-verdict.txt'"),
    "fetch nothing": (["fetch"], r"name files to fetch, or use --all"),
    "no command": ([], r"required: command"),
}


@pytest.mark.parametrize("probe", DATA_PROBES, ids=list(DATA_PROBES))
def test_data_command_refuses_bad_names(probe, capsys):
    argv, pattern = DATA_PROBES[probe]
    assert_one_line_error(*run_command(data.main, argv, capsys), pattern)


# ---------------------------------------------------------------------------------------------
# The settings from Python: one boolean parser, and errors that name the variable
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("1", True), ("true", True), ("YES", True), (" on ", True),
    ("", False), ("0", False), ("false", False), ("No", False), ("off", False),
])
def test_one_parser_reads_every_yes_no_setting(value, expected, monkeypatch):
    monkeypatch.setenv("LLM_OFFLINE", value)
    assert env_flag("LLM_OFFLINE") is expected


@pytest.mark.parametrize("value", ["maybe", "2", "ture", "offline"])
def test_a_yes_no_setting_refuses_other_words(value, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    with pytest.raises(SettingError, match=r"HF_HUB_OFFLINE=.* is not a yes/no value"):
        env_flag("HF_HUB_OFFLINE")


def test_offline_false_means_online_for_weights_too(tmp_path, monkeypatch):
    """LLM_OFFLINE=false: data and weights read it alike; a bad word is refused by both."""
    from helpers.weights import download_gpt2

    monkeypatch.setenv("LLM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("LLM_DATA_MIRROR", raising=False)
    monkeypatch.setenv("LLM_OFFLINE", "maybe")
    with pytest.raises(SettingError, match="LLM_OFFLINE='maybe'"):
        download_gpt2("small")
    with pytest.raises(SettingError, match="LLM_OFFLINE='maybe'"):
        data.fetch("the-verdict.txt")


PYTHON_PROBES = {
    "get_device with LLM_DEVICE gpu": ("LLM_DEVICE", "gpu", runtime.get_device, r"LLM_DEVICE='gpu'"),
    "active_profile with LLM_PROFILE bogus": ("LLM_PROFILE", "bogus", runtime.active_profile, r"LLM_PROFILE='bogus'"),
    "describe with LLM_OFFLINE maybe": ("LLM_OFFLINE", "maybe", runtime.describe, r"LLM_OFFLINE='maybe'"),
    "cache_dir with LLM_DATA_DIR under a file": ("LLM_DATA_DIR", "{afile}/d", data.cache_dir, r"LLM_DATA_DIR="),
    "mirror_dir with a missing mirror": ("LLM_DATA_MIRROR", "{tmp}/none", data.mirror_dir, r"LLM_DATA_MIRROR="),
    "check_settings with LLM_DEVICE cuda:99": ("LLM_DEVICE", "cuda:99", runtime.check_settings, r"LLM_DEVICE="),
}


@pytest.mark.parametrize("probe", PYTHON_PROBES, ids=list(PYTHON_PROBES))
def test_settings_errors_name_the_variable_from_python(probe, tmp_path, monkeypatch):
    name, value, call, pattern = PYTHON_PROBES[probe]
    set_env(monkeypatch, tmp_path, name, value)
    with pytest.raises(SettingError, match=pattern):
        call()


# ---------------------------------------------------------------------------------------------
# Nothing a run did is lost: Ctrl-C, a NaN loss, a full disk
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """The uninterrupted run that interrupted-then-resumed runs must reproduce."""
    output = tmp_path_factory.mktemp("straight")
    assert pretrain.main(tiny(output, "--max-steps", str(STEPS))) == 0
    return json.loads((output / "metrics.json").read_text())


def interrupt_at(monkeypatch, step_to_stop: int):
    """Ctrl-C as the training step ``step_to_stop`` starts (as if pressed in the forward pass)."""
    original = pretrain.PretrainRun.train_step

    def train_step(self, inputs, targets, step):
        if step == step_to_stop:
            raise KeyboardInterrupt
        return original(self, inputs, targets, step)

    monkeypatch.setattr(pretrain.PretrainRun, "train_step", train_step)


@pytest.mark.parametrize("stop", [1, 4], ids=["Ctrl-C at step 1", "Ctrl-C at step 4"])
def test_ctrl_c_saves_the_steps_done_and_says_how_to_resume(stop, straight_run, tmp_path, monkeypatch, capsys):
    argv = tiny(tmp_path, "--max-steps", str(STEPS))
    with monkeypatch.context() as patch:
        interrupt_at(patch, stop)
        code, err = run_command(pretrain.main, argv, capsys)
    assert code == 130 and "Traceback" not in err
    assert f"holds step {stop}" in err and err.rstrip().endswith("--resume")
    assert steps_saved(tmp_path) == stop
    assert pretrain.main([*argv, "--resume"]) == 0
    resumed = json.loads((tmp_path / "metrics.json").read_text())
    assert resumed["train_losses"] == pytest.approx(straight_run["train_losses"], abs=1e-6)


def test_ctrl_c_before_the_first_step_says_nothing_was_saved(tmp_path, monkeypatch, capsys):
    interrupt_at(monkeypatch, 0)
    code, err = run_command(pretrain.main, tiny(tmp_path, "--max-steps", "2"), capsys)
    assert code == 130 and "nothing was saved" in err and "Traceback" not in err


def test_ctrl_c_during_the_optimizer_step_waits_for_it(straight_run, tmp_path, monkeypatch, capsys):
    """A real SIGINT in the middle of a step: the step and its counters finish, then it stops."""
    real_make = pretrain.make_optimizer

    def make_optimizer(*args, **kwargs):
        optimizer = real_make(*args, **kwargs)
        real_step, calls = optimizer.step, []

        def step(*a, **k):
            calls.append(1)
            if len(calls) == 3:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C arrives half-way through
            return real_step(*a, **k)

        optimizer.step = step
        return optimizer

    monkeypatch.setattr(pretrain, "make_optimizer", make_optimizer)
    argv = tiny(tmp_path, "--max-steps", str(STEPS))
    code, err = run_command(pretrain.main, argv, capsys)
    assert code == 130 and steps_saved(tmp_path) == 3 and "holds step 3" in err
    monkeypatch.setattr(pretrain, "make_optimizer", real_make)
    assert pretrain.main([*argv, "--resume"]) == 0
    resumed = json.loads((tmp_path / "metrics.json").read_text())
    assert resumed["train_losses"] == pytest.approx(straight_run["train_losses"], abs=1e-6)


@pytest.mark.parametrize("how", ["SIGINT during the save", "KeyboardInterrupt inside the save"])
def test_ctrl_c_during_the_final_save_keeps_a_checkpoint(how, tmp_path, monkeypatch, capsys):
    real_save, calls = pretrain.save_checkpoint, []

    def save(*args, **kwargs):
        calls.append(1)
        if how.startswith("SIGINT") and len(calls) == 1:
            signal.raise_signal(signal.SIGINT)  # deferred: the save finishes first
        elif len(calls) == 1:
            raise KeyboardInterrupt  # as if nothing was written: the run must save again
        return real_save(*args, **kwargs)

    monkeypatch.setattr(pretrain, "save_checkpoint", save)
    code, err = run_command(pretrain.main, tiny(tmp_path, "--max-steps", "3"), capsys)
    assert code == 130 and steps_saved(tmp_path) == 3 and "holds step 3" in err
    monkeypatch.setattr(pretrain, "save_checkpoint", real_save)
    assert pretrain.main(tiny(tmp_path, "--max-steps", "3", "--resume")) == 0
    assert (tmp_path / "model" / "checkpoint.json").is_file()


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_step(tmp_path, monkeypatch, capsys):
    real_loss = pretrain.TrainingLoss

    class NaNAtThirdStep(real_loss):
        calls = 0

        def __call__(self, inputs, targets):
            NaNAtThirdStep.calls += 1
            loss = super().__call__(inputs, targets)
            return loss * float("nan") if NaNAtThirdStep.calls == 3 else loss

    monkeypatch.setattr(pretrain, "TrainingLoss", NaNAtThirdStep)
    code, err = run_command(pretrain.main, tiny(tmp_path, "--max-steps", str(STEPS)), capsys)
    assert_one_line_error(code, err, r"outputs are NaN \(diverged training\?\).* keeps step 2.* Lower --lr")
    model = pretrain.GPTModel(pretrain.parse_config(tiny(tmp_path)).model)
    load_checkpoint(tmp_path / "checkpoint", model)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    losses = read_checkpoint_metadata(tmp_path / "checkpoint")["training"]["train_losses"]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)


def test_a_full_disk_at_the_end_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    real_save = pretrain.save_checkpoint

    def save(path, *args, step=None, **kwargs):
        if step == 4:
            raise OSError(28, "No space left on device", str(path))
        return real_save(path, *args, step=step, **kwargs)

    monkeypatch.setattr(pretrain, "save_checkpoint", save)
    argv = tiny(tmp_path, "--max-steps", "4", "--checkpoint-every", "2")
    code, err = run_command(pretrain.main, argv, capsys)
    assert code == 2 and "No space left on device" in err and "Traceback" not in err
    assert steps_saved(tmp_path) == 2  # the checkpoint before the failure, whole and loadable


def test_a_bug_after_some_steps_still_leaves_a_checkpoint(tmp_path, monkeypatch):
    def broken_evaluate(self):
        raise RuntimeError("a bug in evaluation")

    monkeypatch.setattr(pretrain.PretrainRun, "evaluate", broken_evaluate)
    with pytest.raises(RuntimeError, match="a bug in evaluation"):  # a bug may show a traceback
        pretrain.main(tiny(tmp_path, "--max-steps", "3", "--eval-freq", "2"))
    assert steps_saved(tmp_path) == 2


def test_a_corrupt_checkpoint_on_resume_is_one_line(tmp_path, capsys):
    (tmp_path / "checkpoint").mkdir()
    write(tmp_path / "checkpoint" / "checkpoint.json", "{ not json")
    code, err = run_command(pretrain.main, tiny(tmp_path, "--max-steps", "2", "--resume"), capsys)
    assert_one_line_error(code, err, r"checkpoint")


def interrupted_between_renames(output):
    """What a save cut off between its two renames leaves: only ``checkpoint.old``."""
    (output / "checkpoint").rename(output / "checkpoint.old")


def test_resume_finds_the_checkpoint_a_cut_off_save_left(straight_run, tmp_path, capsys):
    argv = tiny(tmp_path, "--max-steps", str(STEPS))
    assert pretrain.main([*argv[:-2], "--max-steps", "3"]) == 0
    interrupted_between_renames(tmp_path)
    assert pretrain.main([*argv, "--resume"]) == 0
    assert "resuming from" in capsys.readouterr().out
    resumed = json.loads((tmp_path / "metrics.json").read_text())
    assert resumed["train_losses"] == pytest.approx(straight_run["train_losses"], abs=1e-6)


def test_a_new_run_will_not_overwrite_the_only_complete_checkpoint(tmp_path, capsys):
    assert pretrain.main(tiny(tmp_path, "--max-steps", "2")) == 0
    interrupted_between_renames(tmp_path)
    code, err = run_command(pretrain.main, tiny(tmp_path, "--max-steps", "2"), capsys)
    assert_one_line_error(code, err, r"already holds the checkpoint of an earlier run: add --resume")
    assert read_checkpoint_metadata(tmp_path / "checkpoint.old")["step"] == 2


@pytest.mark.parametrize("training", [None, {"step": 2}, "hostile"], ids=lambda t: f"training={t!r}")
def test_a_checkpoint_without_pretrain_progress_is_one_line(training, tmp_path, capsys):
    assert pretrain.main(tiny(tmp_path, "--max-steps", "2")) == 0
    meta_path = tmp_path / "checkpoint" / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta["training"] = training if training != "hostile" else {**meta["training"], "step": "2"}
    meta_path.write_text(json.dumps(meta))
    code, err = run_command(pretrain.main, tiny(tmp_path, "--max-steps", "4", "--resume"), capsys)
    assert_one_line_error(code, err, r"checkpoint at .* (holds no pretrain progress|has a broken step)")


# ---------------------------------------------------------------------------------------------
# Real terminals: no traceback reaches them
# ---------------------------------------------------------------------------------------------

SUBPROCESS_PROBES = {
    "pretrain --batch-size -4": (["helpers.pretrain", "--batch-size", "-4"], {}, r"batch_size must be at least 1"),
    "data list with LLM_OFFLINE maybe": (["helpers.data", "list"], {"LLM_OFFLINE": "maybe"}, r"LLM_OFFLINE='maybe'"),
}


@pytest.mark.parametrize("probe", SUBPROCESS_PROBES, ids=list(SUBPROCESS_PROBES))
def test_no_traceback_reaches_the_terminal(probe, tmp_path):
    module, env, pattern = SUBPROCESS_PROBES[probe]
    done = subprocess.run(
        [sys.executable, "-m", *module], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env},
    )
    assert_one_line_error(done.returncode, done.stderr, pattern)
