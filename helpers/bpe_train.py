"""The fast BPE trainer behind ``BPETokenizer.train``: the merges of ``train_bpe_simple``, sooner.

``helpers.tokenizer.train_bpe_simple`` counts every pair of every chunk again after each merge.
Most of those counts did not change: a merge only touches the chunks that contain the merged
pair. So this trainer keeps the counts between merges:

- ``where``: pair -> the chunks that contain it, so a merge visits only those chunks;
- after a merge, each visited chunk's pairs are counted before and after, and only the
  differences (times the chunk's frequency) are added to the counts;
- the most frequent pair comes from a heap of ``(-count, pair)``. A count that changes gets a
  new entry; the old one goes stale and is skipped when popped (lazy deletion).

Ties: the heap orders equal counts by the pair itself, so the smallest ``(left, right)`` wins,
as in ``train_bpe_simple``; both learn the same merges in the same order (the tests check this
on the-verdict and on random texts). ``benchmarks/tokenization.py`` times the two.

What ``BPETokenizer.train`` adds to the simple trainer: special tokens get the last ids, as
``<|endoftext|>`` does in GPT-2, and where their text occurs in the training text it only
separates documents (nothing is learnt from it); ``verbose`` prints each merge as it is learnt;
a text that runs out of pairs gives a warning and a smaller vocabulary.
"""

from __future__ import annotations

import heapq
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable

import regex

from .bpe_checks import check_special_tokens, split_on_specials
from .tokenizer import ENDOFTEXT, BPETokenizer, merge_pair, render_token

__all__ = ["train_bpe"]


def train_bpe(
    tokenizer: BPETokenizer,
    text: str,
    vocab_size: int,
    special_tokens: Iterable[str] = (ENDOFTEXT,),
    verbose: bool = False,
) -> BPETokenizer:
    """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text`` into ``tokenizer``
    (splitting with its pattern); returns it. ``BPETokenizer.train`` calls this."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    special_tokens = check_special_tokens(special_tokens)  # a str such as "<s>" is refused
    minimum = 256 + len(special_tokens)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < minimum:
        raise ValueError(
            f"vocab_size must be an integer of at least {minimum} (256 byte tokens + "
            f"{len(special_tokens)} special), got {vocab_size!r}"
        )
    if not isinstance(verbose, bool):
        raise ValueError(f"verbose must be True or False, got {verbose!r}")
    n_merges = vocab_size - minimum

    # Distinct chunks with their counts; special tokens in the text only separate documents.
    chunk_counts: Counter[str] = Counter()
    pattern = regex.compile(tokenizer.pattern)
    for part in split_on_specials(text, special_tokens):
        chunk_counts.update(pattern.findall(part))
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    freqs = list(chunk_counts.values())

    pair_counts, where = _count_pairs(words, freqs)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges, counts = [], []
    pieces = {i: bytes([i]) for i in range(256)}  # the bytes of each id, for printing
    for step in range(n_merges):
        best = _pop_best(heap, pair_counts)
        if best is None:
            warnings.warn(
                f"the text has no adjacent pairs left after {step} merges, fewer than the "
                f"{n_merges} that vocab_size={vocab_size} asks for; the vocabulary is smaller",
                stacklevel=3,  # the caller of BPETokenizer.train
            )
            break
        pair, count = best
        new_id = 256 + step
        _apply_merge(pair, new_id, words, freqs, pair_counts, where, heap)
        merges.append((pair, new_id))
        counts.append(count)
        pieces[new_id] = pieces[pair[0]] + pieces[pair[1]]
        if verbose:
            _print_merge(step, n_merges, pair, new_id, count, pieces)

    first_special = 256 + len(merges)
    specials = {name: first_special + k for k, name in enumerate(special_tokens)}
    return tokenizer.set_merges(merges, specials, merge_counts=counts)


def _count_pairs(words, freqs):
    """Every adjacent pair's count over all words (times each word's frequency), and the index
    pair -> the words that contain it."""
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for w, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq
            where[pair].add(w)
    return pair_counts, where


def _pop_best(heap, pair_counts):
    """The most frequent pair and its count, or None when no pairs are left."""
    while heap:
        neg_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair) == -neg_count:  # not a stale entry
            return pair, -neg_count
    return None


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
            heapq.heappush(heap, (-pair_counts[p], p))  # the old entry of p is stale now
        else:
            del pair_counts[p]
            where.pop(p, None)
    pair_counts.pop(pair, None)


def _print_merge(step, n_merges, pair, new_id, count, pieces):
    left, right, new = (render_token(pieces[i]) for i in (*pair, new_id))
    print(
        f"merge {step + 1:>{len(str(n_merges))}}/{n_merges}  id {new_id}:  "
        f"'{left}' + '{right}' -> '{new}'  (count {count:,})"
    )
