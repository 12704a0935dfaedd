"""helpers.checkpoint: safetensors + JSON round trips, clear errors, atomic saves, and exact
resumption of ``train_model_simple`` after a checkpoint or a stop (KeyboardInterrupt)."""

import json
import os
import shutil
import signal

import pytest
import torch

import helpers.checkpoint as checkpoint_module
from helpers.checkpoint import (
    CheckpointError,
    capture_rng_states,
    gpt_config_of,
    load_checkpoint,
    load_model_from_checkpoint,
    restore_rng_states,
    save_checkpoint,
    split_shared_tensors,
)
from helpers.dataset import create_dataloader_v1
from helpers.model import GPTModel
from helpers.training_run import train_model_resumable

TEXT = (
    "Every effort moves you forward. "
    "I had always thought Jack Gisburn rather a cheap genius. "
    "The sun set slowly over the quiet town. "
) * 6
CHARS = sorted(set(TEXT))
CONFIG = {
    "vocab_size": len(CHARS),
    "context_length": 16,
    "emb_dim": 32,
    "n_heads": 2,
    "n_layers": 2,
    "drop_rate": 0.2,  # dropout on: resuming must also restore the random numbers
    "qkv_bias": False,
}
EPOCHS, EVAL_FREQ = 2, 3


class CharTokenizer:
    def encode(self, text, allowed_special=None):
        return [CHARS.index(ch) for ch in text]

    def decode(self, ids):
        return "".join(CHARS[i] for i in ids)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def make_loaders():
    split, tokenizer = int(0.85 * len(TEXT)), CharTokenizer()
    train = create_dataloader_v1(TEXT[:split], 4, 16, 16, shuffle=True, tokenizer=tokenizer)
    val = create_dataloader_v1(
        TEXT[split:], 4, 16, 16, shuffle=False, drop_last=False, tokenizer=tokenizer
    )
    return train, val


def make_model(seed=123, config=CONFIG):
    torch.manual_seed(seed)
    model = GPTModel(config)
    return model, torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=0.1)


def train(model, optimizer, loaders, num_epochs=EPOCHS, **options):
    return train_model_resumable(
        model,
        *loaders,
        optimizer,
        "cpu",
        num_epochs=num_epochs,
        eval_freq=EVAL_FREQ,
        eval_iter=2,
        start_context="Every",
        tokenizer=CharTokenizer(),
        progress=False,
        **options,
    )


def trained_model(steps=3):
    model, optimizer = make_model()
    train_loader, _ = make_loaders()
    for step, (x, y) in zip(range(steps), train_loader, strict=False):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
        optimizer.step()
    return model, optimizer


def assert_same_weights(a, b):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


# --- round trips --------------------------------------------------------------------------------


def test_round_trip_of_model_and_optimizer(tmp_path):
    model, optimizer = trained_model()
    path = save_checkpoint(tmp_path / "ckpt", model, optimizer, step=2, epoch=0, extra={"a": 1})
    assert sorted(p.name for p in path.iterdir()) == [
        "checkpoint.json",
        "model.safetensors",
        "optimizer.safetensors",
    ]
    meta = json.loads((path / "checkpoint.json").read_text())
    assert meta["step"] == 2 and meta["config"] == CONFIG and meta["extra"] == {"a": 1}
    assert meta["optimizer"]["class"] == "AdamW"
    assert meta["optimizer"]["param_groups"][0]["betas"] == [0.9, 0.999]

    copy, copy_optimizer = make_model(seed=7)
    loaded = load_checkpoint(path, copy, copy_optimizer)
    assert loaded["step"] == 2 and loaded["rng_states"] == {}
    assert_same_weights(model, copy)
    original, restored = optimizer.state_dict(), copy_optimizer.state_dict()
    assert restored["param_groups"] == original["param_groups"]  # betas is a tuple again
    for index, state in original["state"].items():
        for key, value in state.items():
            assert torch.equal(restored["state"][index][key], value), (index, key)


def test_optimizer_tensors_are_flat_named(tmp_path):
    from safetensors.torch import load_file

    model, optimizer = trained_model(steps=1)
    save_checkpoint(tmp_path / "ckpt", model, optimizer)
    names = load_file(str(tmp_path / "ckpt" / "optimizer.safetensors"))
    assert {"state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq"} <= set(names)


def test_load_model_from_checkpoint(tmp_path):
    model, _ = trained_model()
    assert gpt_config_of(model) == CONFIG
    save_checkpoint(tmp_path / "ckpt", model)
    rebuilt = load_model_from_checkpoint(tmp_path / "ckpt")
    assert isinstance(rebuilt, GPTModel) and not rebuilt.training
    assert_same_weights(model, rebuilt)


def test_tied_weights_are_stored_once_and_tied_again(tmp_path):
    model, _ = make_model()
    model.out_head.weight = model.tok_emb.weight  # GPT-2's weight tying
    tensors, aliases = split_shared_tensors(model.state_dict())
    assert aliases == {"out_head.weight": "tok_emb.weight"} and "out_head.weight" not in tensors
    save_checkpoint(tmp_path / "tied", model)

    tied, _ = make_model(seed=5)
    tied.out_head.weight = tied.tok_emb.weight
    load_checkpoint(tmp_path / "tied", tied)
    assert tied.out_head.weight is tied.tok_emb.weight  # still one tensor
    assert torch.equal(tied.tok_emb.weight, model.tok_emb.weight)
    rebuilt = load_model_from_checkpoint(tmp_path / "tied")  # tied again, as it was saved
    assert rebuilt.out_head.weight is rebuilt.tok_emb.weight
    assert torch.equal(rebuilt.tok_emb.weight, model.tok_emb.weight)
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in model.parameters())
    untied = load_model_from_checkpoint(save_checkpoint(tmp_path / "own", make_model()[0]))
    assert untied.out_head.weight is not untied.tok_emb.weight  # a model saved untied stays so


def test_partly_overlapping_tensors_get_their_own_copy():
    base = torch.arange(10.0)
    tensors, aliases = split_shared_tensors({"all": base, "half": base[:5]})
    assert aliases == {} and torch.equal(tensors["half"], torch.arange(5.0))
    assert tensors["half"].untyped_storage().data_ptr() != base.untyped_storage().data_ptr()


def test_rng_states_round_trip():
    torch.manual_seed(1)
    states = capture_rng_states()
    expected = torch.rand(3)
    torch.rand(100)
    restore_rng_states(states)
    assert torch.equal(torch.rand(3), expected)


# --- errors -------------------------------------------------------------------------------------


def test_shape_mismatch_names_the_tensors_and_the_config(tmp_path):
    model, _ = make_model()
    save_checkpoint(tmp_path / "ckpt", model)
    wider, _ = make_model(config={**CONFIG, "emb_dim": 64})
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(tmp_path / "ckpt", wider)
    message = str(error.value)
    vocab = len(CHARS)
    assert f"tok_emb.weight: checkpoint ({vocab}, 32), model ({vocab}, 64)" in message
    assert "'emb_dim': 32" in message and "load_model_from_checkpoint" in message
    deeper, _ = make_model(config={**CONFIG, "n_layers": 3})
    with pytest.raises(CheckpointError, match="missing from the checkpoint: trf_blocks.2"):
        load_checkpoint(tmp_path / "ckpt", deeper)


def test_missing_and_partial_checkpoints(tmp_path):
    model, optimizer = make_model()
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        load_checkpoint(tmp_path / "nothing", model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint.json"):
        load_checkpoint(tmp_path / "empty", model)
    path = save_checkpoint(tmp_path / "ckpt", model, optimizer)
    (path / "optimizer.safetensors").unlink()
    with pytest.raises(CheckpointError, match="incomplete: optimizer.safetensors missing"):
        load_checkpoint(path, model, optimizer)
    weights_only = save_checkpoint(tmp_path / "weights", model)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(weights_only, model, optimizer)
    adam = save_checkpoint(tmp_path / "adam", model, optimizer)
    with pytest.raises(CheckpointError, match="optimizer is a AdamW, not a SGD"):
        load_checkpoint(adam, model, torch.optim.SGD(model.parameters(), lr=0.1))


# --- atomic saves -------------------------------------------------------------------------------


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, optimizer = trained_model(steps=1)
    path = save_checkpoint(tmp_path / "ckpt", model, optimizer, step=0)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    real_save_file = checkpoint_module.save_file

    def crash_half_way(tensors, filename, **kwargs):
        if filename.endswith("optimizer.safetensors"):  # model.safetensors is already written
            with open(filename, "wb") as f:
                f.write(b"half a file")
            raise OSError("disk full")
        real_save_file(tensors, filename, **kwargs)

    monkeypatch.setattr(checkpoint_module, "save_file", crash_half_way)
    with torch.no_grad():
        model.tok_emb.weight.add_(1.0)  # something new to save
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, optimizer, step=1)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no .tmp or .old left
    assert load_checkpoint(path, make_model()[0])["step"] == 0


def test_a_second_save_replaces_the_first(tmp_path):
    model, _ = make_model()
    save_checkpoint(tmp_path / "ckpt", model, step=0)
    save_checkpoint(tmp_path / "ckpt", model, step=5)
    assert load_checkpoint(tmp_path / "ckpt", model)["step"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_save_cut_off_between_the_renames_is_recoverable(tmp_path, monkeypatch):
    model, _ = make_model()
    save_checkpoint(tmp_path / "ckpt", model, step=0)
    real_replace = os.replace

    def crash_on_the_second_rename(src, dst):
        if str(src).endswith(".tmp"):
            raise KeyboardInterrupt  # e.g. the stop button, between the two renames
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", crash_on_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "ckpt", model, step=1)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "ckpt", model)["step"] == 0  # the old one was put back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_checkpoint_left_aside_is_named_and_kept(tmp_path):
    model, _ = make_model()
    save_checkpoint(tmp_path / "ckpt", model, step=0)
    os.replace(tmp_path / "ckpt", tmp_path / "ckpt.old")  # as if cut off between the renames
    with pytest.raises(FileNotFoundError, match="kept at .*ckpt.old.*rename it to ckpt"):
        load_checkpoint(tmp_path / "ckpt", model)
    save_checkpoint(tmp_path / "ckpt", model, step=1)  # the next save replaces it
    assert load_checkpoint(tmp_path / "ckpt", model)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


# --- exact resumption ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uninterrupted():
    """The reference: one run of EPOCHS epochs, never stopped."""
    model, optimizer = make_model()
    losses = train(model, optimizer, make_loaders())
    return losses, model


def test_resuming_from_a_mid_epoch_checkpoint_is_exact(tmp_path, uninterrupted):
    reference_losses, reference_model = uninterrupted
    model, optimizer = make_model()
    loaders = make_loaders()
    steps_per_epoch = len(loaders[0])
    copy_at = -(-(steps_per_epoch + 3) // EVAL_FREQ) * EVAL_FREQ  # evaluated, in epoch 2

    def keep_a_copy(update):  # the checkpoint of 2 steps ago (checkpoint_every=2), mid-epoch
        if update.event == "evaluation" and update.step == copy_at:
            shutil.copytree(tmp_path / "run", tmp_path / "copy")

    losses = train(
        model,
        optimizer,
        loaders,
        checkpoint_path=tmp_path / "run",
        checkpoint_every=2,
        callback=keep_a_copy,
    )
    assert losses == reference_losses  # checkpointing changes nothing
    saved = json.loads((tmp_path / "copy" / "checkpoint.json").read_text())
    assert 0 < saved["training"]["batches_done"] < steps_per_epoch

    fresh_model, fresh_optimizer = make_model(seed=999)  # new objects, other weights
    torch.manual_seed(999)  # and another random state: the checkpoint must restore it
    resumed = train(fresh_model, fresh_optimizer, make_loaders(), resume=tmp_path / "copy")
    assert resumed == reference_losses
    assert_same_weights(fresh_model, reference_model)


def raise_in_callback(step, event="evaluation"):
    def callback(update):
        if update.event == event and update.step == step:
            raise KeyboardInterrupt

    return callback


def interrupt_evaluation(val_loader, evaluation_number):
    """A validation loader that stops training in the middle of that evaluation (the train
    loss is already computed, the validation loss not yet)."""

    class StoppingLoader:
        calls = 0

        def __len__(self):
            return len(val_loader)

        def __iter__(self):
            self.calls += 1
            if self.calls == evaluation_number:
                raise KeyboardInterrupt
            return iter(val_loader)

    return StoppingLoader()


def interrupt_forward(model, forward_number):
    """Stop training in the middle of that training forward pass."""
    count = [0]

    def hook(module, inputs):
        if module.training:  # evaluations and samples run in eval mode: not counted
            count[0] += 1
            if count[0] == forward_number:
                raise KeyboardInterrupt

    model.trf_blocks[1].register_forward_pre_hook(hook)


def sigint_in_optimizer_step(optimizer, step_number):
    """A real SIGINT (Jupyter's stop button) in the middle of that optimizer step."""
    real_step = optimizer.step
    count = [0]

    def step(*args, **kwargs):
        count[0] += 1
        if count[0] == step_number:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the parameters are updated
        return real_step(*args, **kwargs)

    optimizer.step = step


@pytest.mark.parametrize(
    "where", ["callback", "epoch end", "evaluation", "forward pass", "optimizer step (SIGINT)"]
)
def test_stop_then_resume_equals_an_uninterrupted_run(tmp_path, uninterrupted, where, capsys):
    reference_losses, reference_model = uninterrupted
    model, optimizer = make_model()
    train_loader, val_loader = make_loaders()
    steps_per_epoch = len(train_loader)
    callback = None
    if where == "callback":
        callback, last_step = raise_in_callback(step=6), 6
    elif where == "epoch end":
        last_step = steps_per_epoch - 1
        callback = raise_in_callback(step=last_step, event="epoch_end")
    elif where == "evaluation":  # the 4th evaluation, of step 9: the step is done, its losses not
        val_loader, last_step = interrupt_evaluation(val_loader, evaluation_number=4), 9
    elif where == "forward pass":  # the first step of epoch 2 is lost, and done again on resume
        interrupt_forward(model, forward_number=steps_per_epoch + 1)
        last_step = steps_per_epoch - 1
    else:  # held back until the 5th step (step 4) is complete and recorded
        sigint_in_optimizer_step(optimizer, step_number=5)
        last_step = 4

    path = tmp_path / "ckpt"
    loaders = (train_loader, val_loader)
    partial = train(model, optimizer, loaders, checkpoint_path=path, callback=callback)
    out = capsys.readouterr().out
    assert f"Training interrupted after step {last_step} " in out and "resume=True" in out
    assert 0 < len(partial[0]) < len(reference_losses[0])
    assert partial[0] == reference_losses[0][: len(partial[0])]  # what was done was right
    assert json.loads((path / "checkpoint.json").read_text())["step"] == last_step

    fresh_model, fresh_optimizer = make_model(seed=999)  # new objects, other weights
    torch.manual_seed(999)  # and another random state: the checkpoint must restore it
    resumed = train(fresh_model, fresh_optimizer, make_loaders(), checkpoint_path=path, resume=True)
    assert "Resuming from" in capsys.readouterr().out
    assert resumed == reference_losses
    assert_same_weights(fresh_model, reference_model)


def test_resume_true_without_a_checkpoint_starts_afresh(tmp_path, uninterrupted, capsys):
    model, optimizer = make_model()
    losses = train(model, optimizer, make_loaders(), checkpoint_path=tmp_path / "new", resume=True)
    assert "starting a new run" in capsys.readouterr().out
    assert losses == uninterrupted[0]
    # a finished run resumed with more epochs trains only the new ones
    path = tmp_path / "new"
    more = train(model, optimizer, make_loaders(), checkpoint_path=path, resume=True, num_epochs=3)
    assert more[0][: len(losses[0])] == losses[0] and len(more[0]) > len(losses[0])


def test_resume_refuses_a_different_loader(tmp_path):
    model, optimizer = make_model()
    path = tmp_path / "ckpt"
    train(model, optimizer, make_loaders(), checkpoint_path=path)
    _, val_loader = make_loaders()
    smaller = create_dataloader_v1(TEXT[:200], 4, 16, 16, tokenizer=CharTokenizer())
    with pytest.raises(ValueError, match="batches per epoch"):
        train(model, optimizer, (smaller, val_loader), checkpoint_path=path, resume=True)
