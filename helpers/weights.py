"""Phase 06 (book 5.5): OpenAI's pretrained GPT-2 weights in our ``GPTModel``.

``load_gpt2(source)`` takes a GPT-2 size ("gpt2-small (124M)", or short: "small", "124M",
"gpt2", "medium", "355M", ...) or a path, and returns a ``GPTModel`` in eval mode:

    size name   ``$LLM_DATA_MIRROR/<repo name>/`` (e.g. ``.../gpt2/model.safetensors``) if there,
                else Hugging Face's cache, else a download of ``openai-community/gpt2*``
    folder      Hugging Face's layout (``config.json`` + ``model.safetensors``), or ours
                (``config.json`` with ``GPT_CONFIG_124M``'s keys + ``model.safetensors``)
    file        ``.safetensors``, or a ``.pth`` state dict saved by the book's code

Which GPT-2 tensor becomes which of our parameters is ``gpt2_weight_map`` (helpers/gpt2_mapping.py):
``c_attn`` split in three for W_query/W_key/W_value, Conv1D matrices transposed, the output head
tied to the token embedding ``wte``. This module follows that table: it checks every shape
first (``WeightsMismatch`` names each tensor that does not fit), then builds the model without
memory (``empty_model``: PyTorch's ``meta`` device, then ``to_empty``) and fills it one tensor at
a time from the lazily read file, so the peak memory is about one model.

The other rooms: ``hub`` (where the files come from, offline messages), ``safetensors_reader``
(plain reads, one tensor at a time), ``weights_config`` (the config a file needs).

Usage::

    model = load_gpt2("gpt2-small (124M)")    # downloads ~500 MB once, then loads from the cache
    model = load_gpt2("medium", device="cuda", dtype=torch.bfloat16)
    model = load_model("gpt2-small.pth")       # torch.save(model.state_dict(), ...) from the book
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from .data import DataError, cache_dir
from .empty_model import empty_model, shapes_only_model
from .gpt2_mapping import Source, gpt2_weight_map
from .hub import (
    CONFIG_FILE,
    CONNECT_TIMEOUT_S,
    GPT2_REPOS,
    WEIGHTS_FILE,
    WeightsUnavailable,
    download_gpt2,
    gpt2_folder_name,
    is_gpt2_size,
    resolve_gpt2_size,
)
from .model import GPTModel, gpt2_config
from .safetensors_reader import SafetensorsReader, check_safetensors
from .validate import check_int, check_number
from .weights_config import (
    GPT2_HEADS,
    WeightsMismatch,
    build_config,
    describe_config,
    implied_config,
    layout_of,
    read_config_json,
)

# The public names: this module's own, and those of the other rooms that notebooks, prefetch
# and tests have always imported from here (each now lives in its room).
__all__ = [
    "CONFIG_FILE", "CONNECT_TIMEOUT_S", "GPT2_HEADS", "GPT2_REPOS", "WEIGHTS_FILE",
    "WeightsMismatch", "WeightsUnavailable", "base_model_dir", "check_safetensors",
    "download_gpt2", "gpt2_folder_name", "gpt2_weight_map", "load_base_model", "load_gpt2",
    "load_model", "load_notebook06_model", "resolve_gpt2_size",
]


# ---------------------------------------------------------------------------------------------
# The file's tensors, read lazily
# ---------------------------------------------------------------------------------------------


@dataclass
class _Tensors:
    """The names and shapes of a file's tensors, and ``get(name)`` to read one when needed."""

    path: Path
    shapes: dict[str, tuple[int, ...]]
    get: Callable[[str], torch.Tensor]
    tied_head: bool = False  # a .pth whose out_head.weight is the same tensor as tok_emb.weight
    # safetensors only: read a tensor's bytes straight into a parameter, and the file's dtypes
    read_into: Callable[[str, torch.Tensor], None] | None = None
    dtypes: dict[str, torch.dtype | None] | None = None


@contextlib.contextmanager
def _open_tensors(path: Path) -> Iterator[_Tensors]:
    """A safetensors file read by plain reads, or a ``.pth`` state dict (memory-mapped)."""
    if path.suffix == ".safetensors":
        with SafetensorsReader(path) as reader:
            yield _Tensors(
                path, reader.shapes, reader.get, read_into=reader.read_into, dtypes=reader.dtypes
            )
    else:
        state = _load_state_dict(path)
        head, emb = state.get("out_head.weight"), state.get("tok_emb.weight")
        tied = head is not None and emb is not None and head.data_ptr() == emb.data_ptr()
        yield _Tensors(path, {k: tuple(v.shape) for k, v in state.items()}, state.__getitem__, tied)


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A ``.pth``/``.pt`` state dict, safely (``weights_only``: no code runs) and memory-mapped
    where the file format allows it, so its tensors are read from disk only when copied."""
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # the legacy (pre-1.6) format cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, or whatever torch raises for a foreign file
        raise ValueError(
            f"{path} could not be read as a state dict of tensors ({type(err).__name__}); "
            "this project loads only weights (never pickled objects): save them with "
            "torch.save(model.state_dict(), path)."
        ) from err
    if isinstance(state, dict):  # a training checkpoint: {"model_state_dict": ..., ...}
        for key in ("model_state_dict", "state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict.")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _as_hf_names(tensors: _Tensors) -> _Tensors:
    """Drop the ``transformer.`` prefix that ``save_pretrained`` writes and the hub's files lack."""
    prefix = "transformer."
    original = {name.removeprefix(prefix): name for name in tensors.shapes}
    shapes = {short: tensors.shapes[name] for short, name in original.items()}
    read_into, dtypes = tensors.read_into, tensors.dtypes
    return _Tensors(
        tensors.path, shapes, lambda short: tensors.get(original[short]),
        read_into=read_into and (lambda short, out: read_into(original[short], out)),
        dtypes=dtypes and {short: dtypes[name] for short, name in original.items()},
    )


# ---------------------------------------------------------------------------------------------
# Which file tensor fills which parameter, and whether they all fit
# ---------------------------------------------------------------------------------------------


def _weight_map(
    model: GPTModel, tensors: _Tensors, layout: str, config_json: dict | None
) -> tuple[dict[str, Source], dict[str, tuple[int, ...]]]:
    """Each parameter -> its ``Source`` in the file, and the file tensors only checked for
    their shape (a copy of a tied matrix). Two parameters with one whole Source get tied.

    GPT-2 ties its head to ``wte``; a Hugging Face file may hold the head too
    (``lm_head.weight``): a copy, unless the config says ``tie_word_embeddings: false``.
    A tied GPTModel saved with safetensors keeps only one of the two names (safetensors refuses
    shared tensors); one saved with ``torch.save`` keeps both, sharing memory.
    """
    names = tensors.shapes
    head_shape = tuple(model.out_head.weight.shape)
    if layout == "hf":
        weights = gpt2_weight_map(len(model.trf_blocks))
        if "lm_head.weight" not in names:
            return weights, {}
        if (config_json or {}).get("tie_word_embeddings") is False:  # a head of its own
            weights["out_head.weight"] = Source("lm_head.weight")
            return weights, {}
        return weights, {"lm_head.weight": head_shape}
    weights = {name: Source(name) for name, _ in model.named_parameters()}  # same names
    has_embedding, has_head = "tok_emb.weight" in names, "out_head.weight" in names
    if tensors.tied_head:  # both names, one tensor: read it once
        weights["out_head.weight"] = Source("tok_emb.weight")
        return weights, {"out_head.weight": head_shape}
    if has_embedding and not has_head:  # stored once, under the embedding's name
        weights["out_head.weight"] = Source("tok_emb.weight")
    elif has_head and not has_embedding:  # stored once, under the head's name
        weights["tok_emb.weight"] = Source("out_head.weight")
    return weights, {}


def _ignored(name: str) -> bool:
    """Tensors in a file that are not weights: the causal masks GPT-2 and the book store."""
    return bool(re.fullmatch(r"h\.\d+\.attn\.(masked_)?bias|trf_blocks\.\d+\.att\.mask", name))


def _check(
    tensors: _Tensors,
    weights: dict[str, Source],
    checked_only: dict[str, tuple[int, ...]],
    model: GPTModel,
    cfg: dict,
    layout: str,
) -> None:
    """Raise ``WeightsMismatch`` naming every tensor that differs, is missing or unexpected."""
    params = dict(model.named_parameters())
    expected: dict[str, tuple[int, ...]] = {}  # file tensor -> its shape, in the map's order
    for target, source in weights.items():
        expected.setdefault(source.name, source.file_shape(params[target].shape))
    expected |= checked_only
    shapes = tensors.shapes
    differ = [
        f"{name}: file has {tuple(shapes[name])}, model expects {shape}"
        for name, shape in expected.items()
        if name in shapes and tuple(shapes[name]) != shape
    ]
    missing = [name for name in expected if name not in shapes]
    unexpected = [name for name in shapes if name not in expected and not _ignored(name)]
    if not (differ or missing or unexpected):
        return
    found = {"shapes differ": differ, "missing": missing, "unexpected": unexpected}
    problems = [f"{kind} ({len(items)}): {_first(items)}" for kind, items in found.items() if items]
    raise WeightsMismatch(
        f"The tensors in {tensors.path} do not fit a GPTModel with {describe_config(cfg)}; "
        f"{'; '.join(problems)}; the file implies "
        f"{describe_config(implied_config(shapes, layout))}."
    )


def _first(items: list[str], n: int = 5) -> str:
    more = f", ... and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


# ---------------------------------------------------------------------------------------------
# Filling the model, one file tensor at a time
# ---------------------------------------------------------------------------------------------


def _tie(model: GPTModel, weights: dict[str, Source]) -> None:
    """Parameters that take one file tensor whole become one parameter, as GPT-2's head and
    token embedding are. Done before anything is written: the memory ``to_empty`` gave the
    second one is released without ever having been touched (so never resident)."""
    first: dict[str, str] = {}  # file tensor -> the first parameter that takes it whole
    for target, source in weights.items():
        if source.transpose or source.third is not None:
            continue
        if source.name not in first:
            first[source.name] = target
            continue
        owner, _, leaf = target.rpartition(".")
        setattr(model.get_submodule(owner), leaf, model.get_parameter(first[source.name]))


def _fill(model: GPTModel, tensors: _Tensors, weights: dict[str, Source]) -> None:
    """Copy each file tensor into its parameter(s), reading one tensor at a time."""
    _tie(model, weights)
    params = dict(model.named_parameters(remove_duplicate=False))
    uses: dict[str, dict[int, tuple[torch.Tensor, Source]]] = {}  # a tied parameter once
    for target, source in weights.items():
        uses.setdefault(source.name, {})[id(params[target])] = (params[target], source)
    filled: set[int] = set()
    scratch = _Scratch()
    with torch.no_grad():
        for name, targets in uses.items():
            if _reads_straight_in(tensors, name, list(targets.values())):
                (param, _), = targets.values()
                tensors.read_into(name, param)
            else:
                tensor = scratch.read(tensors, name)  # c_attn: read once for all three
                for param, source in targets.values():
                    param.copy_(source.take(tensor))  # also casts dtype and device
                del tensor  # keep at most one file tensor in memory
            filled |= set(targets)
    unfilled = [name for name, param in params.items() if id(param) not in filled]
    if unfilled:  # a mapping bug would otherwise leave uninitialised memory in the model
        raise RuntimeError(f"Not loaded from the file: {', '.join(sorted(unfilled))}")


class _Scratch:
    """One reusable buffer for the file tensors that are transposed or split on their way in.

    A fresh tensor per read would do the same, but the C allocator keeps freed blocks of a
    few MB for reuse rather than returning them, and the process's memory creeps up.
    """

    def __init__(self):
        self.buffer: torch.Tensor | None = None

    def read(self, tensors: _Tensors, name: str) -> torch.Tensor:
        dtype = tensors.dtypes[name] if tensors.dtypes else None
        if tensors.read_into is None or dtype is None:
            return tensors.get(name)  # a .pth state dict (already in memory), or a bad dtype
        n = math.prod(tensors.shapes[name])
        if self.buffer is None or self.buffer.numel() < n or self.buffer.dtype != dtype:
            self.buffer = None  # free the old one first
            self.buffer = torch.empty(n, dtype=dtype)
        out = self.buffer[:n].view(tensors.shapes[name])
        tensors.read_into(name, out)
        return out


def _reads_straight_in(
    tensors: _Tensors, name: str, targets: list[tuple[torch.Tensor, Source]]
) -> bool:
    """Whether the file's bytes of ``name`` can go into its parameter unchanged: one parameter,
    no transpose, no split, same dtype, on the CPU (the embedding, the largest, always can)."""
    if tensors.read_into is None or len(targets) != 1:
        return False
    param, source = targets[0]
    return (
        not source.transpose and source.third is None
        and param.device.type == "cpu" and param.is_contiguous()
        and param.dtype == tensors.dtypes[name] and tuple(param.shape) == tensors.shapes[name]
    )


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _locate(path: Path) -> tuple[Path, Path]:
    """(weights file, config.json beside it) for a folder or a file."""
    if path.is_dir():
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            found = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
            pickled = (path / "pytorch_model.bin").exists()
            hint = " (pytorch_model.bin is a pickle: use safetensors)" if pickled else ""
            raise FileNotFoundError(
                f"{path} has no {WEIGHTS_FILE}{hint}; a model folder holds {CONFIG_FILE} + "
                f"{WEIGHTS_FILE} (found: {found})."
            )
        return weights, path / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No such file or folder: {path}")
    if path.suffix not in (".safetensors", ".pth", ".pt"):
        raise ValueError(f"{path}: expected a folder, a .safetensors file or a .pth state dict.")
    return path, path.with_name(CONFIG_FILE)


def load_model(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    *,
    config: dict | None = None,
    n_heads: int | None = None,
    drop_rate: float | None = None,
) -> GPTModel:
    """A ``GPTModel`` (in eval mode) with the weights in ``path``: a folder in Hugging Face's
    GPT-2 layout or ours (``config.json`` + ``model.safetensors``), a ``.safetensors`` file,
    or a ``.pth`` state dict with the book's parameter names.

    The config comes from ``config`` if given (the file must fit it), else ``config.json``,
    else the tensors' shapes (then ``n_heads`` is needed unless emb_dim is a GPT-2 size).
    ``dtype=None`` keeps the file's dtype; ``drop_rate`` defaults to the config's, else 0.1.
    """
    _check_load_options(config, dtype, n_heads, drop_rate)
    weights_file, config_file = _locate(Path(path))
    config_json = read_config_json(config_file) if weights_file.suffix == ".safetensors" else None
    with _open_tensors(weights_file) as tensors:
        layout = layout_of(tensors.shapes, tensors.path)
        if layout == "hf":
            tensors = _as_hf_names(tensors)
        cfg = build_config(
            tensors.shapes, tensors.path, layout, config_json, config, n_heads, drop_rate
        )
        # Everything is checked on shapes alone first: a file or config that does not fit (or
        # declares 10**12 elements) is refused before a byte of the model is allocated.
        source = "the config passed to load_model" if config is not None else (
            config_file if config_json is not None else f"The shapes in {tensors.path}")
        shapes = _shapes_only(cfg, source)
        if layout == "hf" and not cfg["qkv_bias"]:
            raise WeightsMismatch("GPT-2's query/key/value layers have biases: set qkv_bias=True.")
        weights, checked_only = _weight_map(shapes, tensors, layout, config_json)
        _check(tensors, weights, checked_only, shapes, cfg, layout)
        _check_masks_fit(cfg, tensors.path)
        model = empty_model(cfg, device, dtype or _file_dtype(tensors, layout))
        _fill(model, tensors, weights)
    return model.eval()


def _check_load_options(config, dtype, n_heads, drop_rate) -> None:
    """The keyword options of ``load_model``, checked before any file is opened."""
    if config is not None and not isinstance(config, dict):
        raise ValueError(
            f"config must be a dict such as GPT_CONFIG_124M, got {type(config).__name__}."
        )
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(
            f"dtype must be a floating-point torch dtype such as torch.bfloat16, got {dtype!r}."
        )
    if n_heads is not None:
        check_int(n_heads, "n_heads", minimum=1)
    if drop_rate is not None:
        check_number(drop_rate, "drop_rate", low=0, high=1, high_open=True)


def _shapes_only(cfg: dict, source) -> GPTModel:
    """The model as shapes only (no memory); a config it refuses is named by where it came from."""
    try:
        return shapes_only_model(cfg)
    except ValueError as err:
        raise ValueError(f"{source} does not describe a GPTModel: {err}") from None


def _file_dtype(tensors: _Tensors, layout: str) -> torch.dtype:
    """The dtype of the file's final norm, read from the header (no tensor is read): a model
    built without ``dtype=`` keeps the file's."""
    norm = "ln_f.weight" if layout == "hf" else "final_norm.scale"
    if norm not in tensors.shapes:
        return torch.float32
    if tensors.dtypes is not None:
        found = tensors.dtypes[norm]
    else:  # a .pth state dict, memory-mapped: its tensors know their dtype
        found = tensors.get(norm).dtype
    if found is None or not found.is_floating_point:
        raise WeightsMismatch(
            f"{tensors.path}: {norm} is not stored as floating-point numbers, so these are no "
            "model weights; delete the file and download or copy it again."
        )
    return found


def _check_masks_fit(cfg: dict, path: Path) -> None:
    """Each block builds a (context_length, context_length) float mask in memory. A file's
    weights only hold context_length x emb_dim numbers, so a small file with a huge
    context_length could ask for more memory than the machine has: refused, not attempted."""
    mask_bytes = cfg["n_layers"] * cfg["context_length"] ** 2 * 4
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): let torch try
        return
    if mask_bytes > memory:
        raise WeightsMismatch(
            f"{path}: context_length={cfg['context_length']:,} with {cfg['n_layers']} layers "
            f"needs {mask_bytes / 2**30:,.1f} GiB for the causal masks alone, more than this "
            f"machine's {memory / 2**30:,.1f} GiB; pass a config with a smaller context_length."
        )


def load_gpt2(
    source: str | os.PathLike = "gpt2-small (124M)",
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    *,
    config: dict | None = None,
    n_heads: int | None = None,
    drop_rate: float | None = None,
) -> GPTModel:
    """OpenAI's GPT-2 as a ``GPTModel`` in eval mode, its output head tied to the embedding.

    ``source``: a size ("gpt2-small (124M)" ... "gpt2-xl (1558M)", or "small", "124M", "gpt2",
    "medium", ...; see ``download_gpt2`` for where it comes from), or a path (``load_model``).
    A string that names a size is a size: write ``./gpt2`` for a folder called gpt2.
    A size is built with the book's config: ``gpt2_config(size)`` (``context_length=1024``)
    with ``qkv_bias=True``; ``drop_rate`` stays 0.1 as in ch. 5 (ch. 6-7 pass ``drop_rate=0.0``).
    Raises ``WeightsUnavailable`` when the weights can be neither found nor downloaded.
    """
    _check_source(source)
    options = {"config": config, "n_heads": n_heads, "drop_rate": drop_rate}
    if is_gpt2_size(source):
        size = resolve_gpt2_size(source)
        if config is None:
            # the book's NEW_CONFIG: context_length is 1024 already, GPT-2 has qkv biases
            options["config"] = {**gpt2_config(size), "qkv_bias": True}
        return load_model(download_gpt2(size), device, dtype, **options)
    path = Path(source)
    if not path.exists() and isinstance(source, str) and not re.search(r"[/\\.]", source):
        resolve_gpt2_size(source)  # neither a path nor a size: the error lists the sizes
    return load_model(path, device, dtype, **options)


def _check_source(source) -> None:
    """A size name or a path, and not an empty one (which would mean the current folder)."""
    if not isinstance(source, (str, os.PathLike)):
        hint = f" (did you mean '{source}M'?)" if isinstance(source, int) and source > 0 else ""
        raise ValueError(
            f"load_gpt2 takes a GPT-2 size such as 'gpt2-small (124M)' or a path, got "
            f"{source!r} ({type(source).__name__}){hint}."
        )
    if isinstance(source, str) and not source.strip():
        raise ValueError("load_gpt2 got an empty source: give a size such as 'small' or a path.")


# ---------------------------------------------------------------------------------------------
# The base models of notebooks 07-09: notebook 06's own model (07 always; 08-09 without GPT-2)
# ---------------------------------------------------------------------------------------------


def base_model_dir(profile=None) -> Path:
    """Where notebook 06 saves the model it pretrains on tinyshakespeare, one per profile."""
    from .runtime import active_profile

    return cache_dir() / "models" / f"base-{(profile or active_profile()).name}"


def load_notebook06_model(device="cpu", *, drop_rate=None) -> GPTModel:
    """The model notebook 06 pretrains on tinyshakespeare (``base_model_dir()``), in eval mode.

    A head saved tied to the token embedding comes back tied (``load_model_from_checkpoint``),
    so the model has as many parameters as when it was trained. ``drop_rate``, if
    given, replaces every dropout rate. Raises ``WeightsUnavailable`` when the folder is not
    there, saying to run notebook 06 once.
    """
    from .checkpoint import load_model_from_checkpoint

    folder = base_model_dir()
    if not (folder / WEIGHTS_FILE).is_file():
        raise WeightsUnavailable(
            f"The base model notebook 06 pretrains is not there ({folder.name} in the data "
            "folder): run notebook 06 once to create it."
        )
    if drop_rate is not None:
        check_number(drop_rate, "drop_rate", low=0, high=1, high_open=True)
    model = load_model_from_checkpoint(folder, map_location=device)  # tied as it was saved
    if drop_rate is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = drop_rate
    return model


def load_base_model(size: str = "gpt2-small (124M)", device="cpu", *, drop_rate=None):
    """GPT-2 of ``size`` if its weights can be had, else the model notebook 06 pretrained
    (``load_notebook06_model``).

    Prints one sentence saying which model it is. Returns ``(model, name)``. When neither is
    available, raises ``WeightsUnavailable`` saying to run notebook 06 first.
    """
    try:
        model = load_gpt2(size, device=device, drop_rate=drop_rate)
        print(f"Using OpenAI's {resolve_gpt2_size(size)} weights.")
        return model, resolve_gpt2_size(size)
    except WeightsUnavailable as err:
        try:
            model = load_notebook06_model(device, drop_rate=drop_rate)
        except WeightsUnavailable as missing:
            raise WeightsUnavailable(f"{err} {missing}") from None  # neither is there
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"GPT-2's weights are not available here, so this notebook uses the model notebook 06 "
            f"pretrained on tinyshakespeare ({n_params / 1e6:.1f}M parameters) instead."
        )
        return model, base_model_dir().name


if __name__ == "__main__":  # usage example: python -m helpers.weights [size or path]
    import sys

    from .model import generate_text_simple, text_to_token_ids, token_ids_to_text
    from .tokenizer import gpt2_tokenizer

    try:  # WeightsUnavailable is a DataError, as is a tokenizer file that cannot be fetched;
        # a bad size, path or file is a ValueError or FileNotFoundError: one line, no traceback
        gpt2 = load_gpt2(sys.argv[1] if len(sys.argv) > 1 else "gpt2-small (124M)")
        tokenizer = gpt2_tokenizer()
    except (DataError, ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    ids = text_to_token_ids("Every effort moves you", tokenizer)
    print(token_ids_to_text(generate_text_simple(gpt2, ids, 15, 1024), tokenizer))
