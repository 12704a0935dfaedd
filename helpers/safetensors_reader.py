"""Phase 06: a safetensors file read with plain file reads, one tensor at a time.

The format is an 8-byte little-endian header length, a JSON header (each tensor's dtype, shape
and byte range), then the bytes. Why not ``safetensors.safe_open``: it memory-maps the file,
and the pages it reads stay resident while a model fills, so the process briefly holds the
file *and* the model: twice the memory. Plain reads hold the model plus at most one tensor, or
nothing extra where a tensor goes unchanged into its parameter (``read_into``).

    with SafetensorsReader(path) as reader:
        reader.shapes["wte.weight"]                    # (50257, 768), from the header alone
        reader.read_into("wte.weight", param.data)     # the bytes straight into a tensor
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch

# safetensors' dtype names -> torch's (the ones a model checkpoint can hold)
SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
# Bytes per element of every dtype the format defines, so that each tensor's byte range can be
# checked against its shape, also for dtypes a GPTModel cannot hold (fp8, unsigned ints).
ITEM_SIZES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "BOOL": 1, "U64": 8, "U32": 4, "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
}
# The safetensors library refuses headers over 100 MB too; GPT-2 xl's is 40 kB.
MAX_HEADER_BYTES = 100_000_000


class SafetensorsReader:
    """The open file, its ``shapes`` and ``dtypes`` (None: a dtype torch cannot hold here),
    and ``read_into``/``get`` to read one tensor. The header is checked before anything is
    read or allocated (``check_header``): a file cut short, or a header that claims more
    bytes than the file has, tensors whose byte ranges overlap or do not match their shape
    and dtype, raise a ``ValueError`` that says so at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.file = open(self.path, "rb")
        try:
            header, self.data_start = read_header(self.file, self.path.stat().st_size)
        except ValueError as err:
            self.file.close()
            raise ValueError(
                f"{self.path} is not a readable safetensors file ({err}); it may be cut short "
                "or damaged: delete it and download or copy it again."
            ) from None
        self.entries = header
        self.shapes = {name: tuple(t["shape"]) for name, t in header.items()}
        self.dtypes = {name: SAFETENSORS_DTYPES.get(t["dtype"]) for name, t in header.items()}

    def read_into(self, name: str, out: torch.Tensor) -> None:
        """Read tensor ``name`` straight into ``out`` (CPU, contiguous, same dtype and size)."""
        begin, end = self.entries[name]["data_offsets"]
        buffer = out.detach().view(-1).view(torch.uint8).numpy()  # out's own bytes, writable
        self.file.seek(self.data_start + begin)
        if self.file.readinto(buffer) != end - begin:
            raise ValueError(f"{self.path} ended inside tensor {name}: it is cut short.")

    def get(self, name: str) -> torch.Tensor:
        """Tensor ``name`` as a new CPU tensor of the file's dtype."""
        if self.dtypes[name] is None:
            raise ValueError(
                f"{self.path}: tensor {name} is of dtype {self.entries[name]['dtype']}, "
                "which a GPTModel cannot hold."
            )
        out = torch.empty(self.shapes[name], dtype=self.dtypes[name])
        self.read_into(name, out)
        return out

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> SafetensorsReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_safetensors(path: str | Path) -> None:
    """Raise a ``ValueError`` saying what is wrong unless ``path`` is a complete safetensors
    file (reads only its header; a file cut short ends before its last tensor does)."""
    SafetensorsReader(path).close()


def read_header(file, size: int) -> tuple[dict, int]:
    """The header of the safetensors file ``file`` (open, at its start; ``size`` bytes long)
    without ``__metadata__``, and where its data starts; a ValueError saying what is wrong."""
    raw_length = file.read(8)
    if len(raw_length) < 8:
        raise ValueError(f"it is {size} bytes long, shorter than the 8-byte header length")
    (header_len,) = struct.unpack("<Q", raw_length)
    # checked before reading: a bad length could ask for exabytes
    if header_len > size - 8 or header_len > MAX_HEADER_BYTES:
        raise ValueError(f"its header claims {header_len:,} bytes of {size:,}")
    try:
        header = json.loads(file.read(header_len))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError("its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    header.pop("__metadata__", None)
    data_start = 8 + header_len
    check_header(header, size - data_start)
    return header, data_start


def check_header(header: dict, data_bytes: int) -> None:
    """Every tensor's dtype known, shape a list of whole numbers >= 0, and byte range inside
    the ``data_bytes`` after the header, exactly as long as its shape and dtype need; the
    ranges neither overlap nor leave bytes unused. Checked on numbers alone, before any tensor
    is read, so a header that declares 10**12 elements is refused, not allocated."""
    ranges = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise ValueError(f"tensor {name!r} lacks a dtype, shape or data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in ITEM_SIZES:
            raise ValueError(f"tensor {name!r} has the unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_whole(n) for n in shape):
            raise ValueError(f"tensor {name!r} has the shape {shape!r}, not a list of sizes")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_whole, offsets))):
            raise ValueError(f"tensor {name!r} has data_offsets {offsets!r}, not [begin, end]")
        begin, end = offsets
        if not begin <= end <= data_bytes:
            raise ValueError(
                f"tensor {name!r} claims bytes {begin:,}..{end:,} of the {data_bytes:,} there are"
            )
        needed = math.prod(shape) * ITEM_SIZES[dtype]
        if end - begin != needed:
            raise ValueError(
                f"tensor {name!r} of shape {tuple(shape)} and dtype {dtype} needs {needed:,} "
                f"bytes, but its data_offsets give {end - begin:,}"
            )
        ranges.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(ranges):
        if begin != position:
            what = "overlaps the tensor before it" if begin < position else "leaves a gap before it"
            raise ValueError(f"tensor {name!r} at byte {begin:,} {what}")
        position = end
    if position != data_bytes:
        raise ValueError(f"{data_bytes:,} bytes of data where its header says {position:,}")


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
