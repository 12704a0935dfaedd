"""Phase 01, tokenizing: from splitting words to GPT-2's byte-level BPE.

Three steps, each a little more like what real LLMs use:

1. ``SimpleTokenizerV1`` / ``SimpleTokenizerV2``: the book's word-level tokenizers. Split the
   text with a regular expression, give every distinct piece an id (``build_vocab``). V2 maps
   words it has never seen to ``<|unk|>``.
2. Byte-level byte-pair encoding (BPE), written from scratch. Every text is bytes, so nothing is
   ever unknown. Training repeatedly glues the most frequent adjacent pair of tokens into a new
   token: ``train_bpe_simple`` is that loop, plainly. ``BPETokenizer`` encodes with the merges
   (``encode_chunk`` is its loop) and decodes; ``BPETokenizer.from_gpt2`` loads OpenAI's files
   and gives exactly GPT-2's ids.
3. ``gpt2_tokenizer()``: the fast ``tiktoken`` encoding, identical to
   ``tiktoken.get_encoding("gpt2")`` but built from local files, so it works offline.

``BPETokenizer`` keeps its state in public attributes, for notebooks to inspect:

- ``vocab``: id -> the bytes of that token. Ids 0..255 are the single bytes for a tokenizer
  trained here; GPT-2 numbers its single bytes differently (``byte_ids``: byte -> id).
- ``merges``: ``((left_id, right_id), new_id)`` in the order they were learnt.
- ``merge_counts``: how often each merged pair occurred when it was learnt (None if unknown,
  e.g. for GPT-2's files).
- ``special_tokens``: e.g. ``{"<|endoftext|>": 50256}``; never produced by merges.
- ``pattern``: the regex that pre-splits text into chunks (GPT-2's by default).
- ``cache``: chunk -> its ids. Words repeat, so each distinct chunk goes through BPE once;
  emptied at 100,000 chunks, and whenever the merges change.

Encoding works like tiktoken: pre-split the text into chunks; inside each chunk, start from
single bytes and repeatedly merge the adjacent pair whose merged bytes form the token with the
lowest id (ids are ranks: a token learnt earlier has a lower id), until no adjacent pair forms a
token. A special token's text (``<|endoftext|>``) is an error unless ``allowed_special`` names it
(then it becomes its id) or ``disallowed_special=()`` (then it is ordinary text), as in tiktoken.

The rest of ``BPETokenizer`` lives in modules of its own, which its methods call:

- ``helpers.bpe_train``: the fast trainer behind ``train``; the same merges as
  ``train_bpe_simple``, with pair counts updated after each merge instead of counted again;
- ``helpers.bpe_files``: ``save`` and ``load``, one readable JSON file;
- ``helpers.bpe_gpt2``: ``from_gpt2`` (OpenAI's encoder.json and vocab.bpe) and
  ``gpt2_byte_to_unicode``, which is importable from here too;
- ``helpers.bpe_checks``: tiktoken's special-token rules, and the checks that merges fit;
- ``helpers.bpe_fast``: ``encode_chunk``'s merges in n log n steps (a heap), which
  ``encode_ordinary`` uses for chunks over ``LONG_CHUNK_BYTES`` (a pasted blob, a long URL).

Usage::

    tok = BPETokenizer().train(text, vocab_size=512)
    tok.decode(tok.encode("hello world")) == "hello world"
"""

from __future__ import annotations

import functools
import math
import operator
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import regex  # like `re`, plus the Unicode classes \p{L} (letters) and \p{N} (numbers)

from .bpe_checks import (
    allowed_specials,
    check_merges,
    check_special_tokens,
    replace_surrogates,
    split_on_specials,
)
from .bpe_fast import merge_by_rank

__all__ = [
    "split_text",
    "build_vocab",
    "SimpleTokenizerV1",
    "SimpleTokenizerV2",
    "UnknownTokenError",
    "GPT2_SPLIT_PATTERN",
    "GPT2_TIKTOKEN_PATTERN",
    "ENDOFTEXT",
    "render_token",
    "merge_pair",
    "train_bpe_simple",
    "BPETokenizer",
    "gpt2_byte_to_unicode",  # noqa: F822 (from helpers.bpe_gpt2, through __getattr__ below)
    "gpt2_tokenizer",
    "gpt2_bpe_tokenizer",
]

ENDOFTEXT = "<|endoftext|>"
UNKNOWN = "<|unk|>"


# ---------------------------------------------------------------------------------------------
# 1. The book's simple word-level tokenizers
# ---------------------------------------------------------------------------------------------

# Split on punctuation, the double dash and whitespace; the capturing group keeps the
# separators themselves as tokens (whitespace is dropped afterwards by `strip`).
_SIMPLE_SPLIT = re.compile(r'([,.:;?_!"()\']|--|\s)')
# Decoding joins tokens with spaces; this removes the space before punctuation again.
_SPACE_BEFORE_PUNCT = re.compile(r'\s+([,.?!"()\'])')


def split_text(text: str) -> list[str]:
    """The book's preprocessing: split into words and punctuation, drop whitespace.

    >>> split_text("Hello, world. Is this-- a test?")
    ['Hello', ',', 'world', '.', 'Is', 'this', '--', 'a', 'test', '?']
    """
    pieces = _SIMPLE_SPLIT.split(text)
    return [piece.strip() for piece in pieces if piece.strip()]


def build_vocab(text: str, special_tokens: Iterable[str] = ()) -> dict[str, int]:
    """Map every distinct token of ``split_text(text)`` to an id, in sorted order, then append
    ``special_tokens`` in the order given (so they get the highest ids).

    A special token that also occurs in the text (e.g. ``<|endoftext|>`` between documents)
    still goes to the end, so its id does not depend on the text.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    special_tokens = check_special_tokens(special_tokens)  # a str such as "<s>" is refused
    words = sorted(set(split_text(text)) - set(special_tokens))
    return {token: i for i, token in enumerate(words + special_tokens)}


class UnknownTokenError(KeyError, ValueError):
    """A word that is not in the vocabulary (a KeyError, as in the book, and a ValueError)."""

    def __str__(self) -> str:  # KeyError would show the message with quotes around it
        return str(self.args[0])


def _as_id(token_id) -> int:
    """Accept ints and integer scalars (numpy, torch), since ids often come out of tensors."""
    try:
        return operator.index(token_id)
    except TypeError:
        raise ValueError(f"token ids must be integers, got {token_id!r}") from None


def _id_range_text(ids: Iterable[int]) -> str:
    ids = list(ids)
    return f"{min(ids)}..{max(ids)}" if ids else "none, the vocabulary is empty"


class SimpleTokenizerV1:
    """Word-level tokenizer from a fixed vocabulary; fails on words it has not seen."""

    def __init__(self, vocab: dict[str, int]):
        self.str_to_int = dict(vocab)
        self.int_to_str = {i: s for s, i in self.str_to_int.items()}
        if len(self.int_to_str) != len(self.str_to_int):
            raise ValueError("vocab maps two tokens to the same id; ids must be unique")

    def encode(self, text: str) -> list[int]:
        """Text -> token ids."""
        return [self._token_id(token) for token in self._preprocess(split_text(text))]

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> text, with spaces between words but not before punctuation."""
        text = " ".join(self._token_str(i) for i in ids)
        return _SPACE_BEFORE_PUNCT.sub(r"\1", text)

    def _preprocess(self, tokens: list[str]) -> list[str]:
        return tokens  # V2 replaces unknown words here

    def _token_id(self, token: str) -> int:
        try:
            return self.str_to_int[token]
        except KeyError:
            raise UnknownTokenError(
                f"{token!r} is not in the vocabulary of this {type(self).__name__} "
                f"({len(self.str_to_int):,} tokens). SimpleTokenizerV2 maps unknown words to "
                f"{UNKNOWN} instead (its vocabulary needs a {UNKNOWN} entry)."
            ) from None

    def _token_str(self, token_id: int) -> str:
        try:
            return self.int_to_str[_as_id(token_id)]
        except KeyError:
            raise ValueError(
                f"token id {token_id!r} is not in the vocabulary "
                f"(valid ids: {_id_range_text(self.int_to_str)})"
            ) from None


class SimpleTokenizerV2(SimpleTokenizerV1):
    """Like V1, but words outside the vocabulary become ``<|unk|>``."""

    def __init__(self, vocab: dict[str, int]):
        if UNKNOWN not in vocab:
            raise ValueError(
                f"SimpleTokenizerV2 needs a {UNKNOWN} token in its vocabulary to stand for unknown "
                f"words; build it with build_vocab(text, special_tokens=('{ENDOFTEXT}', '{UNKNOWN}'))."
            )
        super().__init__(vocab)

    def _preprocess(self, tokens: list[str]) -> list[str]:
        return [token if token in self.str_to_int else UNKNOWN for token in tokens]


# ---------------------------------------------------------------------------------------------
# 2. Byte-level BPE from scratch
# ---------------------------------------------------------------------------------------------

# GPT-2's pre-split pattern (from OpenAI's encoder.py). BPE merges never cross the boundaries
# of these chunks: common English contractions, a run of letters, of digits or of other symbols
# (each with at most one leading space), and whitespace. `\s+(?!\S)` leaves the last space
# before a word to that word, so " world" is one chunk. Which characters are letters (\p{L}) or
# numbers (\p{N}) comes from the Unicode tables inside the `regex` module, and tiktoken carries
# its own: on a code point that only the newer of the two Unicode versions assigns (U+3D000, say,
# new in Unicode 17) the two can split differently. On every other character the ids agree.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# tiktoken's equivalent, faster form of the same pattern (possessive quantifiers); it is what
# `tiktoken.get_encoding("gpt2").pat_str` holds.
GPT2_TIKTOKEN_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)

MAX_CACHED_CHUNKS = 100_000  # chunk encodings to remember; plenty for a book, bounded for a corpus
# Chunks longer than this (in bytes) are merged by helpers.bpe_fast.merge_by_rank, in n log n steps;
# encode_chunk's loop costs n²/2 look-ups: nothing for a word, minutes for a 200 kB blob.
LONG_CHUNK_BYTES = 32


def render_token(token: bytes) -> str:
    """Show a token's bytes as readable text: spaces as '·', newlines as '↵', tabs as '→',
    other control characters and incomplete UTF-8 as escapes like \\x0b."""
    text = token.decode("utf-8", errors="backslashreplace")
    out = []
    for ch in text:
        if ch == " ":
            out.append("·")
        elif ch == "\n":
            out.append("↵")
        elif ch == "\t":
            out.append("→")
        elif unicodedata.category(ch)[0] == "C":  # control, format, unassigned...
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` in ``ids`` (left to right)."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe_simple(text: str, vocab_size: int, pattern: str = GPT2_SPLIT_PATTERN) -> list:
    """Learn ``vocab_size - 256`` merges ``((left, right), new_id)``: count the pairs, merge the
    most frequent, repeat. The same merges as ``BPETokenizer().train(..., special_tokens=())``."""
    # Merges never cross the pre-split chunks, so each distinct chunk is kept once, with its count.
    chunk_counts = Counter(regex.findall(pattern, text))
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    merges = []
    for new_id in range(256, vocab_size):
        pair_counts = Counter()
        for word, count in zip(words, chunk_counts.values()):
            for pair in zip(word, word[1:]):
                pair_counts[pair] += count
        if not pair_counts:
            break  # every chunk is a single token: nothing is left to merge
        # the most frequent pair; a tie goes to the smallest (left, right), as in BPETokenizer.train
        best = min(pair_counts, key=lambda pair: (-pair_counts[pair], pair))
        words = [merge_pair(word, best, new_id) for word in words]
        merges.append((best, new_id))
    return merges


class BPETokenizer:
    """Byte-level BPE as GPT-2 uses it: text -> UTF-8 bytes -> tokens, by replaying the merges.
    Its state is public (see the module docstring); training and files have modules of their own."""

    def __init__(self, pattern: str = GPT2_SPLIT_PATTERN):
        self._pattern = pattern
        self._compiled = regex.compile(pattern)
        self.set_merges([])

    def set_merges(
        self,
        merges: Sequence[tuple[tuple[int, int], int]],
        special_tokens: dict[str, int] | None = None,
        byte_ids: Sequence[int] | None = None,
        merge_counts: Sequence[int] | None = None,
    ) -> BPETokenizer:
        """Use these merges, in the order learnt: build ``vocab`` and the ranks that encoding
        looks up. Byte b is id ``byte_ids[b]`` (b itself, unless given; GPT-2 numbers them
        otherwise). Checked first; returns self."""
        special_tokens = dict(special_tokens or {})
        byte_ids = list(range(256)) if byte_ids is None else list(byte_ids)
        merges = [((left, right), new_id) for (left, right), new_id in merges]
        byte_ids, merges = check_merges(byte_ids, merges, special_tokens, merge_counts)
        self.vocab = {i: bytes([b]) for b, i in enumerate(byte_ids)}
        for (left, right), new_id in merges:
            self.vocab[new_id] = self.vocab[left] + self.vocab[right]
        self.merges, self.byte_ids, self.special_tokens = merges, byte_ids, special_tokens
        self.merge_counts = list(merge_counts) if merge_counts is not None else None
        # bytes -> id, the "ranks" of encoding. Should training make the same bytes twice (rare),
        # the first one learnt wins; the later id still decodes.
        self._ranks: dict[bytes, int] = {}
        for i in sorted(self.vocab):
            self._ranks.setdefault(self.vocab[i], i)
        self._special_by_id = {i: name for name, i in special_tokens.items()}
        self.cache: dict[str, list[int]] = {}  # other merges, other ids: forget the old ones
        return self

    @property
    def pattern(self) -> str:
        """The pre-split regex (read-only: a trained vocabulary belongs to its pattern)."""
        return self._pattern

    @property
    def n_vocab(self) -> int:
        """Number of token ids, special tokens included (50,257 for GPT-2)."""
        return len(self.vocab) + len(self.special_tokens)

    @property
    def special_tokens_set(self) -> set[str]:
        return set(self.special_tokens)

    @property
    def eot_token(self) -> int:
        """The id of ``<|endoftext|>`` (AttributeError if this tokenizer has none)."""
        if ENDOFTEXT not in self.special_tokens:
            raise AttributeError(f"this tokenizer has no {ENDOFTEXT} special token")
        return self.special_tokens[ENDOFTEXT]

    def __repr__(self) -> str:
        specials = ", ".join(self.special_tokens) or "none"
        return (
            f"BPETokenizer(n_vocab={self.n_vocab:,}, merges={len(self.merges):,}, "
            f"special_tokens: {specials})"
        )

    def train(
        self,
        text: str,
        vocab_size: int,
        special_tokens: Iterable[str] = (ENDOFTEXT,),
        verbose: bool = False,
    ) -> BPETokenizer:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``; returns self.
        The fast trainer (``helpers.bpe_train``): the same merges as ``train_bpe_simple``."""
        # imported here, on first use, because helpers.bpe_train imports this module
        from .bpe_train import train_bpe

        return train_bpe(self, text, vocab_size, special_tokens, verbose)

    def encode(
        self,
        text: str,
        allowed_special: str | Iterable[str] = frozenset(),
        disallowed_special: str | Iterable[str] = "all",
    ) -> list[int]:
        """Text -> token ids. A special token's text becomes its id only if allowed; if not,
        it is an error, or ordinary text with ``disallowed_special=()`` (as in tiktoken)."""
        allowed = allowed_specials(text, self.special_tokens, allowed_special, disallowed_special)
        ids: list[int] = []
        for part in split_on_specials(replace_surrogates(text), allowed, keep=True):
            if part in allowed:
                ids.append(self.special_tokens[part])
            else:
                ids.extend(self.encode_ordinary(part))
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Text -> ids, treating special tokens' text as ordinary text."""
        ids: list[int] = []
        for chunk in self._compiled.findall(text):
            if chunk not in self.cache:  # words repeat: each distinct chunk goes through BPE once
                if len(self.cache) >= MAX_CACHED_CHUNKS:
                    self.cache.clear()
                # A chunk that is one token (most words) needs no loop (it would end there too,
                # tested); a long one (a pasted blob) takes bpe_fast's heap: same merges, no n².
                data = chunk.encode("utf-8")
                whole = self._ranks.get(data)
                if whole is not None:
                    self.cache[chunk] = [whole]
                elif len(data) <= LONG_CHUNK_BYTES:
                    self.cache[chunk] = self.encode_chunk(chunk)
                else:
                    self.cache[chunk] = merge_by_rank(data, self._ranks)
            ids.extend(self.cache[chunk])
        return ids

    def encode_chunk(self, chunk: str) -> list[int]:
        """BPE inside one pre-split chunk: start from its bytes and merge, again and again, the
        adjacent pair that forms the token with the lowest id, i.e. the merge learnt first."""
        parts = [bytes([b]) for b in chunk.encode("utf-8")]
        while len(parts) > 1:
            # the id each adjacent pair would become; a pair that is no token gets infinity
            ranks = [self._ranks.get(a + b, math.inf) for a, b in zip(parts, parts[1:])]
            best = min(ranks)
            if best == math.inf:
                break  # no adjacent pair forms a token: done
            i = ranks.index(best)  # the leftmost pair, if several have that rank
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        return [self._ranks[part] for part in parts]

    def decode_single_token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token (special tokens: their UTF-8 text)."""
        token_id = _as_id(token_id)
        if token_id in self.vocab:
            return self.vocab[token_id]
        if token_id in self._special_by_id:
            return self._special_by_id[token_id].encode("utf-8")
        raise ValueError(
            f"token id {token_id!r} is not in the vocabulary (valid ids: 0..{self.n_vocab - 1})"
        )

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Token ids -> the bytes they stand for."""
        return b"".join(self.decode_single_token_bytes(i) for i in ids)

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """Token ids -> text. A sequence that cuts a character's UTF-8 bytes in half decodes
        to '�' for the broken part (``errors="replace"``, as tiktoken does)."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def save(self, path: str | Path) -> Path:
        """Write the tokenizer to one readable JSON file (``helpers.bpe_files``); returns
        the path."""
        from .bpe_files import save_bpe

        return save_bpe(self, path)

    @classmethod
    def load(cls, path: str | Path, trust_pattern: bool = False) -> BPETokenizer:
        """Read a file from ``save``; a pattern not GPT-2's needs ``trust_pattern`` (bpe_files)."""
        from .bpe_files import load_bpe

        return load_bpe(path, cls, trust_pattern=trust_pattern)

    @classmethod
    def from_gpt2(cls, encoder_json_path: str | Path, vocab_bpe_path: str | Path) -> BPETokenizer:
        """Load OpenAI's GPT-2 files (``helpers.bpe_gpt2``); the ids are tiktoken's "gpt2" ids."""
        from .bpe_gpt2 import from_gpt2_files

        return from_gpt2_files(encoder_json_path, vocab_bpe_path, cls)


def __getattr__(name: str):
    """``gpt2_byte_to_unicode`` moved to ``helpers.bpe_gpt2``; importing it from here still works
    (on first use: that module imports this one)."""
    if name == "gpt2_byte_to_unicode":
        from .bpe_gpt2 import gpt2_byte_to_unicode

        return gpt2_byte_to_unicode
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------
# 3. GPT-2 via tiktoken, offline
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def gpt2_tokenizer():
    """``tiktoken.get_encoding("gpt2")``, built from local copies of OpenAI's files.

    Same name, pattern, ranks and special token, so the ids are identical; but the files come
    from ``helpers.data.fetch`` (cache or ``LLM_DATA_MIRROR``), which works without internet.
    Cached: every call returns the same object.
    """
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    from helpers.data import REGISTRY, fetch

    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(fetch("vocab.bpe")),
        encoder_json_file=str(fetch("encoder.json")),
        # tiktoken also caches what it reads; the hashes keep that cache honest
        vocab_bpe_hash=REGISTRY["vocab.bpe"].sha256,
        encoder_json_hash=REGISTRY["encoder.json"].sha256,
    )
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_TIKTOKEN_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: 50256},
        explicit_n_vocab=50257,
    )


@functools.lru_cache(maxsize=None)
def gpt2_bpe_tokenizer() -> BPETokenizer:
    """GPT-2 as a from-scratch ``BPETokenizer`` (same ids as ``gpt2_tokenizer()``, slower).

    Cached and shared: do not ``train`` it; ``BPETokenizer.from_gpt2`` makes a private copy.
    """
    from helpers.data import fetch

    return BPETokenizer.from_gpt2(fetch("encoder.json"), fetch("vocab.bpe"))


if __name__ == "__main__":
    from helpers.data import read_text

    verdict = read_text("the-verdict.txt")

    # 1. words -> ids with a vocabulary built from the story
    simple = SimpleTokenizerV2(build_vocab(verdict, special_tokens=(ENDOFTEXT, UNKNOWN)))
    ids = simple.encode("Hello, do you like tea?")
    print(ids, "->", simple.decode(ids))

    # 2. train a small byte-level BPE and watch the first merges
    bpe = BPETokenizer().train(verdict[:5000], vocab_size=256 + 10 + 1, verbose=True)
    ids = bpe.encode("It's the last he painted")
    print(bpe, ids, "->", repr(bpe.decode(ids)))

    # 3. GPT-2, from scratch and via tiktoken: the same ids
    text = "Akwirw ier <|endoftext|>"
    print(gpt2_bpe_tokenizer().encode(text, allowed_special="all"))
    print(gpt2_tokenizer().encode(text, allowed_special="all"))
