"""Phase 07, LoRA (low-rank adaptation): fine-tune a few million numbers instead of all of them.

Instead of updating a weight matrix W (in × out) directly, LoRA learns a low-rank update
ΔW = A·B, with A (in × r) and B (r × out) for a small rank r, and adds its effect to the
frozen layer's output::

    y = x·W + scaling · x·A·B,        scaling = alpha / r

B starts at zero, so right after ``replace_linear_with_lora`` the model computes exactly what
it did before; training then moves only A and B. A starts random (as nn.Linear initialises
its weight), so B gets a non-zero gradient at once. After training the update can be folded
into the weights (``merge_lora``), so the fine-tuned model is as fast as the original.

Scaling: we follow the LoRA paper (Hu et al. 2021), ``alpha / rank``, so rank 16 with alpha 16
scales by 1, and changing the rank does not change how strongly the update counts. The book's
appendix E code multiplies by ``alpha`` alone; with its rank 16, alpha 16 that update is 16×
larger, which its learning rate absorbs. ``LoRALayer.scaling`` is read at every call, so an
alpha loaded from an adapter file takes effect at once.

A ``LinearWithLoRA`` also answers ``weight``, ``bias``, ``in_features`` and ``out_features``
with its ``.linear``'s (``LinearAttributes``), because code that reads a layer's size or
weight, such as ``helpers.checkpoint.gpt_config_of`` when a checkpoint records the model's
config, or ``helpers.classify.add_classification_head``, must work on a wrapped model too.

The pieces::

    LoRALayer                  the trainable pair A, B and its scaling alpha / rank
    LinearWithLoRA             a frozen nn.Linear plus a LoRALayer, outputs added
    LinearAttributes           a wrapped layer's weight, bias and sizes, read through .linear
    replace_linear_with_lora   swap every nn.Linear in a model for a LinearWithLoRA
    mark_only_lora_trainable   freeze the base weights, train only A and B
    lora_parameter_count       what that costs, by formula: r · (in + out) per adapted layer
    merge_lora                 fold A·B back into plain nn.Linear layers
    save_lora_adapters / load_lora_adapters   only A and B, a file of a few MB, safetensors

Usage (the book's spam classifier, appendix E: 124,441,346 parameters, 2,666,528 trainable)::

    model.out_head = nn.Linear(768, 2)
    replace_linear_with_lora(model, rank=16, alpha=16)
    mark_only_lora_trainable(model)
    count_trainable_parameters(model)                 # 2,666,528
    save_lora_adapters(model, "spam-lora.safetensors")
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import atomic_path
from .checkpoint import mismatch_report
from .model import check_config
from .validate import check_can_write, check_int, did_you_mean

FORMAT = "llm-from-scratch lora adapters"
VERSION = 1
# Which part of a GPTModel a Linear layer belongs to, for counting adapters by group.
LORA_TARGETS = ("attention", "feed-forward", "output head")


class LoRAError(ValueError):
    """A LoRA adapter file does not fit the model it is loaded into."""


def _check_rank_alpha(rank, alpha) -> None:
    """Raise a ``ValueError`` that says what is wrong with a rank or alpha."""
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1:
        raise ValueError(
            f"LoRA rank must be a whole number >= 1 (the inner size of A·B), got {rank!r}."
        )
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, numbers.Real)
        or not 0 < alpha < math.inf  # NaN and infinity fail too
    ):
        raise ValueError(
            f"LoRA alpha must be a finite number > 0 (it scales the update by alpha / rank), "
            f"got {alpha!r}."
        )


# ---------------------------------------------------------------------------------------------
# The layers
# ---------------------------------------------------------------------------------------------


class LoRALayer(nn.Module):
    """The low-rank update x·A·B, scaled by alpha / rank (the module docstring says why).
    B starts at zero, so the update is zero until training moves it."""

    def __init__(self, in_dim: int, out_dim: int, rank: int, alpha: float):
        super().__init__()
        _check_rank_alpha(rank, alpha)
        self.rank, self.alpha = int(rank), alpha
        self.A = nn.Parameter(torch.empty(in_dim, self.rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as nn.Linear initialises its weight
        self.B = nn.Parameter(torch.zeros(self.rank, out_dim))

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (x·A)·B, never x·(A·B): the narrow middle is what makes LoRA cheap
        return self.scaling * ((x @ self.A) @ self.B)


class LinearAttributes:
    """``weight``, ``bias``, ``in_features``, ``out_features`` of the wrapped ``self.linear``,
    for code that reads them off a layer (see the module docstring); and in ``print(model)``
    each adapter's rank and alpha."""

    weight = property(lambda self: self.linear.weight)
    bias = property(lambda self: self.linear.bias)
    in_features = property(lambda self: self.linear.in_features)
    out_features = property(lambda self: self.linear.out_features)

    def extra_repr(self) -> str:
        return f"rank={self.lora.rank}, alpha={self.lora.alpha}"


class LinearWithLoRA(LinearAttributes, nn.Module):
    """A frozen ``nn.Linear`` plus a ``LoRALayer``: ``linear(x) + lora(x)``."""

    def __init__(self, linear: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.linear = linear
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha)
        # on the linear layer's device and dtype: a model already on the GPU stays there
        self.lora.to(device=linear.weight.device, dtype=linear.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.lora(x)


def replace_linear_with_lora(model: nn.Module, rank: int, alpha: float) -> nn.Module:
    """Replace every ``nn.Linear`` inside ``model`` (the output head too) by a
    ``LinearWithLoRA`` wrapping it, in place; return ``model``.

    Walks the children recursively, as the book does. Layers already wrapped are left alone,
    so calling it twice does not stack two adapters on one layer.
    """
    _check_rank_alpha(rank, alpha)
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"replace_linear_with_lora needs a torch model (nn.Module), got {type(model).__name__}."
        )
    for name, child in model.named_children():
        if isinstance(child, nn.Linear):
            setattr(model, name, LinearWithLoRA(child, rank, alpha))
        elif not isinstance(child, LinearWithLoRA):
            replace_linear_with_lora(child, rank, alpha)
    return model


def lora_layers(model: nn.Module) -> dict[str, LinearWithLoRA]:
    """``{module name: LinearWithLoRA}`` for every adapted layer of ``model``, in model order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LinearWithLoRA)}


# ---------------------------------------------------------------------------------------------
# What trains
# ---------------------------------------------------------------------------------------------


def freeze(model: nn.Module) -> nn.Module:
    """Stop gradients for every parameter of ``model``; return it.

    The book freezes first, then adds the LoRA layers, whose new parameters train by default.
    """
    for param in model.parameters():
        param.requires_grad = False
    return model


def mark_only_lora_trainable(model: nn.Module) -> nn.Module:
    """Train the LoRA matrices A and B only: every other parameter is frozen; return ``model``.

    Works in either order relative to ``replace_linear_with_lora`` (unlike ``freeze`` alone,
    it also switches A and B back on if something froze them).
    """
    freeze(model)
    for layer in lora_layers(model).values():
        layer.lora.A.requires_grad = True
        layer.lora.B.requires_grad = True
    return model


def count_trainable_parameters(model: nn.Module) -> int:
    """Parameters that receive gradients (``requires_grad``); shared tensors counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _target_of(name: str) -> str:
    """Which of ``LORA_TARGETS`` a GPTModel layer name belongs to ("other" if none)."""
    parts = name.split(".")
    if parts[0] == "out_head":
        return "output head"
    if "att" in parts:
        return "attention"
    if "ff" in parts:
        return "feed-forward"
    return "other"


def _selected_targets(which) -> set[str] | None:
    """``which`` as a set of target names; ``None`` means every Linear layer."""
    if which == "all":
        return None
    if isinstance(which, str):
        chosen = {which}
    elif isinstance(which, Iterable) and all(isinstance(name, str) for name in which):
        chosen = set(which)
    else:
        raise ValueError(
            f"which must be 'all', one of {LORA_TARGETS} or a list of them, got {which!r}."
        )
    if not chosen:
        raise ValueError(f"which is empty: choose 'all' or from {LORA_TARGETS}.")
    unknown = chosen - set(LORA_TARGETS)
    if unknown:
        hints = ", ".join(f"{name!r}{did_you_mean(name, LORA_TARGETS)}" for name in sorted(unknown))
        raise ValueError(
            f"Unknown LoRA target(s) {hints}; choose 'all' or from {LORA_TARGETS}."
        )
    return chosen


def _linear_shapes_of_config(cfg: dict, num_classes: int | None) -> Iterable[tuple[str, int, int]]:
    """(target, in_features, out_features) of every Linear layer a ``GPTModel(cfg)`` has."""
    d = cfg["emb_dim"]
    for _ in range(cfg["n_layers"]):
        for _projection in ("W_query", "W_key", "W_value", "out_proj"):
            yield "attention", d, d
        yield "feed-forward", d, 4 * d
        yield "feed-forward", 4 * d, d
    yield "output head", d, cfg["vocab_size"] if num_classes is None else num_classes


def lora_parameter_count(
    cfg_or_model, rank: int, which="all", num_classes: int | None = None
) -> int:
    """Trainable LoRA parameters at ``rank``, by formula: r · (in + out) per adapted Linear.

    ``cfg_or_model``: a GPT config (counted without building anything) or a model (its
    ``nn.Linear`` layers, wrapped or not, are counted). ``which``: ``"all"`` (every Linear,
    as ``replace_linear_with_lora`` does), one of ``LORA_TARGETS`` or a list of them.
    ``num_classes``: for a config, the output head maps to that many classes instead of the
    vocabulary (the book's spam classifier has 2). Biases are not adapted, so never counted.

        >>> lora_parameter_count({**GPT_CONFIG_124M, "qkv_bias": True}, 16, num_classes=2)
        2666528
    """
    _check_rank_alpha(rank, 1)
    targets = _selected_targets(which)
    if num_classes is not None:
        check_int(num_classes, "num_classes", minimum=1)
    if isinstance(cfg_or_model, nn.Module):
        if num_classes is not None:
            raise ValueError("num_classes is for configs; a model's head has its own size.")
        shapes = [
            (_target_of(name), m.in_features, m.out_features)
            for name, m in cfg_or_model.named_modules()
            if isinstance(m, nn.Linear)  # a LinearWithLoRA's .linear, or a plain layer
        ]
    else:
        check_config(cfg_or_model)
        shapes = list(_linear_shapes_of_config(cfg_or_model, num_classes))
    return sum(
        rank * (n_in + n_out)
        for target, n_in, n_out in shapes
        if targets is None or target in targets
    )


# ---------------------------------------------------------------------------------------------
# Merging: the update folded into the weights
# ---------------------------------------------------------------------------------------------


def merged_linear(layer: LinearWithLoRA) -> nn.Linear:
    """A plain ``nn.Linear`` computing what ``layer`` computes: W + (scaling · A·B)ᵀ.

    nn.Linear stores its weight as (out, in) and computes x·Wᵀ, while A·B is (in, out): hence
    the transpose. The new layer has the old one's device, dtype, bias and trainability.
    """
    base = layer.linear
    merged = nn.Linear(
        base.in_features,
        base.out_features,
        bias=base.bias is not None,
        device=base.weight.device,
        dtype=base.weight.dtype,
    )
    with torch.no_grad():
        lora = layer.lora
        merged.weight.copy_(base.weight + (lora.scaling * (lora.A @ lora.B)).T)
        if base.bias is not None:
            merged.bias.copy_(base.bias)
    merged.requires_grad_(base.weight.requires_grad)
    return merged


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every ``LinearWithLoRA`` in ``model`` by its merged ``nn.Linear``, in place;
    return ``model``. The outputs stay the same (up to rounding) and inference costs nothing
    extra; the adapters cannot be taken out again, so save them first if you need them."""
    for name, child in model.named_children():
        if isinstance(child, LinearWithLoRA):
            setattr(model, name, merged_linear(child))
        else:
            merge_lora(child)
    return model


# ---------------------------------------------------------------------------------------------
# Saving and loading the adapters alone
# ---------------------------------------------------------------------------------------------


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the LoRA tensors, under their names in ``model.state_dict()``
    (e.g. ``trf_blocks.0.att.W_query.lora.A``)."""
    tensors = {}
    for name, layer in lora_layers(model).items():
        tensors[f"{name}.lora.A"] = layer.lora.A.detach()
        tensors[f"{name}.lora.B"] = layer.lora.B.detach()
    return tensors


def _adapter_info(model: nn.Module) -> dict:
    """The JSON header of an adapter file: format, rank and alpha (per layer, and overall)."""
    layers = {
        name: {"rank": m.lora.rank, "alpha": m.lora.alpha} for name, m in lora_layers(model).items()
    }
    ranks = {v["rank"] for v in layers.values()}
    alphas = {v["alpha"] for v in layers.values()}
    return {
        "format": FORMAT,
        "version": VERSION,
        "rank": ranks.pop() if len(ranks) == 1 else None,  # None: the layers differ
        "alpha": alphas.pop() if len(alphas) == 1 else None,
        "layers": layers,
    }


def save_lora_adapters(model: nn.Module, path) -> Path:
    """Write only the LoRA matrices of ``model`` to a safetensors file at ``path``; return it.

    The file's header carries a small JSON (rank, alpha and the adapted layers' names), so
    ``load_lora_adapters`` can check that it fits before touching the model. It is written to
    a temporary file first and renamed into place: a crash never leaves half a file.
    """
    layers = lora_layers(model)
    if not layers:
        raise LoRAError(
            "The model has no LoRA layers to save; call replace_linear_with_lora(model, rank, "
            "alpha) and train it first."
        )
    check_can_write(path, "the adapter file path")
    tensors = {name: t.cpu().contiguous() for name, t in lora_state_dict(model).items()}
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata={"lora": json.dumps(_adapter_info(model))})
    return Path(path)


def read_lora_info(path) -> dict:
    """The JSON header of an adapter file (``rank``, ``alpha``, ``layers``), without loading it.

    Everything in it is checked (``check_lora_info``): it comes from a file, and a rank or
    alpha from a damaged or hand-edited header would scale the model's update silently.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No LoRA adapter file at {path}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise LoRAError(_unreadable(path, err)) from None
    try:
        info = json.loads(metadata.get("lora", "{}"))
    except json.JSONDecodeError as err:
        raise LoRAError(
            f"{path}: the LoRA header is damaged (not valid JSON: {err.msg}). Save the adapters "
            "again with save_lora_adapters."
        ) from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise LoRAError(f"{path} is not a LoRA adapter file written by save_lora_adapters.")
    check_lora_info(info, path)
    return info


def _unreadable(path: Path, err: Exception) -> str:
    return (
        f"{path} cannot be read as a safetensors file ({err}): it is truncated or damaged. "
        "Save the adapters again with save_lora_adapters, or copy the file again."
    )


def _is_count(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _is_alpha(value) -> bool:
    return (
        isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value < math.inf
    )


def check_lora_info(info: dict, path) -> None:
    """Raise a ``LoRAError`` for an adapter header whose version, rank, alpha or layer list
    is not what ``save_lora_adapters`` writes (naming the first bad field)."""
    version = info.get("version")
    if not _is_count(version):
        raise LoRAError(f"{path}: the adapter format version {version!r} is not a number >= 1.")
    if version > VERSION:
        raise LoRAError(
            f"{path} uses adapter format version {version}; this code reads up to "
            f"{VERSION}. Update the helpers package."
        )
    problems = []
    if info.get("rank") is not None and not _is_count(info["rank"]):
        problems.append(f"rank {info['rank']!r} is not a whole number >= 1")
    if info.get("alpha") is not None and not _is_alpha(info["alpha"]):
        problems.append(f"alpha {info['alpha']!r} is not a finite number > 0")
    layers = info.get("layers")
    if not isinstance(layers, dict) or not layers:
        problems.append(f"'layers' should name the adapted layers, got {layers!r:.60}")
    else:
        problems += [
            f"layer {name!r}: {problem}"
            for name, entry in layers.items()
            for problem in _layer_entry_problems(entry)
        ]
    if problems:
        raise LoRAError(
            f"{path}: the LoRA header is not valid: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            + ". Save the adapters again with save_lora_adapters."
        )


def _layer_entry_problems(entry) -> list[str]:
    if not isinstance(entry, dict):
        return [f"{entry!r:.40} is not a {{'rank': ..., 'alpha': ...}} entry"]
    problems = []
    if not _is_count(entry.get("rank")):
        problems.append(f"rank {entry.get('rank')!r} is not a whole number >= 1")
    if not _is_alpha(entry.get("alpha")):
        problems.append(f"alpha {entry.get('alpha')!r} is not a finite number > 0")
    return problems


def _check_tensors_match_info(tensors: dict, info: dict, path: Path) -> None:
    """Each adapted layer of the file has its A and B, finite floats, of the header's rank;
    and the header names exactly those layers (its alpha is the one the layer will take)."""
    layers = info["layers"]
    in_tensors = {name.rsplit(".lora.", 1)[0] for name in tensors if ".lora." in name}
    unnamed, tensorless = sorted(in_tensors - layers.keys()), sorted(layers.keys() - in_tensors)
    problems = [f"{name}: no rank and alpha in the header" for name in unnamed]
    problems += [f"{name}: in the header but no tensors" for name in tensorless]
    for name, tensor in tensors.items():
        if not tensor.dtype.is_floating_point:
            problems.append(f"{name}: {tensor.dtype}, not floating point")
        elif not bool(torch.isfinite(tensor).all()):
            problems.append(f"{name}: contains NaN or infinite values")
    for name in sorted(in_tensors & set(layers)):
        a, b = tensors.get(f"{name}.lora.A"), tensors.get(f"{name}.lora.B")
        rank = layers[name]["rank"]
        if a is None or b is None or a.dim() != 2 or b.dim() != 2:
            problems.append(f"{name}: needs a 2-D lora.A and lora.B")
        elif a.shape[1] != rank or b.shape[0] != rank:
            problems.append(
                f"{name}: A {tuple(a.shape)} and B {tuple(b.shape)} are not of the header's "
                f"rank {rank}"
            )
    if problems:
        raise LoRAError(
            f"The LoRA adapter file {path} is inconsistent, so nothing was loaded:\n  "
            + "\n  ".join(problems[:20])
            + "\nSave the adapters again with save_lora_adapters."
        )


def _check_adapters_fit(tensors: dict, model: nn.Module, path: Path, info: dict) -> None:
    """Raise a ``LoRAError`` naming every tensor that is missing, extra or shaped otherwise."""
    expected = lora_state_dict(model)
    if not expected:
        raise LoRAError(
            f"The model has no LoRA layers to load {path} into; first call "
            f"replace_linear_with_lora(model, rank={info.get('rank')}, alpha={info.get('alpha')})."
        )
    problems = mismatch_report(tensors, expected, "file")
    if problems:
        raise LoRAError(
            f"The LoRA adapters in {path} do not fit this model:\n  "
            + "\n  ".join(problems[:20])
            + f"\nThey were saved with rank {info.get('rank')} and alpha {info.get('alpha')}; "
            "build the same base model and call replace_linear_with_lora with that rank."
        )


def load_lora_adapters(model: nn.Module, path, map_location=None) -> dict:
    """Load adapters saved by ``save_lora_adapters`` into ``model``; return the file's info.

    ``model`` must already have had ``replace_linear_with_lora`` applied with the file's rank
    (on the same base model); otherwise a ``LoRAError`` names the tensors that do not fit, and
    the model is left unchanged. Each layer takes the file's alpha, since A and B were trained
    with that scaling. Tensors land on the model's device (``map_location`` to read elsewhere
    first).
    """
    path = Path(path)
    info = read_lora_info(path)
    try:
        tensors = load_file(str(path), device=str(map_location or "cpu"))
    except (SafetensorError, OSError, ValueError) as err:
        raise LoRAError(_unreadable(path, err)) from None
    except RuntimeError as err:  # torch: an unknown or unavailable device
        raise LoRAError(f"Cannot load {path} onto map_location={map_location!r}: {err}") from None
    _check_tensors_match_info(tensors, info, path)
    _check_adapters_fit(tensors, model, path, info)
    with torch.no_grad():  # everything is checked: from here on nothing can fail halfway
        for name, layer in lora_layers(model).items():
            layer.lora.A.copy_(tensors[f"{name}.lora.A"])
            layer.lora.B.copy_(tensors[f"{name}.lora.B"])
            layer.lora.alpha = info["layers"][name]["alpha"]
    return info


if __name__ == "__main__":  # usage example: python -m helpers.lora
    import tempfile

    from .model import GPT_CONFIG_124M, GPTModel, count_parameters

    cfg = {**GPT_CONFIG_124M, "qkv_bias": True}
    print("by formula, rank 16, 2 classes:", f"{lora_parameter_count(cfg, 16, num_classes=2):,}")
    tiny = {**cfg, "vocab_size": 50, "context_length": 8, "emb_dim": 16, "n_heads": 2}
    tiny["n_layers"] = 1
    torch.manual_seed(123)
    model = GPTModel(tiny).eval()
    ids = torch.tensor([[1, 2, 3, 4]])
    before = model(ids)
    mark_only_lora_trainable(replace_linear_with_lora(model, rank=4, alpha=4))
    print(f"{count_trainable_parameters(model):,} of {count_parameters(model):,} trainable")
    print("unchanged while B = 0:", torch.equal(before, model(ids)))
    with tempfile.TemporaryDirectory() as folder:
        saved = save_lora_adapters(model, Path(folder) / "tiny.safetensors")
        print(saved.name, saved.stat().st_size, "bytes")
