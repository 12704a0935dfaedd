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
A load reads and checks every file first (``read_checkpoint``) and only then changes the model
and optimizer (``apply_checkpoint``): a damaged file is refused, naming it, with nothing changed.

Usage::

    save_checkpoint("checkpoints/verdict", model, optimizer, step=120, epoch=3)
    meta = load_checkpoint("checkpoints/verdict", model, optimizer)   # meta["step"] == 120
    model = load_model_from_checkpoint("checkpoints/verdict")           # a fresh GPTModel
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import fsync

FORMAT = "llm-from-scratch checkpoint"
VERSION = 1
METADATA_FILE = "checkpoint.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
# the only files a checkpoint may list: a hostile checkpoint.json cannot point outside its folder
KNOWN_FILES = (MODEL_FILE, OPTIMIZER_FILE, RNG_FILE)
# optimizer state that has one value per weight, so the weight's shape (Adam, AdamW, SGD, RMSprop, ...)
PARAMETER_SHAPED_STATE = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer",
                          "square_avg", "acc_delta", "sum", "grad_avg")
FIX_HINT = "delete it, or resume from an earlier copy of the checkpoint"


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
    if final.exists() and old.exists():
        if is_complete(final):  # the .old is left over from an earlier save: stale
            shutil.rmtree(old)
        else:  # final is a damaged leftover, and .old the complete checkpoint: keep that one
            shutil.rmtree(final)
    if final.exists():
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


def is_complete(folder) -> bool:
    """Whether ``folder`` holds a finished save (``checkpoint.json`` is written last)."""
    return (Path(folder) / METADATA_FILE).is_file()


def previous_checkpoint(path) -> Path | None:
    """``<path>.old`` if a save cut off between its two renames left the previous complete
    checkpoint there (and nothing at ``path``), else ``None``."""
    path = Path(path)
    old = path.with_name(path.name + ".old")
    return old if not path.exists() and old.is_dir() and is_complete(old) else None


def _check_json(metadata: dict, final: Path) -> None:
    """Refuse settings JSON cannot hold (a tensor in ``extra``, say) before anything is written."""
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"Cannot save a checkpoint at {final}: its config, training or extra holds "
            f"something JSON cannot store ({err}). Pass plain numbers, text, lists and dicts."
        ) from None


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
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # e.g. a file where a parent folder must be
        raise CheckpointError(
            f"Cannot save a checkpoint at {final}: {err.strerror or err}. Choose another path."
        ) from None
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
    _check_json(metadata, final)
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
    """The ``checkpoint.json`` of the checkpoint at ``path``, after checking that it is
    complete and well-formed (a damaged or hostile file is refused, naming it)."""
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
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{metadata_path} is not valid JSON ({err}); {FIX_HINT}.") from None
    _check_metadata(metadata, metadata_path)
    missing = [name for name in metadata["files"] if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"The checkpoint at {folder} is incomplete: {', '.join(missing)} missing."
        )
    return metadata


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_metadata(meta, where: Path) -> None:
    """Raise a ``CheckpointError`` unless ``meta`` has the structure ``save_checkpoint`` writes."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{where} is not a checkpoint written by helpers.checkpoint.")

    def damaged(what: str) -> CheckpointError:
        return CheckpointError(f"{where} is damaged: {what}; {FIX_HINT}.")

    version = meta.get("version")
    if not _is_whole(version):
        raise damaged(f"its version is {version!r}, not a whole number")
    if version > VERSION:
        raise CheckpointError(
            f"{where.parent} uses checkpoint version {version}; this code reads up to "
            f"{VERSION}. Update the helpers package."
        )
    files = meta.get("files")
    if not isinstance(files, list) or MODEL_FILE not in files:
        raise damaged(f"its file list {files!r} does not name {MODEL_FILE}")
    strange = [name for name in files if name not in KNOWN_FILES]
    if strange:  # e.g. "../../.ssh/id_rsa": never read anything outside the folder
        raise damaged(f"it lists {strange!r}; a checkpoint holds only {', '.join(KNOWN_FILES)}")
    model = meta.get("model")
    aliases = model.get("aliases") if isinstance(model, dict) else None
    if not (isinstance(aliases, dict) and isinstance(model.get("class"), str)) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
    ):
        raise damaged("its 'model' entry is not {'class': name, 'aliases': {name: name}}")
    for key in ("step", "epoch"):
        if meta.get(key) is not None and not _is_whole(meta[key]):
            raise damaged(f"'{key}' is {meta[key]!r}, not a whole number")
    for key in ("config", "training"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise damaged(f"'{key}' is {meta[key]!r}, not a dictionary")
    if (meta.get("optimizer") is not None) != (OPTIMIZER_FILE in files):
        raise damaged(f"its 'optimizer' entry and its file list disagree about {OPTIMIZER_FILE}")
    if meta.get("optimizer") is not None and not _optimizer_info_ok(meta["optimizer"]):
        raise damaged("its 'optimizer' entry is not {'class', 'param_groups', 'state'} as saved")


def _optimizer_info_ok(info) -> bool:
    """Whether the optimizer settings have the shape ``_flatten_optimizer`` gives them."""
    if not isinstance(info, dict) or not isinstance(info.get("class"), str):
        return False
    groups, state = info.get("param_groups"), info.get("state", {})
    return (
        isinstance(groups, list)
        and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
        and all(_is_whole(i) for g in groups for i in g["params"])
        and isinstance(state, dict)
        and all(k.isdigit() and isinstance(v, dict) for k, v in state.items())
    )


def _read_tensors(path: Path, map_location) -> dict[str, torch.Tensor]:
    """The tensors of one safetensors file; a truncated or garbled file is a ``CheckpointError``."""
    try:
        return load_file(str(path), device=str(map_location))
    except SafetensorError as err:
        raise CheckpointError(f"{path} is corrupt or truncated ({err}); {FIX_HINT}.") from None


def _model_state_dict(folder: Path, metadata: dict, map_location) -> dict[str, torch.Tensor]:
    """The saved state dict, with tied tensors filled in under all their names again."""
    state_dict = _read_tensors(folder / MODEL_FILE, map_location)
    for name, same_as in metadata["model"]["aliases"].items():
        if same_as not in state_dict:
            raise CheckpointError(
                f"{folder / METADATA_FILE} is damaged: {name} is said to be the same tensor as "
                f"{same_as}, which {MODEL_FILE} does not hold; {FIX_HINT}."
            )
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
    """Raise a ``CheckpointError`` naming each tensor that is missing, extra or shaped otherwise
    (or holds integers where the model has floats: copying would convert them silently)."""
    expected = model.state_dict()
    problems = mismatch_report(state_dict, expected, "checkpoint")
    problems += [
        f"{name}: checkpoint {t.dtype}, model {expected[name].dtype}"
        for name, t in state_dict.items()
        if name in expected and t.is_floating_point() != expected[name].is_floating_point()
    ]
    if problems:
        raise CheckpointError(
            f"The checkpoint at {folder} does not fit this model:\n  "
            + "\n  ".join(problems[:20])
            + f"\nIt was saved from a {metadata['model']['class']} with config "
            f"{metadata['config']}. Build the model with that config, or use "
            "load_model_from_checkpoint(path), which does."
        )


def _optimizer_state(folder: Path, metadata: dict, optimizer, map_location) -> dict:
    """The saved optimizer state, checked against ``optimizer`` (without changing it)."""
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
    saved_sizes = [len(group["params"]) for group in info["param_groups"]]
    sizes = [len(group["params"]) for group in optimizer.param_groups]
    if saved_sizes != sizes:
        raise CheckpointError(
            f"The checkpoint's optimizer holds parameter groups of {saved_sizes} tensors, this "
            f"optimizer {sizes}: create it as the checkpoint's was (the same model and groups)."
        )
    path = folder / OPTIMIZER_FILE
    tensors = _read_tensors(path, map_location)
    strange = [name for name in tensors if not re.fullmatch(r"state\.\d+\.\w+", name)]
    if strange:
        raise CheckpointError(f"{path} holds tensors an optimizer does not have ({strange[:3]}); {FIX_HINT}.")
    state = _unflatten_optimizer(tensors, info, optimizer)
    _check_optimizer_state(state["state"], info, optimizer, path)
    return state


def _check_optimizer_state(state: dict, info: dict, optimizer, path: Path) -> None:
    """Refuse state for parameters the optimizer lacks, per-weight state shaped otherwise than
    its weight, and parameters missing part of the state the others have."""
    saved_ids = [index for group in info["param_groups"] for index in group["params"]]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    param_of = dict(zip(saved_ids, params, strict=True))
    key_sets = set()
    for index, values in state.items():
        if index not in param_of:
            raise CheckpointError(f"{path} holds state for parameter {index}, which the optimizer "
                                  f"does not have; {FIX_HINT}.")
        shape = param_of[index].shape
        for key, value in values.items():
            bad_shape = key in PARAMETER_SHAPED_STATE and isinstance(value, torch.Tensor) and (
                value.shape != shape or not value.is_floating_point()
            )
            if bad_shape or (key == "step" and isinstance(value, torch.Tensor) and value.numel() != 1):
                raise CheckpointError(
                    f"{path} is damaged: the {key} of parameter {index} is a {tuple(value.shape)} "
                    f"{value.dtype} tensor, for a weight of shape {tuple(shape)}; {FIX_HINT}."
                )
        key_sets.add(frozenset(values))
    if len(key_sets) > 1:
        raise CheckpointError(f"{path} is damaged: part of the optimizer state is missing (the "
                              f"parameters hold different entries); {FIX_HINT}.")


def check_rng_states(states: dict, where) -> None:
    """Raise a ``CheckpointError`` unless each entry is a generator state ``restore_rng_states``
    can set: named ``torch``, ``mps`` or ``cuda:N`` (after an optional ``group.`` prefix), a
    1-D uint8 tensor, and for the CPU generator exactly the size torch uses."""
    cpu_size = torch.get_rng_state().numel()
    for name, state in states.items():
        kind = name.rsplit(".", 1)[-1]
        known = kind in ("torch", "mps") or re.fullmatch(r"cuda:\d+", kind)
        fits = state.dtype == torch.uint8 and state.dim() == 1
        if not known or not fits or (kind == "torch" and state.numel() != cpu_size):
            raise CheckpointError(
                f"{where} is damaged: {name!r} is not a random-number-generator state; {FIX_HINT}."
            )


@dataclass
class LoadedCheckpoint:
    """Everything a checkpoint holds, read and checked but not yet put into a model."""

    metadata: dict
    model_state: dict
    optimizer_state: dict | None
    rng_states: dict


def read_checkpoint(path, model: nn.Module, optimizer=None, map_location="cpu") -> LoadedCheckpoint:
    """Read every file of the checkpoint at ``path`` and check it fits ``model`` (and
    ``optimizer``), changing neither: a damaged file raises a ``CheckpointError`` naming it
    while the model still holds its own weights. ``apply_checkpoint`` then loads it."""
    folder = Path(path)
    metadata = read_checkpoint_metadata(folder)
    state_dict = _model_state_dict(folder, metadata, map_location)
    _check_fits(state_dict, model, folder, metadata)
    optimizer_state = None
    if optimizer is not None:
        optimizer_state = _optimizer_state(folder, metadata, optimizer, map_location)
    rng = _read_tensors(folder / RNG_FILE, "cpu") if RNG_FILE in metadata["files"] else {}
    check_rng_states(rng, folder / RNG_FILE)
    return LoadedCheckpoint(metadata, state_dict, optimizer_state, rng)


def apply_checkpoint(loaded: LoadedCheckpoint, model: nn.Module, optimizer=None) -> None:
    """Put what ``read_checkpoint`` read into ``model`` (and ``optimizer``). The optimizer goes
    first and is put back as it was if torch still refuses the state, so the model is only
    changed once nothing can fail."""
    if optimizer is not None and loaded.optimizer_state is not None:
        before = optimizer.state_dict()
        try:
            optimizer.load_state_dict(loaded.optimizer_state)
        except (ValueError, RuntimeError, KeyError, TypeError) as err:
            optimizer.load_state_dict(before)
            raise CheckpointError(
                f"The checkpoint's optimizer state does not fit this optimizer ({err}); create "
                "the optimizer as the checkpoint's was, or load the weights only."
            ) from None
    model.load_state_dict(loaded.model_state)


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
    Every file is read and checked before anything is changed. Tensors are read to
    ``map_location`` first; ``load_state_dict`` then copies them into the model's own tensors,
    wherever those live.
    """
    loaded = read_checkpoint(path, model, optimizer, map_location)
    apply_checkpoint(loaded, model, optimizer)
    return {**loaded.metadata, "rng_states": loaded.rng_states}


def load_model_from_checkpoint(path, map_location="cpu") -> nn.Module:
    """A new ``GPTModel`` built from the checkpoint's config, with its weights, in eval mode."""
    from .model import GPTModel

    metadata = read_checkpoint_metadata(path)
    if not metadata.get("config"):
        raise CheckpointError(
            f"The checkpoint at {path} has no model config; build the model yourself and "
            "call load_checkpoint(path, model)."
        )
    try:
        model = GPTModel(metadata["config"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"The model config in {Path(path) / METADATA_FILE} cannot build a GPTModel "
            f"({type(err).__name__}: {err}); {FIX_HINT}."
        ) from None
    tie_as_saved(model, metadata["model"]["aliases"])
    load_checkpoint(path, model, map_location=map_location)
    return model.to(map_location).eval()


def tie_as_saved(model: nn.Module, aliases: dict[str, str]) -> None:
    """Share the parameters the saved model shared (a head tied to the token embedding):
    loading into separate tensors would untie them, and the next training step would let
    the two copies drift apart."""
    parameters = dict(model.named_parameters(remove_duplicate=False))
    for name, same_as in aliases.items():
        if name in parameters and same_as in parameters:
            owner_name, _, attribute = name.rpartition(".")
            setattr(model.get_submodule(owner_name), attribute, parameters[same_as])


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
