"""python -m helpers.pretrain: config from flags or JSON, exact resumption, DDP over 2 processes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.checkpoint import load_model_from_checkpoint
from helpers.pretrain import (
    PretrainConfig,
    World,
    epoch_order,
    main,
    parse_config,
    pretrain,
    process_share,
)
from helpers.train_options import TrainingOptions

ROOT = Path(__file__).resolve().parents[1]
# a model small enough for a few steps in seconds on two busy cores (GPT-2's vocabulary stays)
TINY = "--n-layers 2 --emb-dim 32 --n-heads 2 --context-length 16 --drop-rate 0".split()


def flags(output, *extra):
    return [*TINY, "--batch-size", "4", "--eval-freq", "3", "--eval-iter", "2",
            "--output", str(output), *extra]


def metrics(output) -> dict:
    return json.loads((Path(output) / "metrics.json").read_text())


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """Six steps in this process: the reference for resuming and for DDP."""
    output = tmp_path_factory.mktemp("single")
    assert main(flags(output, "--max-steps", "6")) == 0
    return output


def test_flags_and_a_json_file_give_the_same_config(tmp_path):
    from_flags = parse_config(flags("out", "--epochs", "3", "--lr", "0.001", "--bf16", "auto",
                                    "--fused-adamw", "--loss-chunk-rows", "256"))
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps({
        "model": {"n_layers": 2, "emb_dim": 32, "n_heads": 2, "context_length": 16, "drop_rate": 0},
        "batch_size": 4, "eval_freq": 3, "eval_iter": 2, "output": "out", "epochs": 3,
        "lr": 0.001, "options": {"bf16": "auto", "fused_adamw": True, "loss_chunk_rows": 256},
    }))
    from_file = parse_config(["--config", str(config_file)])
    assert from_file == from_flags
    assert from_file.model["vocab_size"] == 50257  # the rest of GPT_CONFIG_124M
    assert from_file.options == TrainingOptions(bf16="auto", fused_adamw=True, loss_chunk_rows=256)
    # flags override the file
    overridden = parse_config(["--config", str(config_file), "--n-layers", "3", "--no-sdpa"])
    assert overridden.model["n_layers"] == 3 and overridden.options.sdpa is False
    assert overridden.model["emb_dim"] == 32 and overridden.lr == 0.001
    with pytest.raises(ValueError, match=r"Unknown key in the pretrain config: .batch. \(did you mean .batch_size.\?\)"):
        PretrainConfig.from_dict({"batch": 4})


def test_every_process_trains_on_its_own_equal_share():
    order = epoch_order(20, seed=1, epoch=0)
    assert torch.equal(order, epoch_order(20, seed=1, epoch=0))
    assert not torch.equal(order, epoch_order(20, seed=1, epoch=1))
    shares = [process_share(order, 2, 8, World(rank, rank, 2)) for rank in range(2)]
    assert torch.equal(torch.cat(shares), process_share(order, 2, 8, World()))


def test_a_run_writes_its_metrics_and_a_loadable_model(single_run):
    result = metrics(single_run)
    assert len(result["train_losses"]) == result["step"] == 6
    assert result["eval_steps"] == [3, 6] and result["tokens_seen"] == 6 * 4 * 16
    model = load_model_from_checkpoint(single_run / "model")  # the book's shapes
    assert model.out_head.weight.shape == (50257, 32)


def test_a_resumed_run_continues_identically(tmp_path):
    """With dropout on and the padded, chunked loss: bit for bit the uninterrupted run."""
    extra = ["--drop-rate", "0.1", "--pad-vocab", "64", "--loss-chunk-rows", "24"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert main(flags(straight, *extra, "--max-steps", "6")) == 0
    assert main(flags(stopped, *extra, "--max-steps", "4")) == 0
    shutil.rmtree(stopped / "model")
    assert main(flags(stopped, *extra, "--max-steps", "6", "--resume")) == 0
    assert metrics(stopped)["train_losses"] == metrics(straight)["train_losses"]
    # the stopped run also evaluated at its end, step 4; every evaluation both did is equal
    runs = map(metrics, (stopped, straight))
    evaluations = [dict(zip(m["eval_steps"], m["eval_val_losses"], strict=True)) for m in runs]
    assert evaluations[0].keys() == {3, 4, 6} and evaluations[1].keys() == {3, 6}
    assert all(evaluations[0][step] == loss for step, loss in evaluations[1].items())
    resumed = load_model_from_checkpoint(stopped / "model").state_dict()
    for name, tensor in load_model_from_checkpoint(straight / "model").state_dict().items():
        assert torch.equal(resumed[name], tensor), name


def test_resuming_with_other_data_settings_is_refused(single_run, tmp_path):
    shutil.copytree(single_run / "checkpoint", tmp_path / "checkpoint")
    with pytest.raises(ValueError, match="batch_size=4"):
        pretrain(parse_config(flags(tmp_path, "--resume", "--batch-size", "2")))


def test_bad_input_says_what_to_change(tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("Far too short.")
    assert main(flags(tmp_path, "--corpus", str(short))) == 2
    assert "too short for one window of context_length=16" in capsys.readouterr().err
    config = parse_config(flags(tmp_path, "--batch-size", "5"))
    with pytest.raises(ValueError, match=r"batch_size \(5\) must be divisible .* \(2\)"):
        pretrain(config, World(rank=0, local_rank=0, size=2))
    with pytest.raises(ValueError, match="fewer than one global batch"):
        pretrain(parse_config(flags(tmp_path, "--batch-size", "4000")))


def test_two_processes_follow_the_single_process_trajectory(single_run, tmp_path):
    """DDP with gloo on CPU: 2 x (4/2) windows per step take the same steps as 1 x 4."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command = [*torchrun, "-m", "helpers.pretrain", *flags(tmp_path, "--max-steps", "6")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Done: 6 steps") == 1  # only rank 0 speaks
    distributed, single = metrics(tmp_path), metrics(single_run)
    assert distributed["world_size"] == 2
    assert distributed["train_losses"] == pytest.approx(single["train_losses"], abs=1e-5, rel=0)
    val_losses = pytest.approx(single["eval_val_losses"], abs=1e-5, rel=0)
    assert distributed["eval_val_losses"] == val_losses
    two = load_model_from_checkpoint(tmp_path / "model").state_dict()
    for name, tensor in load_model_from_checkpoint(single_run / "model").state_dict().items():
        torch.testing.assert_close(two[name], tensor, atol=1e-5, rtol=1e-4, msg=name)
