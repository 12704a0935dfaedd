"""Phase 06, saving and resuming training: checkpoints as plain safetensors + JSON, never pickle.

A checkpoint is one folder::

    checkpoint.json          step, epoch, config, optimizer settings, training progress, ...
    model.safetensors        the model's state dict (each shared tensor stored once)
    optimizer.safetensors    the optimizer's tensors, e.g. ``state.3.exp_avg`` (if saved)
    rng.safetensors          random-number-generator states as uint8 tensors (if saved)

Only ``model.safetensors`` is needed to use the model; the rest lets training continue as if it
had never stopped. Nothing is unpickled on load, so a checkpoint from someone else cannot run
code on your machine.

A save writes a temporary sibling folder, flushes it to disk, then renames it into place, so a
crash (or a stop button) mid-save leaves the previous checkpoint intact, never half of a new one.

Usage::

    save_checkpoint("checkpoints/verdict", model, optimizer, step=120, epoch=3)
    meta = load_checkpoint("checkpoints/verdict", model, optimizer)   # meta["step"] == 120
    model = load_model_from_checkpoint("checkpoints/verdict")           # a fresh GPTModel
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path


import torch
from safetensors.torch import load_file, save_file

from .atomic import fsync
from torch import nn

FORMAT = "llm-from-scratch checkpoint"
VERSION = 1
METADATA_FILE = "checkpoint.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"


class CheckpointError(ValueError):
    """A checkpoint is incomplete, or does not fit the model or optimizer it is loaded into."""


# ---------------------------------------------------------------------------------------------
# Random-number generators: what exact resumption needs besides weights and optimizer
# ---------------------------------------------------------------------------------------------


def capture_rng_states() -> dict[str, torch.Tensor]:
    """PyTorch's generator states: ``"torch"`` (CPU: shuffling, and dropout on CPU), plus
    ``"cuda:N"`` / ``"mps"`` where those devices are in use (dropout on an accelerator).

    CUDA is only asked if it is already initialised, so a CPU run on a GPU machine does not
    start a CUDA context just to save a checkpoint.
    """
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index in range(torch.cuda.device_count()):
            states[f"cuda:{index}"] = torch.cuda.get_rng_state(index)
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        states["mps"] = mps.get_rng_state()
    return states


def restore_rng_states(states: dict[str, torch.Tensor]) -> None:
    """Set the generators back to what ``capture_rng_states`` returned (devices not present
    here are skipped: a CPU run resumes fine from a GPU run's checkpoint, just not bit-exact)."""
    torch.set_rng_state(states["torch"].cpu())
    for name, state in states.items():
        if name.startswith("cuda:") and torch.cuda.is_available():
            index = int(name.split(":")[1])
            if index < torch.cuda.device_count():
                torch.cuda.set_rng_state(state.cpu(), index)
        elif name == "mps" and torch.backends.mps.is_available():
            torch.mps.set_rng_state(state.cpu())


# ---------------------------------------------------------------------------------------------
# Tensors <-> safetensors
# ---------------------------------------------------------------------------------------------


def gpt_config_of(model: nn.Module) -> dict | None:
    """The ``GPT_CONFIG_124M``-style dict a ``GPTModel`` was built from, read off its layers
    (``None`` for other models), so a checkpoint can rebuild the model without being told."""
    try:
        attention = model.trf_blocks[0].att
        return {
            "vocab_size": model.tok_emb.num_embeddings,
            "context_length": model.pos_emb.num_embeddings,
            "emb_dim": model.tok_emb.embedding_dim,
            "n_heads": attention.num_heads,
            "n_layers": len(model.trf_blocks),
            "drop_rate": model.drop_emb.p,
            "qkv_bias": attention.W_query.bias is not None,
        }
    except (AttributeError, IndexError, TypeError):
        return None


def split_shared_tensors(
    state_dict: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, aliases)``: every tensor once, and ``{name: name it is the same tensor as}``.

    safetensors refuses tensors that share memory, which tied weights do (GPT-2 uses its token
    embedding as the output head: ``out_head.weight is tok_emb.weight``). Identical views are
    stored once and re-tied on load; a tensor that overlaps another only in part gets a copy.
    """
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    first_name: dict[tuple, str] = {}
    storages_used: set[int] = set()
    for name, tensor in state_dict.items():
        tensor = tensor.detach()
        storage = tensor.untyped_storage().data_ptr()
        view = (storage, tensor.storage_offset(), tensor.shape, tensor.stride(), tensor.dtype)
        if tensor.numel() and view in first_name:
            aliases[name] = first_name[view]
            continue
        if tensor.numel():
            first_name[view] = name
            if storage in storages_used:
                tensor = tensor.clone()  # shares memory with an earlier tensor, but not as a whole
            storages_used.add(storage)
        tensors[name] = tensor.contiguous()
    return tensors, aliases


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Optimizer state dict -> (tensors named ``state.{param_index}.{key}``, JSON-able rest)."""
    state_dict = optimizer.state_dict()
    tensors, plain_state = {}, {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value.detach().contiguous()
            else:  # e.g. SGD's momentum_buffer=None, or a step kept as a Python number
                plain_state.setdefault(str(index), {})[key] = _json_value(value, f"state {key}")
    groups = [
        {key: _json_value(value, f"param_groups {key}") for key, value in group.items()}
        for group in state_dict["param_groups"]
    ]
    info = {"class": type(optimizer).__name__, "param_groups": groups, "state": plain_state}
    return tensors, info


def _json_value(value, what: str):
    """Optimizer settings as JSON: tuples become lists, 0-d tensors numbers."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    if value is None or isinstance(value, (bool, int, float, str, list)):
        return value
    raise TypeError(f"Cannot store optimizer {what}={value!r} ({type(value).__name__}) as JSON.")


def _unflatten_optimizer(
    tensors: dict[str, torch.Tensor], info: dict, optimizer: torch.optim.Optimizer
) -> dict:
    """The inverse of ``_flatten_optimizer``, shaped like ``optimizer.state_dict()``."""
    state: dict[int, dict] = {}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    for index, values in info.get("state", {}).items():
        state.setdefault(int(index), {}).update(values)
    groups = []
    for saved, current in zip(info["param_groups"], optimizer.param_groups, strict=False):
        # JSON has no tuples; give back the types this optimizer uses (e.g. Adam's betas)
        groups.append(
            {
                key: tuple(value) if isinstance(current.get(key), tuple) else value
                for key, value in saved.items()
            }
        )
    groups.extend(info["param_groups"][len(groups) :])  # torch reports the count mismatch
    return {"state": state, "param_groups": groups}


# ---------------------------------------------------------------------------------------------
# Writing atomically
# ---------------------------------------------------------------------------------------------


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file({name: t.cpu() for name, t in tensors.items()}, str(path))
    fsync(path)


def _replace_folder(new: Path, final: Path) -> None:
    """Move the finished folder ``new`` to ``final``, replacing an older one safely.

    A folder cannot be renamed over a non-empty one, so the old one steps aside first
    (``final.old``) and is deleted only once the new one is in place.
    """
    old = final.with_name(final.name + ".old")
    if final.exists():
        if old.exists():  # left over from an earlier save, and final is complete: stale
            shutil.rmtree(old)
        os.replace(final, old)
    # (without final, an .old is the only complete checkpoint: it stays until new is in place)
    try:
        os.replace(new, final)
    except BaseException:
        if old.exists() and not final.exists():
            os.replace(old, final)  # put the previous checkpoint back
        raise
    fsync(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(
    path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    step: int | None = None,
    epoch: int | None = None,
    config: dict | None = None,
    training: dict | None = None,
    rng_states: dict[str, torch.Tensor] | None = None,
    extra: dict | None = None,
) -> Path:
    """Save ``model`` (and ``optimizer``) as a checkpoint folder at ``path``; return the path.

    ``config``: the model's config dict, so ``load_model_from_checkpoint`` can rebuild it
    (read off the model when it is a ``GPTModel``). ``training``: JSON-able progress (losses,
    position in the epoch; ``helpers.training_run.train_model_resumable`` fills it). ``rng_states``:
    named generator states (see ``capture_rng_states``). ``extra``: anything else JSON-able, e.g. the data used.
    """
    final = Path(path)
    if final.exists() and not final.is_dir():
        raise CheckpointError(f"{final} is a file; a checkpoint is a folder. Choose another path.")
    final.parent.mkdir(parents=True, exist_ok=True)
    tensors, aliases = split_shared_tensors(model.state_dict())
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "step": step,
        "epoch": epoch,
        "config": config if config is not None else gpt_config_of(model),
        "model": {"class": type(model).__name__, "aliases": aliases},
        "files": [MODEL_FILE],
        "training": training,
        "extra": extra,
        "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "torch_version": torch.__version__,
    }
    temporary = final.with_name(final.name + ".tmp")
    if temporary.exists():  # left over from a save that was killed
        shutil.rmtree(temporary)
    temporary.mkdir()
    try:
        _write_tensors(temporary / MODEL_FILE, tensors)
        if optimizer is not None:
            optimizer_tensors, metadata["optimizer"] = _flatten_optimizer(optimizer)
            _write_tensors(temporary / OPTIMIZER_FILE, optimizer_tensors)
            metadata["files"].append(OPTIMIZER_FILE)
        if rng_states:
            _write_tensors(temporary / RNG_FILE, rng_states)
            metadata["files"].append(RNG_FILE)
        # written last: a folder with checkpoint.json in it is complete
        _write_json(temporary / METADATA_FILE, metadata)
        fsync(temporary)
        _replace_folder(temporary, final)
    except BaseException:  # also KeyboardInterrupt: never leave a half-written folder behind
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def read_checkpoint_metadata(path) -> dict:
    """The ``checkpoint.json`` of the checkpoint at ``path``, after checking it is complete."""
    folder = Path(path)
    if not folder.is_dir():
        leftover = folder.with_name(folder.name + ".old")
        hint = (
            f" A previous checkpoint was kept at {leftover} by a save that was cut off; "
            f"rename it to {folder.name} to use it."
            if leftover.is_dir()
            else ""
        )
        raise FileNotFoundError(f"No checkpoint at {folder}.{hint}")
    metadata_path = folder / METADATA_FILE
    if not metadata_path.is_file():
        raise CheckpointError(
            f"{folder} is not a complete checkpoint: it has no {METADATA_FILE} "
            "(a checkpoint folder holds checkpoint.json and model.safetensors)."
        )
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{metadata_path} is not a checkpoint written by helpers.checkpoint.")
    if metadata.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{folder} uses checkpoint version {metadata['version']}; this code reads up to "
            f"{VERSION}. Update the helpers package."
        )
    missing = [name for name in metadata["files"] if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"The checkpoint at {folder} is incomplete: {', '.join(missing)} missing."
        )
    return metadata


def _model_state_dict(folder: Path, metadata: dict, map_location) -> dict[str, torch.Tensor]:
    """The saved state dict, with tied tensors filled in under all their names again."""
    state_dict = load_file(str(folder / MODEL_FILE), device=str(map_location))
    for name, same_as in metadata["model"]["aliases"].items():
        state_dict[name] = state_dict[same_as]
    return state_dict


def mismatch_report(found: dict, expected: dict, source: str = "checkpoint") -> list[str]:
    """One line per tensor of ``found`` (from a file) that is shaped otherwise than in
    ``expected`` (a model's state dict), then the missing and the extra names; [] if all fit."""
    problems = [
        f"{name}: {source} {tuple(found[name].shape)}, model {tuple(t.shape)}"
        for name, t in expected.items()
        if name in found and found[name].shape != t.shape
    ]
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    if missing:
        problems.append(f"missing from the {source}: {', '.join(missing[:8])}")
    if unexpected:
        problems.append(f"not in the model: {', '.join(unexpected[:8])}")
    return problems


def _check_fits(state_dict: dict, model: nn.Module, folder: Path, metadata: dict) -> None:
    """Raise a ``CheckpointError`` naming each tensor that is missing, extra or shaped otherwise."""
    problems = mismatch_report(state_dict, model.state_dict(), "checkpoint")
    if problems:
        raise CheckpointError(
            f"The checkpoint at {folder} does not fit this model:\n  "
            + "\n  ".join(problems[:20])
            + f"\nIt was saved from a {metadata['model']['class']} with config "
            f"{metadata['config']}. Build the model with that config, or use "
            "load_model_from_checkpoint(path), which does."
        )


def load_checkpoint(
    path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    map_location="cpu",
) -> dict:
    """Load the weights (and optimizer state) saved at ``path`` into ``model`` (and ``optimizer``).

    Returns the checkpoint's metadata (``step``, ``epoch``, ``config``, ``training``, ``extra``,
    ...) plus ``rng_states`` (a dict of tensors, empty if none were saved). The model must have
    the checkpoint's shapes: otherwise a ``CheckpointError`` lists the tensors that differ.
    Tensors are read to ``map_location`` first; ``load_state_dict`` then copies them into the
    model's own tensors, wherever those live.
    """
    folder = Path(path)
    metadata = read_checkpoint_metadata(folder)
    state_dict = _model_state_dict(folder, metadata, map_location)
    _check_fits(state_dict, model, folder, metadata)
    if optimizer is not None:  # check before changing anything
        info = metadata.get("optimizer")
        if info is None:
            raise CheckpointError(
                f"The checkpoint at {folder} holds no optimizer state; "
                "load it with optimizer=None to get the weights only."
            )
        if info["class"] != type(optimizer).__name__:
            raise CheckpointError(
                f"The checkpoint's optimizer is a {info['class']}, not a "
                f"{type(optimizer).__name__}; create a {info['class']} to resume training."
            )
    model.load_state_dict(state_dict)
    if optimizer is not None:
        tensors = load_file(str(folder / OPTIMIZER_FILE), device=str(map_location))
        optimizer.load_state_dict(_unflatten_optimizer(tensors, info, optimizer))
    rng_path = folder / RNG_FILE
    metadata["rng_states"] = load_file(str(rng_path)) if rng_path.is_file() else {}
    return metadata


def load_model_from_checkpoint(path, map_location="cpu") -> nn.Module:
    """A new ``GPTModel`` built from the checkpoint's config, with its weights, in eval mode."""
    from .model import GPTModel

    metadata = read_checkpoint_metadata(path)
    if not metadata.get("config"):
        raise CheckpointError(
            f"The checkpoint at {path} has no model config; build the model yourself and "
            "call load_checkpoint(path, model)."
        )
    model = GPTModel(metadata["config"])
    load_checkpoint(path, model, map_location=map_location)
    return model.to(map_location).eval()


if __name__ == "__main__":  # usage example: python -m helpers.checkpoint
    import tempfile

    from .model import GPT_CONFIG_124M, GPTModel

    cfg = {**GPT_CONFIG_124M, "vocab_size": 50, "context_length": 8, "emb_dim": 16, "n_layers": 1}
    cfg["n_heads"] = 2
    torch.manual_seed(123)
    model = GPTModel(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-4)
    with tempfile.TemporaryDirectory() as folder:
        saved = save_checkpoint(Path(folder) / "tiny", model, optimizer, step=0)
        print(sorted(p.name for p in saved.iterdir()))
        copy = load_model_from_checkpoint(saved)
        pairs = zip(model.state_dict().values(), copy.state_dict().values())
        print("weights identical:", all(torch.equal(a, b) for a, b in pairs))
