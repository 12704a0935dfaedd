"""Fault injection for training runs and checkpoints (issue 16): every bad input is refused
before the first step, in a sentence that names it; every failure after work has been done
leaves a loadable checkpoint (or prints what was measured); a damaged checkpoint is refused
without touching the model or the optimizer.

Each probe is one parametrized case; a tiny model (1 layer, 16 dimensions) keeps the file fast.
"""

import copy
import json
import math
import os
import shutil
import signal

import pytest
import torch
from safetensors.torch import load_file, save_file

import helpers.checkpoint as checkpoint_module
from helpers.atomic import write_bytes_atomically, write_json_atomically
from helpers.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model_from_checkpoint,
    save_checkpoint,
)
from helpers.dataset import create_dataloader_v1
from helpers.model import GPTModel
from helpers.tokenizer import SimpleTokenizerV1, SimpleTokenizerV2, build_vocab
from helpers.train_options import TrainingOptions
from helpers.training_run import DivergedError, train_classifier, train_model_resumable

TEXT = "Every effort moves you forward. The sun set slowly over the quiet town. " * 3
CHARS = sorted(set(TEXT))
CONFIG = {"vocab_size": len(CHARS), "context_length": 8, "emb_dim": 16, "n_heads": 2,
          "n_layers": 1, "drop_rate": 0.1, "qkv_bias": False}  # dropout: resume must restore RNG
EPOCHS, EVAL_FREQ = 2, 2


class CharTokenizer:
    def encode(self, text, allowed_special=None):
        return [CHARS.index(ch) for ch in text]  # ValueError on a character it does not know

    def decode(self, ids):
        return "".join(CHARS[i] for i in ids)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def make_loaders(tokenizer=None, text=TEXT):
    tokenizer = tokenizer or CharTokenizer()
    split = int(0.8 * len(text))
    train = create_dataloader_v1(text[:split], 4, 8, 8, shuffle=True, tokenizer=tokenizer)
    val = create_dataloader_v1(text[split:], 4, 8, 8, shuffle=False, drop_last=False,
                               tokenizer=tokenizer)
    return train, val


def make_model(seed=123, config=CONFIG, lr=4e-3):
    torch.manual_seed(seed)
    model = GPTModel(config)
    return model, torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)


def run(model, optimizer, loaders=None, **settings):
    args = dict(num_epochs=EPOCHS, eval_freq=EVAL_FREQ, eval_iter=1, start_context="Every",
                tokenizer=CharTokenizer(), progress=False)
    args.update(settings)
    return train_model_resumable(model, *(loaders or make_loaders()), optimizer, "cpu", **args)


def snapshot(model, optimizer):
    return copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())


def assert_unchanged(model, optimizer, before):
    weights, optim = before
    assert all(torch.equal(t, weights[n]) for n, t in model.state_dict().items())
    now = optimizer.state_dict()
    assert now["param_groups"] == optim["param_groups"]
    assert now["state"].keys() == optim["state"].keys()
    for index, values in optim["state"].items():
        assert all(torch.equal(now["state"][index][k], v) for k, v in values.items())


def assert_same_weights(a, b):
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(),
                                                 strict=True))


@pytest.fixture(scope="module")
def reference():
    """One uninterrupted run: what every interrupted-then-resumed run must equal exactly."""
    model, optimizer = make_model()
    return run(model, optimizer), model


def resume_and_compare(path, reference, **settings):
    model, optimizer = make_model(seed=999)
    torch.manual_seed(999)  # another random state: the checkpoint must restore it
    losses = run(model, optimizer, checkpoint_path=path, resume=True, **settings)
    assert losses == reference[0]
    assert_same_weights(model, reference[1])


# --- 1. bad settings: refused before any work -------------------------------------------------


def under_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    return tmp_path / "afile" / "sub"


def a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    return tmp_path / "afile"


class NoDecodeBeyond(CharTokenizer):
    """A tokenizer with fewer tokens than the model's vocabulary."""

    def decode(self, ids):
        if any(i >= len(CHARS) - 3 for i in ids):
            raise KeyError(ids[0])
        return super().decode(ids)


BAD_SETTINGS = [
    ("num_epochs -1", dict(num_epochs=-1), r"num_epochs must be at least 1"),
    ("num_epochs 0", dict(num_epochs=0), r"num_epochs must be at least 1"),
    ("num_epochs 2.5", dict(num_epochs=2.5), r"num_epochs must be a whole number"),
    ("num_epochs '3'", dict(num_epochs="3"), r"num_epochs must be a whole number"),
    ("num_epochs nan", dict(num_epochs=math.nan), r"num_epochs must be a whole number"),
    ("eval_freq 0", dict(eval_freq=0), r"eval_freq must be a whole number of steps, at least 1"),
    ("eval_freq -3", dict(eval_freq=-3), r"eval_freq must be"),
    ("eval_freq True", dict(eval_freq=True), r"eval_freq must be"),
    ("eval_freq 1.5", dict(eval_freq=1.5), r"eval_freq must be"),
    ("eval_iter 0", dict(eval_iter=0), r"eval_iter must be at least 1"),
    ("eval_iter None", dict(eval_iter=None), r"eval_iter must be a whole number"),
    ("checkpoint_every 0", dict(checkpoint_every=0, checkpoint_path="ck"),
     r"checkpoint_every must be at least 1"),
    ("checkpoint_every -2", dict(checkpoint_every=-2, checkpoint_path="ck"),
     r"checkpoint_every must be at least 1"),
    ("checkpoint_every without a path", dict(checkpoint_every=2), r"needs a checkpoint_path"),
    ("warmup_steps -1", dict(warmup_steps=-1), r"warmup_steps must be at least 0"),
    ("warmup_steps 2.0", dict(warmup_steps=2.0), r"warmup_steps must be a whole number"),
    ("initial_lr nan", dict(initial_lr=math.nan, warmup_steps=2), r"initial_lr must be a finite"),
    ("initial_lr -1e-3", dict(initial_lr=-1e-3, warmup_steps=2), r"initial_lr must be in \[0"),
    ("initial_lr above the peak", dict(initial_lr=1.0, warmup_steps=2), r"initial_lr .* above"),
    ("min_lr -1", dict(min_lr=-1.0), r"min_lr must be in \[0"),
    ("min_lr inf", dict(min_lr=math.inf), r"min_lr must be a finite"),
    ("min_lr above the peak", dict(min_lr=0.5, cosine_decay=True), r"min_lr .* above"),
    ("cosine_decay 'yes'", dict(cosine_decay="yes"), r"cosine_decay must be True or False"),
    ("grad_clip 0", dict(grad_clip=0), r"grad_clip must be in \(0"),
    ("grad_clip -1", dict(grad_clip=-1.0), r"grad_clip must be in \(0"),
    ("grad_clip nan", dict(grad_clip=math.nan), r"grad_clip must be a finite"),
    ("grad_clip '1.0'", dict(grad_clip="1.0"), r"grad_clip must be a finite"),
    ("callback not callable", dict(callback="dashboard"), r"callback must be a function"),
    ("options a dict", dict(options={"sdpa": True}), r"options must be a TrainingOptions"),
    ("options unprepared", dict(options=TrainingOptions(pad_vocab_multiple=64)),
     r"output head is not padded"),
    ("checkpoint_path under a file", dict(checkpoint_path=under_a_file),
     r"checkpoint_path: cannot write .* is a file"),
    ("checkpoint_path is a file", dict(checkpoint_path=a_file),
     r"checkpoint_path: .* is a file, and a folder is needed"),
    ("checkpoint_path 123", dict(checkpoint_path=123), r"checkpoint_path must be a folder path"),
    ("checkpoint_path True", dict(checkpoint_path=True), r"checkpoint_path must be a folder path"),
    ("resume=True without a path", dict(resume=True), r"resume=True continues from checkpoint"),
    ("resume 1", dict(resume=1), r"resume must be a folder path"),
    ("resume ''", dict(resume=""), r"resume must be True, False or a checkpoint folder"),
    ("resume from a missing folder", dict(resume="nowhere/ckpt"), r"No checkpoint at"),
    ("start_context empty", dict(start_context=""), r"start_context must be a non-empty string"),
    ("start_context None", dict(start_context=None), r"start_context must be a non-empty"),
    ("start_context the tokenizer cannot encode", dict(start_context="Zebra!"),
     r"cannot encode and decode the sample for start_context='Zebra!'"),
    ("tokenizer smaller than the model", dict(tokenizer=NoDecodeBeyond()),
     r"NoDecodeBeyond\) cannot encode and decode .* token ids"),
    ("tokenizer None", dict(tokenizer=None), r"tokenizer \(NoneType\) cannot encode"),
    ("optimizer lr 0", dict(lr=0.0), r"the optimizer's learning rate \(lr\) must be in \(0"),
    ("optimizer lr nan", dict(lr=math.nan), r"the optimizer's learning rate .* finite"),
    ("optimizer None", dict(optimizer=None), r"optimizer must be a torch optimizer"),
    ("train_loader empty", dict(train_loader="empty"), r"training loader has no batches"),
    ("train_loader None", dict(train_loader=None), r"training loader must be a DataLoader"),
    ("val_loader an int", dict(val_loader=3), r"validation loader must be a DataLoader"),
]


@pytest.mark.parametrize("settings, match", [p[1:] for p in BAD_SETTINGS],
                         ids=[p[0] for p in BAD_SETTINGS])
def test_bad_settings_are_refused_before_any_work(tmp_path, monkeypatch, settings, match):
    monkeypatch.chdir(tmp_path)  # relative checkpoint paths land here
    settings = {k: v(tmp_path) if callable(v) and k == "checkpoint_path" else v
                for k, v in settings.items()}
    model, optimizer = make_model()
    if "lr" in settings:  # set afterwards: torch itself refuses some values, not all
        optimizer.param_groups[0]["lr"] = settings.pop("lr")
    optimizer = settings.pop("optimizer", optimizer)
    train_loader, val_loader = make_loaders()
    if settings.get("train_loader") == "empty":
        settings["train_loader"] = torch.utils.data.DataLoader(train_loader.dataset, batch_size=999,
                                                               drop_last=True)
    loaders = (settings.pop("train_loader", train_loader), settings.pop("val_loader", val_loader))
    before = copy.deepcopy(model.state_dict())
    steps = []
    model.register_forward_pre_hook(lambda module, args: steps.append(1))
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        run(model, optimizer, loaders, **settings)
    assert steps == []  # not one forward pass: refused up front
    assert all(torch.equal(t, before[n]) for n, t in model.state_dict().items())
    assert not (tmp_path / "ck").exists()


BAD_CLASSIFIER_SETTINGS = [
    ("classifier num_epochs 0", dict(num_epochs=0), r"num_epochs must be at least 1"),
    ("classifier num_epochs 1.5", dict(num_epochs=1.5), r"num_epochs must be a whole number"),
    ("classifier eval_iter -1", dict(eval_iter=-1), r"eval_iter must be at least 1"),
    ("classifier eval_freq 0", dict(eval_freq=0), r"eval_freq must be"),
    ("classifier callback a list", dict(callback=[]), r"callback must be a function"),
]


def classifier_setup(rows=16):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(len(CHARS), 2))
    model.forward = lambda ids, m=model: m[0](ids)  # (batch, tokens, 2): the last token decides
    inputs = torch.randint(0, len(CHARS), (rows, 6))
    dataset = torch.utils.data.TensorDataset(inputs, (inputs[:, -1] % 2).long())
    loader = torch.utils.data.DataLoader(dataset, batch_size=4)
    return model, torch.optim.SGD(model.parameters(), lr=0.1), loader


@pytest.mark.parametrize("settings, match", [p[1:] for p in BAD_CLASSIFIER_SETTINGS],
                         ids=[p[0] for p in BAD_CLASSIFIER_SETTINGS])
def test_bad_classifier_settings_are_refused(settings, match):
    model, optimizer, loader = classifier_setup()
    before = copy.deepcopy(model.state_dict())
    args = {**dict(num_epochs=1, eval_freq=1, eval_iter=1, progress=False), **settings}
    with pytest.raises(ValueError, match=match):
        train_classifier(model, loader, loader, optimizer, "cpu", **args)
    assert torch.equal(model.state_dict()["0.weight"], before["0.weight"])


# --- 2. tokenizers the loaders accept also give samples ---------------------------------------


@pytest.mark.parametrize("tokenizer_class", [SimpleTokenizerV1, SimpleTokenizerV2],
                         ids=["SimpleTokenizerV1 (no allowed_special)", "SimpleTokenizerV2"])
def test_tokenizers_without_allowed_special_train_and_sample(tokenizer_class, capsys):
    vocab = build_vocab(TEXT, special_tokens=("<|endoftext|>", "<|unk|>"))
    tokenizer = tokenizer_class(vocab)
    model, optimizer = make_model(config={**CONFIG, "vocab_size": len(vocab)})
    updates = []
    loader = create_dataloader_v1(TEXT, 2, 8, 8, shuffle=False, tokenizer=tokenizer)  # whole words
    run(model, optimizer, (loader, loader), num_epochs=1, tokenizer=tokenizer,
        start_context="Every effort", callback=updates.append)
    sample = [u.sample for u in updates if u.event == "epoch_end"][0]
    assert sample.startswith("Every effort") and len(sample) > len("Every effort")


# --- 3. failures after work: a loadable checkpoint, and resume gives the same result ----------


def patch_save_file(monkeypatch, what, on_call):
    real, calls = checkpoint_module.save_file, []

    def save(tensors, filename, **kwargs):
        calls.append(filename)
        if len(calls) == on_call:
            if what == "raise":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, while the file is written
        return real(tensors, filename, **kwargs)

    monkeypatch.setattr(checkpoint_module, "save_file", save)


def patch_second_rename(monkeypatch, error, on_save):
    real, saves = os.replace, []

    def replace(src, dst):
        if str(src).endswith(".tmp"):
            saves.append(src)
            if len(saves) == on_save:
                raise error
        return real(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", replace)


def patch_optimizer_step(optimizer, error, on_call, after=False):
    real, calls = optimizer.step, []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == on_call and after:  # half-way: the weights are already changed
            real(*args, **kwargs)
        if len(calls) == on_call:
            raise error
        return real(*args, **kwargs)

    optimizer.step = step


class FlakySample(CharTokenizer):
    """Passes the up-front check, then fails when the first epoch's sample is decoded."""

    calls = 0

    def decode(self, ids):
        FlakySample.calls += 1
        if FlakySample.calls == 3:
            raise RuntimeError("decoder lost its vocabulary file")
        return super().decode(ids)


def raise_in_callback(error, at_step):
    def callback(update):
        if update.event == "evaluation" and update.step == at_step:
            raise error
    return callback


# (id, setup(monkeypatch, optimizer) -> settings, the error that escapes or None, a note)
FAULTS = [
    ("KeyboardInterrupt raised in the first periodic save",
     lambda mp, opt: patch_save_file(mp, "raise", 1) or dict(checkpoint_every=3), None),
    ("KeyboardInterrupt raised in the final save",
     lambda mp, opt: patch_save_file(mp, "raise", 1) or {}, None),
    ("Ctrl-C (SIGINT) during the final save",
     lambda mp, opt: patch_save_file(mp, "signal", 1) or {}, None),
    ("Ctrl-C (SIGINT) during a periodic save",
     lambda mp, opt: patch_save_file(mp, "signal", 4) or dict(checkpoint_every=2), None),
    ("KeyboardInterrupt between the two renames",
     lambda mp, opt: patch_second_rename(mp, KeyboardInterrupt, 2) or dict(checkpoint_every=2),
     None),
    ("KeyboardInterrupt between the renames of the final save",
     lambda mp, opt: patch_second_rename(mp, KeyboardInterrupt, 1) or {}, None),
    ("disk error between the two renames",
     lambda mp, opt: patch_second_rename(mp, OSError("disk full"), 2) or dict(checkpoint_every=2),
     OSError),
    ("KeyboardInterrupt from optimizer.step",
     lambda mp, opt: patch_optimizer_step(opt, KeyboardInterrupt, 4) or {}, None),
    ("RuntimeError from optimizer.step half-way (checkpoint before it kept)",
     lambda mp, opt: patch_optimizer_step(opt, RuntimeError("CUDA error"), 5, after=True)
     or dict(checkpoint_every=2), RuntimeError),
    ("ValueError from the callback",
     lambda mp, opt: dict(callback=raise_in_callback(ValueError("plot failed"), 4)), ValueError),
    ("KeyboardInterrupt from the callback",
     lambda mp, opt: dict(callback=raise_in_callback(KeyboardInterrupt, 2)), None),
    ("sample fails at the epoch end",
     lambda mp, opt: dict(tokenizer=FlakySample()), RuntimeError),
]


@pytest.mark.parametrize("setup, escapes", [p[1:] for p in FAULTS], ids=[p[0] for p in FAULTS])
def test_a_failure_leaves_a_checkpoint_that_resumes_exactly(
    tmp_path, monkeypatch, reference, setup, escapes
):
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    FlakySample.calls = 0
    path = tmp_path / "ckpt"
    model, optimizer = make_model()
    try:
        settings = setup(monkeypatch, optimizer)
        if escapes is None:
            run(model, optimizer, checkpoint_path=path, **settings)
        else:
            with pytest.raises(escapes) as error:
                run(model, optimizer, checkpoint_path=path, **settings)
            notes = " ".join(getattr(error.value, "__notes__", []))
            assert "Training stopped by this error" in notes and str(path) in notes
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no .tmp or .old left
    load_checkpoint(path, make_model(seed=5)[0])  # loadable
    resume_and_compare(path, reference)


def test_only_the_old_copy_left_by_a_crash_is_resumed_and_kept(tmp_path, reference, capsys):
    path = tmp_path / "ckpt"
    model, optimizer = make_model()
    run(model, optimizer, checkpoint_path=path, callback=raise_in_callback(KeyboardInterrupt, 4))
    os.replace(path, tmp_path / "ckpt.old")  # a power cut between the two renames of a save
    kept = (tmp_path / "ckpt.old" / "model.safetensors").read_bytes()
    fresh, fresh_optimizer = make_model(seed=7)
    with pytest.raises(ValueError, match=r"only complete checkpoint there is .*ckpt.old"):
        run(fresh, fresh_optimizer, checkpoint_path=path)  # resume=False would replace it
    assert (tmp_path / "ckpt.old" / "model.safetensors").read_bytes() == kept
    resume_and_compare(path, reference)
    assert "ckpt.old holds the previous one" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_failure_without_a_checkpoint_prints_what_was_measured(capsys):
    model, optimizer = make_model()
    with pytest.raises(ValueError, match="plot failed") as error:
        run(model, optimizer, callback=raise_in_callback(ValueError("plot failed"), 4))
    out = capsys.readouterr().out
    assert "measured so far: train losses [" in out and "val losses [" in out
    assert "train losses [" in " ".join(error.value.__notes__)


@pytest.mark.parametrize("error", [RuntimeError("out of memory"), KeyboardInterrupt()],
                         ids=["error at the first step", "Ctrl-C at the first step"])
def test_a_stop_before_any_step_keeps_an_earlier_runs_checkpoint(tmp_path, error, capsys):
    path = tmp_path / "ckpt"
    model, optimizer = make_model()
    run(model, optimizer, checkpoint_path=path, num_epochs=1)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    other, other_optimizer = make_model(seed=3)
    patch_optimizer_step(other_optimizer, error, 1)
    if isinstance(error, KeyboardInterrupt):
        run(other, other_optimizer, checkpoint_path=path)
    else:
        with pytest.raises(RuntimeError, match="out of memory"):
            run(other, other_optimizer, checkpoint_path=path)
    assert f"no step was done, so {path} was left as it was" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before


# --- 4. NaN losses stop the run before the step is applied -----------------------------------


def nan_after(model, good_steps):
    count = [0]

    def hook(module, args, output):
        if module.training:
            count[0] += 1
            if count[0] > good_steps:
                return output * math.nan
        return output

    return model.register_forward_hook(hook)


def test_a_nan_loss_stops_before_the_step_and_the_checkpoint_holds_the_last_good_one(
    tmp_path, reference
):
    path = tmp_path / "ckpt"
    model, optimizer = make_model()
    hook = nan_after(model, good_steps=5)
    with pytest.raises(DivergedError, match=r"the model's outputs are NaN \(diverged training\?\)"
                       r".*[Ll]ower the learning rate.*grad_clip.*resume") as error:
        run(model, optimizer, checkpoint_path=path, checkpoint_every=100)
    hook.remove()
    assert "continue with resume=True" in " ".join(error.value.__notes__)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the NaN step not applied
    assert json.loads((path / "checkpoint.json").read_text())["step"] == 4
    resume_and_compare(path, reference)


def test_an_infinite_loss_without_a_checkpoint_keeps_finite_weights():
    model, optimizer = make_model()
    nan_after(model, good_steps=2)
    model.out_head.register_forward_hook(
        lambda m, a, out: out if not m.training else out.masked_fill(torch.isnan(out), math.inf))
    with pytest.raises(DivergedError, match="before step 2: its loss is (inf|nan)"):
        run(model, optimizer)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_nan_loss_stops_the_classifier_and_prints_what_was_measured(capsys):
    model, optimizer, loader = classifier_setup()
    calls = [0]

    def nan_from_third(module, args, output):
        calls[0] += 1
        return output * math.nan if module.training and calls[0] > 12 else output

    model[0].register_forward_hook(nan_from_third)
    with pytest.raises(DivergedError, match=r"outputs are NaN \(diverged training\?\)"):
        train_classifier(model, loader, loader, optimizer, "cpu", num_epochs=3, eval_freq=1,
                         eval_iter=1, progress=False)
    assert "measured so far: train losses [" in capsys.readouterr().out
    assert torch.isfinite(model[0].weight).all()


# --- 5. damaged checkpoints: refused, naming the file, with the model untouched ---------------


def rewrite_json(change):
    def damage(path):
        meta = json.loads((path / "checkpoint.json").read_text())
        change(meta)
        (path / "checkpoint.json").write_text(json.dumps(meta))
    return damage


def rewrite_tensors(name, change):
    def damage(path):
        tensors = load_file(str(path / name))
        change(tensors)
        save_file(tensors, str(path / name))
    return damage


def write_bytes(name, data=None, keep=None):
    def damage(path):
        original = (path / name).read_bytes()
        (path / name).write_bytes(original[:keep] if keep is not None else data)
    return damage


def set_in(*keys, value):
    def change(meta):
        for key in keys[:-1]:
            meta = meta[key]
        meta[keys[-1]] = value
    return change


def delete_in(*keys):
    def change(meta):
        for key in keys[:-1]:
            meta = meta[key]
        del meta[keys[-1]]
    return change


def reshape_first(key):
    def change(tensors):
        tensors[key] = tensors[key].flatten()[:-1].clone()
    return change


DAMAGE = [
    ("model.safetensors truncated", write_bytes("model.safetensors", keep=300),
     r"model.safetensors is corrupt or truncated"),
    ("model.safetensors garbage", write_bytes("model.safetensors", b"\x00garbage" * 40),
     r"model.safetensors is corrupt or truncated"),
    ("model.safetensors empty", write_bytes("model.safetensors", b""),
     r"model.safetensors is corrupt or truncated"),
    ("model.safetensors missing", lambda p: (p / "model.safetensors").unlink(),
     r"incomplete: model.safetensors missing"),
    ("model weight of integers", rewrite_tensors("model.safetensors", lambda t: t.update(
        {"tok_emb.weight": t["tok_emb.weight"].long()})), r"tok_emb.weight: checkpoint torch.int64"),
    ("model weight reshaped", rewrite_tensors("model.safetensors", reshape_first("pos_emb.weight")),
     r"pos_emb.weight: checkpoint"),
    ("optimizer.safetensors truncated", write_bytes("optimizer.safetensors", keep=500),
     r"optimizer.safetensors is corrupt or truncated"),
    ("optimizer.safetensors garbage", write_bytes("optimizer.safetensors", b"{" * 100),
     r"optimizer.safetensors is corrupt or truncated"),
    ("optimizer exp_avg reshaped",
     rewrite_tensors("optimizer.safetensors", reshape_first("state.0.exp_avg")),
     r"optimizer.safetensors is damaged: the exp_avg of parameter 0"),
    ("optimizer exp_avg_sq dropped",
     rewrite_tensors("optimizer.safetensors", lambda t: t.pop("state.3.exp_avg_sq")),
     r"optimizer.safetensors is damaged: part of the optimizer state is missing"),
    ("optimizer state for a parameter that does not exist",
     rewrite_tensors("optimizer.safetensors", lambda t: t.update({"state.999.exp_avg": t[
         "state.0.exp_avg"].clone()})), r"state for parameter 999"),
    ("optimizer tensor with a strange name",
     rewrite_tensors("optimizer.safetensors", lambda t: t.update({"evil": torch.zeros(1)})),
     r"optimizer.safetensors holds tensors an optimizer does not have"),
    ("optimizer step of many values",
     rewrite_tensors("optimizer.safetensors", lambda t: t.update({"state.0.step": torch.zeros(3)})),
     r"the step of parameter 0"),
    ("optimizer groups of another size", rewrite_json(
        lambda m: m["optimizer"]["param_groups"][0]["params"].pop()),
     r"parameter groups of \[\d+\] tensors, this optimizer \[\d+\]"),
    ("optimizer param_groups not a list", rewrite_json(
        set_in("optimizer", "param_groups", value="all")), r"'optimizer' entry is not"),
    ("optimizer entry without its file", rewrite_json(
        lambda m: m["files"].remove("optimizer.safetensors")), r"disagree about optimizer"),
    ("optimizer of another class", rewrite_json(set_in("optimizer", "class", value="SGD")),
     r"optimizer is a SGD, not a AdamW"),
    ("rng.safetensors truncated", write_bytes("rng.safetensors", keep=100),
     r"rng.safetensors is corrupt or truncated"),
    ("rng torch state cut short", rewrite_tensors("rng.safetensors", lambda t: t.update(
        {"position.torch": t["position.torch"][:100].clone()})), r"rng.safetensors is damaged"),
    ("rng state of floats", rewrite_tensors("rng.safetensors", lambda t: t.update(
        {"position.torch": t["position.torch"].float()})), r"rng.safetensors is damaged"),
    ("rng with a strange generator name", rewrite_tensors("rng.safetensors", lambda t: t.update(
        {"position.cuda:x": t["position.torch"].clone()})), r"'position.cuda:x' is not a random"),
    ("rng without the run's position", rewrite_tensors("rng.safetensors", lambda t: t.update(
        {"other.torch": t.pop("position.torch")})), r"rng.safetensors lacks the random-number"),
    ("checkpoint.json truncated", write_bytes("checkpoint.json", keep=40),
     r"checkpoint.json is not valid JSON"),
    ("checkpoint.json not UTF-8", write_bytes("checkpoint.json", b"\xff\xfe{}"),
     r"checkpoint.json is not valid JSON"),
    ("checkpoint.json a list", write_bytes("checkpoint.json", b"[1, 2]"),
     r"checkpoint.json is not a checkpoint written by helpers.checkpoint"),
    ("checkpoint.json missing", lambda p: (p / "checkpoint.json").unlink(),
     r"not a complete checkpoint: it has no checkpoint.json"),
    ("version '1'", rewrite_json(set_in("version", value="1")), r"its version is '1'"),
    ("version true", rewrite_json(set_in("version", value=True)), r"its version is True"),
    ("version 99", rewrite_json(set_in("version", value=99)), r"version 99; .* Update the helpers"),
    ("files with ../", rewrite_json(lambda m: m["files"].append("../../etc/passwd")),
     r"it lists \['../../etc/passwd'\]"),
    ("files with an absolute path", rewrite_json(lambda m: m["files"].append("/etc/passwd")),
     r"it lists \['/etc/passwd'\]"),
    ("files a string", rewrite_json(set_in("files", value="model.safetensors")),
     r"its file list 'model.safetensors' does not name"),
    ("files without the model", rewrite_json(lambda m: m["files"].remove("model.safetensors")),
     r"does not name model.safetensors"),
    ("alias to a missing tensor", rewrite_json(set_in("model", "aliases", value={
        "out_head.weight": "nowhere.weight"})), r"same tensor as nowhere.weight"),
    ("model entry a string", rewrite_json(set_in("model", value="GPTModel")),
     r"'model' entry is not"),
    ("step '12'", rewrite_json(set_in("step", value="12")), r"'step' is '12'"),
    ("training a list", rewrite_json(set_in("training", value=[1])), r"'training' is \[1\]"),
    ("training epoch '1'", rewrite_json(set_in("training", "epoch", value="1")),
     r"training progress, its counters"),
    ("training global_step None", rewrite_json(set_in("training", "global_step", value=None)),
     r"global_step is None"),
    ("training curves of unequal length", rewrite_json(
        lambda m: m["training"]["train_losses"].pop()), r"curves are not lists of one length"),
    ("training losses as strings", rewrite_json(set_in("training", "val_losses", value=["x"] * len(
        [0]))), r"curves are not lists of one length|other than numbers"),
    ("training batches_done beyond the epoch", rewrite_json(
        set_in("training", "batches_done", value=10_000)), r"batches_done 10000 exceeds"),
    ("training peak_lr negative", rewrite_json(set_in("training", "peak_lr", value=-1)),
     r"peak_lr is -1"),
    ("training train_seconds as text", rewrite_json(set_in("training", "train_seconds", value="1s")),
     r"train_seconds or learning_rate is not a number"),
    ("training latest_sample a number", rewrite_json(set_in("training", "latest_sample", value=3)),
     r"latest_sample is 3, not text"),
    ("training progress missing", rewrite_json(set_in("training", value=None)),
     r"holds no training progress"),
    ("training of another loader", rewrite_json(set_in("training", "steps_per_epoch", value=99)),
     r"99 batches per epoch"),
]


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A checkpoint saved mid-epoch by an interrupted run (epoch_start RNG and all)."""
    path = tmp_path_factory.mktemp("saved") / "ckpt"
    model, optimizer = make_model()
    run(model, optimizer, checkpoint_path=path, callback=raise_in_callback(KeyboardInterrupt, 2))
    return path


@pytest.fixture(scope="module")
def other_run():
    """The weights and optimizer state of another run, which a refused resume must keep."""
    model, optimizer = make_model(seed=11)
    run(model, optimizer, num_epochs=1)
    return snapshot(model, optimizer)


@pytest.mark.parametrize("damage, match", [p[1:] for p in DAMAGE], ids=[p[0] for p in DAMAGE])
def test_a_damaged_checkpoint_is_refused_and_changes_nothing(
    tmp_path, saved_run, other_run, damage, match
):
    path = tmp_path / "ckpt"
    shutil.copytree(saved_run, path)
    damage(path)
    model, optimizer = make_model(seed=11)  # a model with its own weights and optimizer state
    model.load_state_dict(other_run[0])
    optimizer.load_state_dict(copy.deepcopy(other_run[1]))
    before = snapshot(model, optimizer)
    with pytest.raises(ValueError, match=match):
        run(model, optimizer, checkpoint_path=path, resume=True)
    assert_unchanged(model, optimizer, before)


def test_a_hostile_config_is_refused_by_load_model_from_checkpoint(tmp_path, saved_run):
    path = tmp_path / "ckpt"
    shutil.copytree(saved_run, path)
    rewrite_json(set_in("config", "n_heads", value="two"))(path)
    with pytest.raises(CheckpointError, match=r"config in .*checkpoint.json cannot build a GPTModel"):
        load_model_from_checkpoint(path)


# --- 6. saves that cannot succeed fail before writing anything --------------------------------


class Stream(torch.utils.data.IterableDataset):
    def __iter__(self):
        return iter([])


def save_with_a_tensor_in_extra(tmp_path):
    save_checkpoint(tmp_path / "ckpt", make_model()[0], extra={"mask": torch.ones(2)})


def save_under_a_file(tmp_path):
    save_checkpoint(under_a_file(tmp_path), make_model()[0])


def json_of_a_set(tmp_path):
    write_json_atomically(tmp_path / "ckpt", {"ids": {1, 2}})


def file_over_a_folder(tmp_path):
    (tmp_path / "ckpt").mkdir()
    write_bytes_atomically(tmp_path / "ckpt", b"data")


def train_on_a_stream(tmp_path):
    model, optimizer = make_model()
    run(model, optimizer, (torch.utils.data.DataLoader(Stream()), make_loaders()[1]))


SAVE_PROBES = [
    ("save_checkpoint with a tensor in extra", save_with_a_tensor_in_extra, CheckpointError,
     r"ckpt: its config, training or extra holds something JSON cannot store"),
    ("save_checkpoint under a file", save_under_a_file, CheckpointError,
     r"Cannot save a checkpoint at .*afile/sub"),
    ("JSON of a set", json_of_a_set, ValueError, r"Cannot save .*ckpt as JSON"),
    ("atomic file over a folder", file_over_a_folder, IsADirectoryError, r"ckpt: it is a folder"),
    ("train_loader without a length", train_on_a_stream, ValueError,
     r"training loader must be a DataLoader \(or anything with a length"),
]


@pytest.mark.parametrize("action, error, match", [p[1:] for p in SAVE_PROBES],
                         ids=[p[0] for p in SAVE_PROBES])
def test_a_save_that_cannot_succeed_writes_nothing(tmp_path, action, error, match):
    with pytest.raises(error, match=match):
        action(tmp_path)
    left = sorted(p.name for p in tmp_path.rglob("*") if p.name not in ("afile", "ckpt"))
    assert left == []  # no temporary file or folder left behind
    assert not (tmp_path / "ckpt").is_file()
