"""Phase 01, tokenizing: from splitting words to GPT-2's byte-level BPE.

Three steps, each a little more like what real LLMs use:

1. ``SimpleTokenizerV1`` / ``SimpleTokenizerV2``: the book's word-level tokenizers. Split the
   text with a regular expression, give every distinct piece an id (``build_vocab``). V2 maps
   words it has never seen to ``<|unk|>``.
2. ``BPETokenizer``: byte-level byte-pair encoding written from scratch. Every text is bytes, so
   nothing is ever unknown; training repeatedly glues the most frequent adjacent pair of tokens
   into a new token. ``BPETokenizer.from_gpt2`` loads OpenAI's files and gives exactly GPT-2's ids.
3. ``gpt2_tokenizer()``: the fast ``tiktoken`` encoding, identical to
   ``tiktoken.get_encoding("gpt2")`` but built from local files, so it works offline.

Usage::

    tok = BPETokenizer().train(text, vocab_size=512)
    tok.decode(tok.encode("hello world")) == "hello world"
"""

from __future__ import annotations

import functools
import heapq
import json
import operator
import re
import unicodedata
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import regex  # like `re`, plus the Unicode classes \p{L} (letters) and \p{N} (numbers)

__all__ = [
    "split_text",
    "build_vocab",
    "SimpleTokenizerV1",
    "SimpleTokenizerV2",
    "UnknownTokenError",
    "GPT2_SPLIT_PATTERN",
    "GPT2_TIKTOKEN_PATTERN",
    "ENDOFTEXT",
    "BPETokenizer",
    "render_token",
    "gpt2_byte_to_unicode",
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
    special_tokens = list(special_tokens)
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"special_tokens has duplicates: {special_tokens}")
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

_FORMAT = "helpers.tokenizer.BPETokenizer"
_FORMAT_VERSION = 1
_MAX_CACHE = 100_000  # chunk encodings to remember; plenty for a book, bounded for a corpus


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


class BPETokenizer:
    """Byte-level byte-pair encoding (BPE), as used by GPT-2.

    State (all public, for notebooks to inspect):

    - ``vocab``: id -> the bytes of that token. Ids 0..255 are the single bytes for a tokenizer
      trained here; GPT-2 numbers its single bytes differently (see ``byte_ids``).
    - ``merges``: ``((left_id, right_id), new_id)`` in the order they were learnt.
    - ``merge_counts``: how often each merged pair occurred when it was learnt (None if unknown,
      e.g. for GPT-2's files).
    - ``special_tokens``: e.g. ``{"<|endoftext|>": 50256}``; never produced by merges.
    - ``pattern``: the regex that pre-splits text into chunks (GPT-2's by default).

    Encoding works like tiktoken: inside each chunk, start from single bytes and repeatedly merge
    the adjacent pair whose merged bytes form the token with the lowest id (ids are ranks: a
    token learnt earlier has a lower id), until no adjacent pair forms a token.
    """

    def __init__(self, pattern: str = GPT2_SPLIT_PATTERN):
        self._pattern = pattern
        self._compiled = regex.compile(pattern)
        self._set_state(byte_ids=list(range(256)), merges=[], special_tokens={})

    # -- state -------------------------------------------------------------------------------

    def _set_state(
        self,
        byte_ids: Sequence[int],
        merges: Sequence[tuple[tuple[int, int], int]],
        special_tokens: dict[str, int],
        merge_counts: Sequence[int] | None = None,
    ) -> None:
        """Build ``vocab`` from the byte ids and the merges, checking that it all fits together:
        every id used once, merges only use ids that exist already, ids 0..n_vocab-1 all used."""
        if sorted(set(byte_ids)) != sorted(byte_ids) or len(byte_ids) != 256:
            raise ValueError("byte_ids must give 256 different ids, one for each byte value")
        vocab: dict[int, bytes] = {int(i): bytes([b]) for b, i in enumerate(byte_ids)}
        clean_merges = []
        for n, ((left, right), new) in enumerate(merges):
            if left not in vocab or right not in vocab:
                raise ValueError(f"merge #{n} ({left}, {right}) -> {new} uses an id not defined before it")
            if new in vocab:
                raise ValueError(f"merge #{n} ({left}, {right}) -> {new} reuses id {new}")
            vocab[new] = vocab[left] + vocab[right]
            clean_merges.append(((left, right), new))
        for name, i in special_tokens.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"special token names must be non-empty strings, got {name!r}")
            if i in vocab:
                raise ValueError(f"special token {name!r} has id {i}, which is already a token")
            vocab[i] = name.encode("utf-8")  # only for the id check below; removed again
        if set(vocab) != set(range(len(vocab))):
            raise ValueError(f"token ids must be exactly 0..{len(vocab) - 1}, without gaps")
        for i in special_tokens.values():
            del vocab[i]
        if merge_counts is not None and len(merge_counts) != len(clean_merges):
            raise ValueError("merge_counts must have one count per merge")

        self.vocab = vocab
        self.merges = clean_merges
        self.merge_counts = list(merge_counts) if merge_counts is not None else None
        self.special_tokens = dict(special_tokens)
        self.byte_ids = [int(i) for i in byte_ids]
        # bytes -> id, the "ranks" that encoding uses. If training produced the same bytes twice
        # (possible, but rare), the first one learnt wins; the later id still decodes.
        self._ranks: dict[bytes, int] = {}
        for i in sorted(vocab):
            self._ranks.setdefault(vocab[i], i)
        self._special_by_id = {i: name for name, i in self.special_tokens.items()}
        self._cache: dict[str, list[int]] = {}  # chunk -> its ids

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

    # -- training ----------------------------------------------------------------------------

    def train(
        self,
        text: str,
        vocab_size: int,
        special_tokens: Iterable[str] = (ENDOFTEXT,),
        verbose: bool = False,
    ) -> BPETokenizer:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``; returns self.

        Each step merges the most frequent adjacent pair of tokens. Ties go to the pair with the
        smallest ``(left_id, right_id)``, so training is deterministic. Special tokens get the
        last ids, as ``<|endoftext|>`` does in GPT-2; where they occur in ``text`` they only
        separate documents and are not learnt from.

        Speed comes from two things: each distinct chunk (e.g. the word " the") is stored once
        with its frequency, and after a merge only the chunks that contained the merged pair are
        updated, found through an index pair -> chunks.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        special_tokens = list(special_tokens)
        if len(set(special_tokens)) != len(special_tokens):
            raise ValueError(f"special_tokens has duplicates: {special_tokens}")
        if not all(isinstance(t, str) and t for t in special_tokens):
            raise ValueError(f"special tokens must be non-empty strings, got {special_tokens}")
        minimum = 256 + len(special_tokens)
        if not isinstance(vocab_size, int) or vocab_size < minimum:
            raise ValueError(
                f"vocab_size must be an integer of at least {minimum} (256 byte tokens + "
                f"{len(special_tokens)} special), got {vocab_size!r}"
            )
        n_merges = vocab_size - minimum

        # Distinct chunks with their counts; special tokens in the text only separate documents.
        chunk_counts: Counter[str] = Counter()
        for part in self._split_on_specials(text, special_tokens):
            chunk_counts.update(self._compiled.findall(part))
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        freqs = list(chunk_counts.values())

        pair_counts, where = self._count_pairs(words, freqs)
        # Max-heap by count via negative counts; entries go stale when counts change, so each
        # popped entry is checked against pair_counts (lazy deletion).
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)

        merges, counts = [], []
        pieces = {i: bytes([i]) for i in range(256)}  # bytes of each id, for printing
        for step in range(n_merges):
            best = self._pop_best(heap, pair_counts)
            if best is None:
                warnings.warn(
                    f"the text has no adjacent pairs left after {step} merges, fewer than the "
                    f"{n_merges} that vocab_size={vocab_size} asks for; the vocabulary is smaller",
                    stacklevel=2,
                )
                break
            pair, count = best
            new_id = 256 + step
            self._apply_merge(pair, new_id, words, freqs, pair_counts, where, heap)
            merges.append((pair, new_id))
            counts.append(count)
            pieces[new_id] = pieces[pair[0]] + pieces[pair[1]]
            if verbose:
                self._print_merge(step, n_merges, pair, new_id, count, pieces)

        first_special = 256 + len(merges)
        specials = {name: first_special + k for k, name in enumerate(special_tokens)}
        self._set_state(list(range(256)), merges, specials, merge_counts=counts)
        return self

    @staticmethod
    def _count_pairs(words, freqs):
        pair_counts: dict[tuple[int, int], int] = defaultdict(int)
        where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> indices of words
        for w, (word, freq) in enumerate(zip(words, freqs)):
            for pair in zip(word, word[1:]):
                pair_counts[pair] += freq
                where[pair].add(w)
        return pair_counts, where

    @staticmethod
    def _pop_best(heap, pair_counts):
        """The most frequent pair and its count, or None when no pairs are left."""
        while heap:
            neg_count, pair = heapq.heappop(heap)
            if pair_counts.get(pair) == -neg_count:  # not a stale entry
                return pair, -neg_count
        return None

    @staticmethod
    def _apply_merge(pair, new_id, words, freqs, pair_counts, where, heap):
        """Merge ``pair`` in every word that has it, updating counts and the index in place."""
        changed = set()
        for w in where.pop(pair):
            old, freq = words[w], freqs[w]
            new = merge_pair(old, pair, new_id)
            words[w] = new
            old_pairs, new_pairs = Counter(zip(old, old[1:])), Counter(zip(new, new[1:]))
            for p in old_pairs.keys() | new_pairs.keys():
                delta = new_pairs[p] - old_pairs[p]
                if delta:
                    pair_counts[p] += delta * freq
                    changed.add(p)
                if p not in new_pairs:
                    where[p].discard(w)
                elif p not in old_pairs:
                    where[p].add(w)
        for p in changed:
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
            else:
                del pair_counts[p]
                where.pop(p, None)
        pair_counts.pop(pair, None)

    @staticmethod
    def _print_merge(step, n_merges, pair, new_id, count, pieces):
        left, right, new = (render_token(pieces[i]) for i in (*pair, new_id))
        print(
            f"merge {step + 1:>{len(str(n_merges))}}/{n_merges}  id {new_id}:  "
            f"'{left}' + '{right}' -> '{new}'  (count {count:,})"
        )

    # -- encoding ----------------------------------------------------------------------------

    def encode(
        self,
        text: str,
        allowed_special: str | Iterable[str] = frozenset(),
        disallowed_special: str | Iterable[str] = "all",
    ) -> list[int]:
        """Text -> token ids, with tiktoken's rules for special tokens.

        By default a special token's text (e.g. "<|endoftext|>") in ``text`` is an error, since
        it usually comes from data rather than from you. Pass ``allowed_special={"<|endoftext|>"}``
        (or "all") to turn it into its special id, or ``disallowed_special=()`` to encode it as
        ordinary text.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        allowed = self._allowed_specials(allowed_special)
        disallowed = (
            self.special_tokens_set - allowed
            if disallowed_special == "all"
            else set(disallowed_special)
        )
        if disallowed:
            found = regex.search(self._special_pattern(disallowed), text)
            if found:
                token = found.group()
                raise ValueError(
                    f"The text contains the special token {token!r}, which is not allowed here. "
                    f"To encode it as the special token, pass allowed_special={{{token!r}}} (or "
                    f"'all'); to encode it as ordinary text, pass disallowed_special=()."
                )
        # Lone surrogates (e.g. half an emoji from a bad slice) cannot be UTF-8 encoded; replace
        # them with U+FFFD as tiktoken does.
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

        ids: list[int] = []
        for part in self._split_on_specials(text, allowed, keep=True):
            if part in allowed:
                ids.append(self.special_tokens[part])
            else:
                ids.extend(self.encode_ordinary(part))
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Text -> ids, treating special tokens' text as ordinary text."""
        ids: list[int] = []
        cache = self._cache
        for chunk in self._compiled.findall(text):
            # most chunks are words seen before: one dictionary lookup, no UTF-8 encoding
            chunk_ids = cache.get(chunk)
            ids.extend(chunk_ids if chunk_ids is not None else self._encode_chunk(chunk))
        return ids

    def _encode_chunk(self, text: str) -> list[int]:
        """BPE inside one pre-split chunk, remembered because words repeat a lot."""
        chunk = text.encode("utf-8")
        if chunk in self._ranks:
            # The whole chunk is one token: done. Fast for common words, and what tiktoken does
            # (for GPT-2 it changes no result: the merges reach every token's bytes anyway).
            ids = [self._ranks[chunk]]
        else:
            ids = [self._ranks[p] for p in self._bpe(chunk)]
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()
        self._cache[text] = ids
        return ids

    def _bpe(self, chunk: bytes) -> list[bytes]:
        """Start from single bytes; merge the adjacent pair that forms the lowest-id token (the
        leftmost on ties) until no adjacent pair forms a token.

        ``ranks[i]`` is the id that ``parts[i] + parts[i + 1]`` would become (infinity: none).
        A merge changes only the two pairs beside it, so only those are looked up again,
        instead of every pair at every step."""
        parts = [chunk[i : i + 1] for i in range(len(chunk))]
        lookup, none = self._ranks.get, float("inf")
        ranks = [lookup(left + right, none) for left, right in zip(parts, parts[1:])]
        while ranks:
            best = min(ranks)
            if best == none:
                break
            i = ranks.index(best)  # the leftmost of equal ranks
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
            del ranks[i]
            if i > 0:
                ranks[i - 1] = lookup(parts[i - 1] + parts[i], none)
            if i < len(parts) - 1:
                ranks[i] = lookup(parts[i] + parts[i + 1], none)
        return parts

    def _allowed_specials(self, allowed_special) -> set[str]:
        if allowed_special == "all":
            return self.special_tokens_set
        if isinstance(allowed_special, str):
            raise TypeError(
                f"allowed_special must be 'all' or a set of token names, got the string "
                f"{allowed_special!r}; did you mean {{{allowed_special!r}}}?"
            )
        allowed = set(allowed_special)
        unknown = allowed - self.special_tokens_set
        if unknown:
            raise ValueError(
                f"allowed_special names {sorted(unknown)}, which are not special tokens of this "
                f"tokenizer; it has {sorted(self.special_tokens) or 'none'}"
            )
        return allowed

    @staticmethod
    def _special_pattern(tokens: Iterable[str]) -> str:
        # Longest first, so a special token that contains another one wins.
        alternatives = sorted(tokens, key=len, reverse=True)
        return "|".join(regex.escape(t) for t in alternatives)

    def _split_on_specials(self, text: str, specials: Iterable[str], keep: bool = False) -> list[str]:
        """Split ``text`` around occurrences of ``specials``, keeping them as parts if ``keep``."""
        specials = list(specials)
        if not specials:
            return [text]
        pattern = self._special_pattern(specials)
        parts = regex.split(f"({pattern})" if keep else pattern, text)
        return [p for p in parts if p]

    # -- decoding ----------------------------------------------------------------------------

    def decode_single_token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token (special tokens: their UTF-8 text)."""
        token_id = _as_id(token_id)
        piece = self.vocab.get(token_id)
        if piece is not None:
            return piece
        name = self._special_by_id.get(token_id)
        if name is not None:
            return name.encode("utf-8")
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

    # -- saving and loading ------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the tokenizer to one readable JSON file (one merge per line); returns the path."""
        path = Path(path)
        header = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "pattern": self.pattern,
            "special_tokens": self.special_tokens,
        }
        if self.byte_ids != list(range(256)):
            header["byte_ids"] = self.byte_ids  # GPT-2 numbers its single bytes differently
        if self.merge_counts is not None:
            header["merge_counts"] = self.merge_counts
        lines = ["{"]
        lines += [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in header.items()]
        lines.append('  "merges": [')
        merge_lines = [f"    [{l}, {r}, {n}]" for (l, r), n in self.merges]
        lines.append(",\n".join(merge_lines))
        lines += ["  ]", "}", ""]
        path.write_text("\n".join(lines), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a file written by ``save``."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is not a saved BPETokenizer (not valid JSON: {err})") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a saved BPETokenizer (no \"format\": \"{_FORMAT}\")")
        if data.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"{path} has format version {data.get('version')!r}; this code reads version "
                f"{_FORMAT_VERSION}"
            )
        try:
            tokenizer = cls(pattern=data["pattern"])
            merges = [((int(l), int(r)), int(n)) for l, r, n in data["merges"]]
            tokenizer._set_state(
                byte_ids=data.get("byte_ids", list(range(256))),
                merges=merges,
                special_tokens={str(k): int(v) for k, v in data["special_tokens"].items()},
                merge_counts=data.get("merge_counts"),
            )
        except (KeyError, TypeError, ValueError, AttributeError, regex.error) as err:
            raise ValueError(f"{path} is a corrupted BPETokenizer file: {err!r}") from None
        return tokenizer

    # -- GPT-2 -------------------------------------------------------------------------------

    @classmethod
    def from_gpt2(cls, encoder_json_path: str | Path, vocab_bpe_path: str | Path) -> BPETokenizer:
        """Load OpenAI's GPT-2 files; the result gives exactly tiktoken's "gpt2" ids.

        ``encoder.json`` maps token strings to ids, where each byte is written as a printable
        stand-in character (``gpt2_byte_to_unicode``: a space is 'Ġ'). ``vocab.bpe`` lists the
        50,000 merges in order, after a version line. The n-th merge must create id 256 + n:
        that is what makes GPT-2's ids usable as ranks.
        """
        try:
            encoder = json.loads(Path(encoder_json_path).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{encoder_json_path} is not GPT-2's encoder.json ({err})") from None
        if not isinstance(encoder, dict):
            raise ValueError(f"{encoder_json_path} is not GPT-2's encoder.json (not a JSON object)")
        merge_lines = Path(vocab_bpe_path).read_text(encoding="utf-8").split("\n")
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
        tokenizer = cls(GPT2_SPLIT_PATTERN)
        tokenizer._set_state(byte_ids, merges, specials)
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
