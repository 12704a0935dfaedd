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
import struct
from pathlib import Path

import torch

# safetensors' dtype names -> torch's (the ones a model checkpoint can hold)
SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


class SafetensorsReader:
    """The open file, its ``shapes`` and ``dtypes`` (None: a dtype torch cannot hold here),
    and ``read_into``/``get`` to read one tensor. A file cut short, or whose header claims
    more bytes than the file has, raises a ``ValueError`` that says so at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.file = open(self.path, "rb")
        try:
            size = self.path.stat().st_size
            (header_len,) = struct.unpack("<Q", self.file.read(8))
            if header_len > size:  # checked before reading: a bad length could ask for exabytes
                raise ValueError(f"its header claims {header_len:,} bytes of {size:,}")
            header = json.loads(self.file.read(header_len))
            header.pop("__metadata__", None)
            self.data_start = 8 + header_len
            end = self.data_start + max((t["data_offsets"][1] for t in header.values()), default=0)
            if end != size:
                raise ValueError(f"{size:,} bytes where its header says {end:,}")
        except (struct.error, ValueError, KeyError, TypeError) as err:
            self.file.close()
            raise ValueError(
                f"{self.path} is not a readable safetensors file ({err}); it may be cut short: "
                "delete it and download or copy it again."
            ) from err
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
