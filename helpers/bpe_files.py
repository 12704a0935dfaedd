"""``BPETokenizer.save`` and ``BPETokenizer.load``: a tokenizer as one readable JSON file.

A tokenizer is data as much as code: its merges, in order, are everything it learnt. The file
holds, one key per line and one merge per line::

    {
      "format": "helpers.tokenizer.BPETokenizer",
      "version": 1,
      "pattern": "...",                       the pre-split regex
      "special_tokens": {"<|endoftext|>": 511},
      "byte_ids": [...],                      only if the single bytes are not ids 0..255 (GPT-2)
      "merge_counts": [...],                  only if known (training records them)
      "merges": [
        [32, 116, 256],                       left id, right id, new id
        ...
      ]
    }

``load`` refuses what is not such a file (not JSON, another format, another version) and what
is corrupted (missing keys, merges out of order, clashing ids: ``helpers.bpe_checks``), each
with a ``ValueError`` that says which.
"""

from __future__ import annotations

import json
from pathlib import Path

import regex

from .tokenizer import BPETokenizer

__all__ = ["FORMAT", "FORMAT_VERSION", "save_bpe", "load_bpe"]

FORMAT = "helpers.tokenizer.BPETokenizer"
FORMAT_VERSION = 1


def save_bpe(tokenizer: BPETokenizer, path: str | Path) -> Path:
    """Write ``tokenizer`` to ``path`` in the format above; returns the path."""
    path = Path(path)
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "pattern": tokenizer.pattern,
        "special_tokens": tokenizer.special_tokens,
    }
    if tokenizer.byte_ids != list(range(256)):
        header["byte_ids"] = tokenizer.byte_ids  # GPT-2 numbers its single bytes differently
    if tokenizer.merge_counts is not None:
        header["merge_counts"] = tokenizer.merge_counts
    # Written line by line rather than with json.dump, so that each merge is one line to read.
    lines = ["{"]
    lines += [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in header.items()]
    lines.append('  "merges": [')
    merge_lines = [f"    [{left}, {right}, {new}]" for (left, right), new in tokenizer.merges]
    lines.append(",\n".join(merge_lines))
    lines += ["  ]", "}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def load_bpe(path: str | Path, cls: type[BPETokenizer] = BPETokenizer) -> BPETokenizer:
    """Read a file written by ``save_bpe`` into a new ``cls``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a saved BPETokenizer (not valid JSON: {err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a saved BPETokenizer (no \"format\": \"{FORMAT}\")")
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {data.get('version')!r}; this code reads version "
            f"{FORMAT_VERSION}"
        )
    try:
        tokenizer = cls(pattern=data["pattern"])
        tokenizer.set_merges(
            merges=[((int(left), int(right)), int(new)) for left, right, new in data["merges"]],
            special_tokens={str(k): int(v) for k, v in data["special_tokens"].items()},
            byte_ids=data.get("byte_ids"),
            merge_counts=data.get("merge_counts"),
        )
    except (KeyError, TypeError, ValueError, AttributeError, regex.error) as err:
        raise ValueError(f"{path} is a corrupted BPETokenizer file: {err!r}") from None
    return tokenizer
