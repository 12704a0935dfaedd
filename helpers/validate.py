"""Checking what a user passes in, before any work starts, with errors that say what to do.

Every error reads the same way: what is wrong, which setting or file, and what to do about it.
The checks run at the top of each entry point (training loops, the command-line tools), so a
bad value costs a second, not a finished training run::

    check_int(num_epochs, "num_epochs", minimum=1)          # ValueError: num_epochs must be ...
    check_number(train_ratio, "train_ratio", low=0, high=1, low_open=True)
    check_known_keys(cfg, GPT_CONFIG_124M, "the model config")   # 'n_layer': did you mean 'n_layers'?
    check_can_write("checkpoints/run1", "checkpoint_path", folder=True)
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
from pathlib import Path

__all__ = ["check_int", "check_number", "check_known_keys", "did_you_mean", "check_can_write"]


def check_int(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int, if it is a whole number in [minimum, maximum]; else a ValueError.

    ``True``/``False`` and floats are refused even where they would convert: ``epochs=2.5`` or
    ``"3"`` is a mistake to point out, not to round.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a whole number, got {value!r} ({type(value).__name__}).")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}.")
    return int(value)


def check_number(
    value,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float, if it is a finite real number within the bounds; else a ValueError.

    ``low_open``/``high_open``: the bound itself is excluded (``(0, 1]`` is ``low=0,
    low_open=True, high=1``). NaN, infinities, strings such as ``"0.1"`` and bools are refused.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r} ({type(value).__name__}).")
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        bounds = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must be in {bounds}, got {value!r}.")
    return float(value)


def did_you_mean(word: str, choices) -> str:
    """`` (did you mean 'n_layers'?)`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_known_keys(data: dict, known, what: str) -> None:
    """Refuse keys of ``data`` that are not in ``known``: a misspelt key is otherwise ignored
    silently, and the default it meant to change stays in force."""
    unknown = [key for key in data if key not in known]
    if unknown:
        hints = "; ".join(f"{key!r}{did_you_mean(key, known)}" for key in unknown)
        raise ValueError(
            f"Unknown key{'s' if len(unknown) > 1 else ''} in {what}: {hints}. "
            f"The keys it takes are: {', '.join(map(str, known))}."
        )


def check_can_write(target, name: str, *, folder: bool = False) -> Path:
    """Make sure ``target`` (a file, or with ``folder=True`` a folder) can be written later.

    Called before training starts, so a typo in a path fails now rather than after the last
    step. Creates the missing parent folders and writes (then removes) a probe file beside
    the target: that is the only test that also holds for network drives, read-only mounts
    and permissions. ``name`` is the setting the path came from, for the message.
    """
    target = Path(target).expanduser()
    if folder and target.exists() and not target.is_dir():
        raise ValueError(f"{name}: {target} is a file, and a folder is needed there. Choose another path.")
    if not folder and target.is_dir():
        raise ValueError(f"{name}: {target} is a folder; give a file name inside it.")
    for parent in target.parents:  # a file where a folder must be: "results.txt/run1"
        if parent.exists() and not parent.is_dir():
            raise ValueError(
                f"{name}: cannot write {target}, because {parent} is a file, not a folder. "
                "Choose another path."
            )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        probe = target.parent / f".{target.name}.{os.getpid()}.write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ValueError(
            f"{name}: cannot write to {target.parent} ({reason}). Choose a folder you can "
            "write to, or fix its permissions."
        ) from None
    return target
