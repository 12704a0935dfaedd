"""``BPETokenizer.from_gpt2``: OpenAI's two GPT-2 files as a from-scratch ``BPETokenizer``.

- ``encoder.json`` maps each token's text to its id. The text is bytes written with printable
  stand-in characters (``gpt2_byte_to_unicode``): a space is 'Ġ', a newline 'Ċ'.
- ``vocab.bpe`` lists the 50,000 merges in the order they were learnt, one ``left right`` per
  line, after a ``#version`` line.

The n-th merge must create id 256 + n: that is what makes GPT-2's ids usable as ranks, and
every id of encoder.json must be the bytes its merges build. Files that do not belong together
are refused with a ``ValueError`` that names the first mismatch. The result encodes exactly as
tiktoken's "gpt2" encoding (``tests/test_tokenizer.py`` checks many texts).
"""

from __future__ import annotations

import json
from pathlib import Path

from .tokenizer import ENDOFTEXT, GPT2_SPLIT_PATTERN, BPETokenizer

__all__ = ["gpt2_byte_to_unicode", "from_gpt2_files"]


def gpt2_byte_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for every byte, as used in encoder.json and vocab.bpe.

    Bytes that are visible Latin-1 characters stand for themselves ('!'..'~', '¡'..'¬', '®'..'ÿ').
    The other 68 (space, control characters, the soft hyphen) are shifted up to chr(256), chr(257),
    ... in byte order, so a space (byte 32) becomes chr(256 + 32) = 'Ġ' and a newline 'Ċ'.
    """

    def visible(b: int) -> bool:
        return 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF

    mapping, shifted = {}, 0
    for b in range(256):
        if visible(b):
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + shifted)
            shifted += 1
    return mapping


def from_gpt2_files(
    encoder_json_path: str | Path,
    vocab_bpe_path: str | Path,
    cls: type[BPETokenizer] = BPETokenizer,
) -> BPETokenizer:
    """A new ``cls`` with GPT-2's merges, byte ids and ``<|endoftext|>``, read from the files."""
    encoder = _read_encoder(Path(encoder_json_path))
    try:
        merge_lines = Path(vocab_bpe_path).read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise ValueError(f"{vocab_bpe_path} is not GPT-2's vocab.bpe (not UTF-8: {err})") from None
    if not merge_lines[0].startswith("#version"):
        raise ValueError(f"{vocab_bpe_path} does not start with a '#version' line; is it vocab.bpe?")
    merge_lines = [line for line in merge_lines[1:] if line]

    stand_in = gpt2_byte_to_unicode()
    byte_of = {ch: b for b, ch in stand_in.items()}
    mismatch = f"{encoder_json_path} and {vocab_bpe_path} do not belong together"

    def token_id(token: str) -> int:
        if token not in encoder:
            raise ValueError(f"{mismatch}: {token!r} from vocab.bpe is not in encoder.json")
        return encoder[token]

    byte_ids = [token_id(stand_in[b]) for b in range(256)]
    merges = []
    for n, line in enumerate(merge_lines):
        if line.count(" ") != 1:
            raise ValueError(f"{vocab_bpe_path}, merge #{n}: expected 'left right', got {line!r}")
        left, right = line.split(" ")
        new = token_id(left + right)
        if new != 256 + n:
            raise ValueError(
                f"{mismatch}: merge #{n} {line!r} makes id {new} in encoder.json, expected {256 + n}"
            )
        merges.append(((token_id(left), token_id(right)), new))

    specials = {t: i for t, i in encoder.items() if t == ENDOFTEXT}
    tokenizer = cls(GPT2_SPLIT_PATTERN).set_merges(merges, specials, byte_ids)
    # Every entry of encoder.json must be the bytes the merges build for that id.
    for token, i in encoder.items():
        if token in specials:
            continue
        try:
            expected = bytes(byte_of[ch] for ch in token)
        except KeyError:
            raise ValueError(f"{mismatch}: {token!r} in encoder.json is not GPT-2 byte text") from None
        if tokenizer.vocab.get(i) != expected:
            raise ValueError(f"{mismatch}: id {i} is {token!r} in encoder.json, but not in vocab.bpe")
    return tokenizer


def _read_encoder(path: Path) -> dict[str, int]:
    """encoder.json as a dict of token text -> id, or a ValueError naming the file: ids must be
    whole numbers >= 0 (a 5.0 or "5" is a broken file, not an id to round)."""
    try:
        encoder = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else err
        raise ValueError(f"{path} is not GPT-2's encoder.json ({reason})") from None
    if not isinstance(encoder, dict):
        raise ValueError(f"{path} is not GPT-2's encoder.json (not a JSON object)")
    for token, i in encoder.items():
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise ValueError(
                f"{path} is not GPT-2's encoder.json: token {token!r} has id {i!r}, not a whole "
                "number >= 0. Delete it and download it again."
            )
    return encoder
