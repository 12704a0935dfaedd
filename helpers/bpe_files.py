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

``load`` refuses what is not such a file (not JSON, another format, another version), what
is corrupted (missing keys, merges out of order, clashing ids, ids that are not whole numbers:
``helpers.bpe_checks``), and a pattern it does not know (a pattern is code: see ``load_bpe``),
each with a ``ValueError`` that says which.
"""

from __future__ import annotations

import json
from pathlib import Path

import regex

from .atomic import atomic_path
from .tokenizer import GPT2_SPLIT_PATTERN, GPT2_TIKTOKEN_PATTERN, BPETokenizer
from .validate import check_can_write

__all__ = ["FORMAT", "FORMAT_VERSION", "KNOWN_PATTERNS", "save_bpe", "load_bpe"]

FORMAT = "helpers.tokenizer.BPETokenizer"
FORMAT_VERSION = 1
# The pre-split patterns that load_bpe accepts without trust_pattern=True: the ones this project
# writes (GPT-2's, in OpenAI's form and in tiktoken's).
KNOWN_PATTERNS = (GPT2_SPLIT_PATTERN, GPT2_TIKTOKEN_PATTERN)


def save_bpe(tokenizer: BPETokenizer, path: str | Path) -> Path:
    """Write ``tokenizer`` to ``path`` in the format above; returns the path. Written under a
    temporary name and renamed (``helpers.atomic``): a crash or a full disk never leaves half a
    file where a good one was."""
    path = check_can_write(path, "save(path)")  # a folder, an unwritable place: said up front
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
    with atomic_path(path) as temporary:
        temporary.write_text("\n".join(lines), encoding="utf-8")
    return path


def load_bpe(
    path: str | Path, cls: type[BPETokenizer] = BPETokenizer, *, trust_pattern: bool = False
) -> BPETokenizer:
    """Read a file written by ``save_bpe`` into a new ``cls``.

    The pre-split pattern in the file is a regular expression, i.e. code that ``encode`` runs on
    every text: a hostile one (catastrophic backtracking) hangs it. So only the patterns this
    project writes (``KNOWN_PATTERNS``) are accepted, unless ``trust_pattern=True`` says that
    the file is your own.
    """
    path = Path(path)
    if not isinstance(trust_pattern, bool):
        raise ValueError(f"trust_pattern must be True or False, got {trust_pattern!r}")
    data = _read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a saved BPETokenizer (no \"format\": \"{FORMAT}\")")
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {data.get('version')!r}; this code reads version "
            f"{FORMAT_VERSION}"
        )
    pattern = data.get("pattern")
    if not trust_pattern and isinstance(pattern, str) and pattern not in KNOWN_PATTERNS:
        raise ValueError(
            f"{path} has its own pre-split pattern {_shorten(pattern)}, not GPT-2's. A pattern "
            "is code that runs on every text (a hostile one can hang encode), so it is not "
            "loaded; if you wrote this file yourself, pass trust_pattern=True."
        )
    try:
        tokenizer = cls(pattern=pattern)
        special_tokens = data["special_tokens"]
        if not isinstance(special_tokens, dict):
            raise TypeError("special_tokens must map names to ids")
        tokenizer.set_merges(
            merges=[((left, right), new) for left, right, new in data["merges"]],
            special_tokens=special_tokens,
            byte_ids=data.get("byte_ids"),
            merge_counts=data.get("merge_counts"),
        )
    except (KeyError, TypeError, ValueError, AttributeError, regex.error) as err:
        raise ValueError(f"{path} is a corrupted BPETokenizer file: {err!r}") from None
    return tokenizer


def _read_json(path: Path):
    """The JSON in ``path``, or a ValueError naming the file (not a JSONDecodeError from deep
    inside; nesting thousands deep, as only a hostile file has, is a RecursionError there)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else err
        raise ValueError(f"{path} is not a saved BPETokenizer (not valid JSON: {reason})") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder; give the path of a saved tokenizer's file") from None


def _shorten(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
