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

from collections.abc import Iterable, Sequence

import regex

__all__ = [
    "special_pattern",
    "allowed_specials",
    "split_on_specials",
    "replace_surrogates",
    "check_merges",
]


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


def check_merges(
    byte_ids: Sequence[int],
    merges: Sequence[tuple[tuple[int, int], int]],
    special_tokens: dict[str, int],
    merge_counts: Sequence[int] | None = None,
) -> None:
    """Raise a ``ValueError`` unless these make one consistent vocabulary (see the module
    docstring for what that means)."""
    if sorted(set(byte_ids)) != sorted(byte_ids) or len(byte_ids) != 256:
        raise ValueError("byte_ids must give 256 different ids, one for each byte value")
    defined = set(byte_ids)
    for n, ((left, right), new) in enumerate(merges):
        if left not in defined or right not in defined:
            raise ValueError(
                f"merge #{n} ({left}, {right}) -> {new} uses an id not defined before it"
            )
        if new in defined:
            raise ValueError(f"merge #{n} ({left}, {right}) -> {new} reuses id {new}")
        defined.add(new)
    for name, i in special_tokens.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"special token names must be non-empty strings, got {name!r}")
        if i in defined:
            raise ValueError(f"special token {name!r} has id {i}, which is already a token")
        defined.add(i)
    if defined != set(range(len(defined))):
        raise ValueError(f"token ids must be exactly 0..{len(defined) - 1}, without gaps")
    if merge_counts is not None and len(merge_counts) != len(merges):
        raise ValueError("merge_counts must have one count per merge")
