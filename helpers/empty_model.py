"""Phase 06: a ``GPTModel`` with memory for its weights, but none of it initialised.

A loader overwrites every weight, so the random initialisation ``GPTModel(cfg)`` does would be
time and memory spent for nothing. ``empty_model`` builds the model on PyTorch's ``meta``
device (shapes only, no memory), then ``to_empty`` allocates each tensor once, uninitialised,
and the causal masks (buffers, which no file holds) are computed for real.

On the meta device three calls still cost something: ``nn.init.normal_`` (the embeddings),
``torch.triu`` (the causal masks) and ``torch.empty_like`` (``to_empty``) run PyTorch's Python
meta kernels, whose first use imports ~50-70 MB of decompositions (and sympy) that a load would
then hold for nothing. ``_ShapesOnly`` answers them from the shapes alone. It is a
``TorchFunctionMode``, as ``torch.device("meta")`` is itself: it sits on this thread's mode
stack for the ``with`` block only, so no function of ``torch.nn.init`` or of this package is
replaced, and other threads build and initialise models as usual.
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

from .attention import causal_mask
from .model import GPTModel


class _ShapesOnly(TorchFunctionMode):
    """While active, for a meta tensor: ``torch.nn.init``'s in-place fills leave it as it is,
    ``torch.triu`` gives an empty tensor of its shape (the masks are rebuilt afterwards), and
    ``torch.empty_like`` a plain ``torch.empty`` (the same for contiguous parameters)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensor = args[0] if args else kwargs.get("tensor", kwargs.get("input"))
        if isinstance(tensor, torch.Tensor) and tensor.is_meta:
            # normal_, uniform_, kaiming_uniform_, ...: fill in place and return the tensor
            if getattr(func, "__module__", None) == "torch.nn.init" and func.__name__.endswith("_"):
                return tensor
            if func is torch.triu:
                return torch.empty(tensor.shape, dtype=tensor.dtype, device="meta")
            plain = set(kwargs) <= {"device", "dtype"} and tensor.is_contiguous()
            if func is torch.empty_like and plain:
                dtype, device = kwargs.get("dtype") or tensor.dtype, kwargs.get("device") or "meta"
                return torch.empty(tensor.shape, dtype=dtype, device=device)
        return func(*args, **kwargs)


def shapes_only_model(cfg: dict) -> GPTModel:
    """A GPTModel on the ``meta`` device: its parameters' names and shapes, no memory at all.
    A loader checks a file against it before ``empty_model`` allocates anything, so a file
    whose shapes do not fit costs no memory (a config may ask for terabytes)."""
    with _ShapesOnly(), torch.device("meta"):
        return GPTModel(cfg)


def empty_model(
    cfg: dict, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> GPTModel:
    """A GPTModel whose parameters are allocated on ``device`` in ``dtype``, not initialised
    (fill every one before use); its causal masks are the real ones."""
    with _ShapesOnly():
        with torch.device("meta"):
            model = GPTModel(cfg)
        model = model.to(dtype=dtype).to_empty(device=device)
    for module in model.modules():  # buffers come uninitialised too: rebuild the causal masks
        if isinstance(getattr(module, "mask", None), torch.Tensor):
            module.mask.copy_(causal_mask(module.mask.shape[0]))
    return model
