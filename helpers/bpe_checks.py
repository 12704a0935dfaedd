"""What ``BPETokenizer`` checks in what it is given: text to encode, and merges to use.

Text to encode (``BPETokenizer.encode``) follows tiktoken's rules for special tokens. A special
token such as ``<|endoftext|>`` has an id of its own, but its *text* also turns up in ordinary
data (a web page about GPT-2, say), so the caller chooses what it means:

- ``allowed_special``: the names (or ``"all"``) whose text becomes the special id;
- ``disallowed_special``: the names whose text is an error (default ``"all"``: every special
  token not allowed), with a message that says how to choose;
- a special token that is neither is encoded as ordinary text.

Text with lone surrogates (half an emoji from a bad slice) cannot be UTF-8 encoded;
``replace_surrogates`` turns each into U+FFFD, as tiktoken does.

Merges (``BPETokenizer.set_merges``, so also what ``load`` and ``from_gpt2`` read from files)
must fit together: 256 different byte ids, every merge built from ids defined before it, no
id used twice, special tokens on ids of their own, and the ids 0..n_vocab-1 all used.
``check_merges`` raises a ``ValueError`` that names the first thing that does not fit.

This module imports nothing from ``helpers``, so the tokenizer can import it at its top.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

import regex

__all__ = [
    "special_pattern",
    "allowed_specials",
    "split_on_specials",
    "replace_surrogates",
    "check_special_tokens",
    "check_merges",
    "MAX_VOCAB_BYTES",
]

# The most bytes all tokens of a vocabulary may hold together. GPT-2's 50,257 tokens hold about
# 320 kB; a file whose merges double a token again and again would otherwise ask for terabytes.
MAX_VOCAB_BYTES = 2**28


def special_pattern(tokens: Iterable[str]) -> str:
    """A regex that matches any of ``tokens``; the longest first, so a special token that
    contains another one wins."""
    return "|".join(regex.escape(t) for t in sorted(tokens, key=len, reverse=True))


def allowed_specials(
    text, special_tokens: Iterable[str], allowed_special, disallowed_special
) -> set[str]:
    """The special tokens whose text in ``text`` becomes their id; raises if ``text`` holds a
    disallowed one, or if the options name tokens the tokenizer does not have."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    known = set(special_tokens)
    if allowed_special == "all":
        allowed = known
    elif isinstance(allowed_special, str):
        raise TypeError(
            f"allowed_special must be 'all' or a set of token names, got the string "
            f"{allowed_special!r}; did you mean {{{allowed_special!r}}}?"
        )
    else:
        allowed = set(allowed_special)
    if allowed - known:
        raise ValueError(
            f"allowed_special names {sorted(allowed - known)}, which are not special tokens of "
            f"this tokenizer; it has {sorted(known) or 'none'}"
        )
    disallowed = known - allowed if disallowed_special == "all" else set(disallowed_special)
    found = regex.search(special_pattern(disallowed), text) if disallowed else None
    if found:
        token = found.group()
        raise ValueError(
            f"The text contains the special token {token!r}, which is not allowed here. "
            f"To encode it as the special token, pass allowed_special={{{token!r}}} (or "
            f"'all'); to encode it as ordinary text, pass disallowed_special=()."
        )
    return allowed


def split_on_specials(text: str, specials: Iterable[str], keep: bool = False) -> list[str]:
    """Split ``text`` around the occurrences of ``specials``, keeping them as parts if ``keep``.

    >>> split_on_specials("a<|endoftext|>b", ["<|endoftext|>"], keep=True)
    ['a', '<|endoftext|>', 'b']
    """
    specials = list(specials)
    if not specials:
        return [text]
    pattern = special_pattern(specials)
    parts = regex.split(f"({pattern})" if keep else pattern, text)
    return [part for part in parts if part]


def replace_surrogates(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so that it encodes to UTF-8."""
    try:
        text.encode("utf-8")
        return text  # the usual case: nothing to replace, no copy
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def check_special_tokens(special_tokens) -> list[str]:
    """``special_tokens`` as a list, if it is a list (or tuple, set...) of distinct non-empty
    strings; else a ``ValueError``. A single string is refused rather than read as its
    characters: ``"<s>"`` would otherwise become the three special tokens ``<``, ``s``, ``>``."""
    if isinstance(special_tokens, (str, bytes)):
        raise ValueError(
            f"special_tokens must be a list of strings, got the single string "
            f"{special_tokens!r}; pass a list, e.g. [{special_tokens!r}] or ['<|endoftext|>']."
        )
    if isinstance(special_tokens, dict) or not isinstance(special_tokens, Iterable):
        raise ValueError(
            f"special_tokens must be a list of strings, e.g. ['<|endoftext|>'], got "
            f"{type(special_tokens).__name__}."
        )
    tokens = list(special_tokens)
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(
                f"special tokens must be non-empty strings, got {token!r} in {tokens}."
            )
    duplicates = sorted({t for t in tokens if tokens.count(t) > 1})
    if duplicates:
        raise ValueError(f"special_tokens has duplicates: {duplicates}; list each token once.")
    return tokens


def check_merges(
    byte_ids: Sequence[int],
    merges: Sequence[tuple[tuple[int, int], int]],
    special_tokens: dict[str, int],
    merge_counts: Sequence[int] | None = None,
) -> tuple[list[int], list[tuple[tuple[int, int], int]]]:
    """Raise a ``ValueError`` unless these make one consistent vocabulary (see the module
    docstring for what that means); returns ``byte_ids`` and ``merges`` with plain ints."""
    _check_ids("byte_ids", byte_ids)
    if len(set(byte_ids)) != 256 or len(byte_ids) != 256:
        raise ValueError("byte_ids must give 256 different ids, one for each byte value")
    lengths = dict.fromkeys(byte_ids, 1)  # id -> its token's length in bytes
    total = 256
    for n, ((left, right), new) in enumerate(merges):
        _check_ids(f"merge #{n}", (left, right, new))
        if left not in lengths or right not in lengths:
            raise ValueError(
                f"merge #{n} ({left}, {right}) -> {new} uses an id not defined before it"
            )
        if new in lengths:
            raise ValueError(f"merge #{n} ({left}, {right}) -> {new} reuses id {new}")
        lengths[new] = lengths[left] + lengths[right]
        total += lengths[new]
        if total > MAX_VOCAB_BYTES:  # counted before any token's bytes are built
            raise ValueError(
                f"the merges up to #{n} make tokens of {total:,} bytes in all, more than the "
                f"{MAX_VOCAB_BYTES:,} a vocabulary may hold; this is no real tokenizer"
            )
    defined = set(lengths)
    for name, i in special_tokens.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"special token names must be non-empty strings, got {name!r}")
        _check_ids(f"special token {name!r}", (i,))
        if i in defined:
            raise ValueError(f"special token {name!r} has id {i}, which is already a token")
        defined.add(i)
    if defined != set(range(len(defined))):
        raise ValueError(f"token ids must be exactly 0..{len(defined) - 1}, without gaps")
    if merge_counts is not None and len(merge_counts) != len(merges):
        raise ValueError("merge_counts must have one count per merge")
    if merge_counts is not None:
        _check_ids("merge_counts", merge_counts)
    return [int(i) for i in byte_ids], [((int(a), int(b)), int(c)) for (a, b), c in merges]


def _check_ids(what: str, values) -> None:
    """Ids (and counts) must be whole numbers >= 0: a 1.5 or "7" from a file is refused, not
    rounded, and a bool is no id."""
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{what}: ids must be whole numbers >= 0, got {value!r}")
