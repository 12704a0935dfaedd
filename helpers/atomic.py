"""Writing files so that a crash, a full disk or Ctrl-C never leaves half a file behind.

Every file the project saves for the user (checkpoints, LoRA adapters, downloads, model
responses, progress files) goes through here: it is written under a temporary name beside
its target, forced to disk, and renamed over the target in one step. The target holds either
the old complete file or the new complete one, never a mix; on any error the temporary file
is removed and the error raised.

    with atomic_path("adapters.safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_json_atomically("responses.json", entries, indent=4)
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

__all__ = ["fsync", "atomic_path", "write_bytes_atomically", "write_json_atomically"]


def fsync(path) -> None:
    """Force a file (or a folder's entries) to disk, so a power cut cannot undo a rename."""
    path = Path(path)
    flags = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # Windows cannot open folders; its renames are durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target):
    """Yield a temporary path beside ``target``; write the file there. When the block ends
    without error it is renamed over ``target``; otherwise it is deleted."""
    target = Path(target)
    if target.is_dir():  # os.replace would fail only after the whole file was written
        raise IsADirectoryError(f"Cannot write {target}: it is a folder. Give a file name inside it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    # hidden, and unique per process: two processes saving at once do not share it
    temporary = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        yield temporary
        fsync(temporary)
        os.replace(temporary, target)
    except BaseException:  # also KeyboardInterrupt
        temporary.unlink(missing_ok=True)
        raise
    fsync(target.parent)


def write_bytes_atomically(target, data: bytes) -> Path:
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)
    return Path(target)


def write_json_atomically(target, data, indent: int = 2) -> Path:
    """``data`` as JSON at ``target``; data that JSON cannot hold (a tensor, a set) is a
    ValueError naming the file, raised before anything is written."""
    try:
        text = json.dumps(data, indent=indent) + "\n"
    except (TypeError, ValueError) as err:
        raise ValueError(f"Cannot save {target} as JSON: {err}.") from None
    with atomic_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(target)
