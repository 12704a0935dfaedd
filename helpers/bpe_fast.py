"""The same BPE merges as ``BPETokenizer.encode_chunk``, in n log n steps instead of n².

``encode_chunk`` (the listing of notebook 01) looks at every adjacent pair again after each
merge: for a chunk of n bytes that is about n²/2 look-ups. Words are short, so that costs
nothing; but one chunk can be long (a pasted base64 blob, a URL, a line of 200,000 dashes), and
200,000 bytes took six minutes. ``merge_by_rank`` makes exactly the same merges, in the same
order, the way tiktoken does for long pieces:

- the parts are a linked list over the chunk's bytes: ``next_start[i]`` is where the part that
  starts at byte i ends, so merging two parts is two assignments, not a list copy;
- the candidate pairs wait in a heap of ``(rank, start, end)``: the lowest rank first and, among
  equal ranks, the leftmost, which is the pair ``encode_chunk`` would pick;
- a merge changes only the pairs on either side of the new part: those two are pushed anew. The
  entries that the merge made stale stay in the heap and are skipped when popped: an entry is
  still current while a part starts at ``start`` and the pair starting there still ends at
  ``end`` (parts only grow, so a stale entry never becomes current again).

Each merge costs O(log n) heap work plus two look-ups of at most two tokens' bytes.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

__all__ = ["merge_by_rank"]


def merge_by_rank(data: bytes, ranks: Mapping[bytes, int]) -> list[int]:
    """The token ids of ``data`` after BPE: merge, again and again, the adjacent pair whose
    bytes have the lowest rank in ``ranks`` (the leftmost on ties), until none is a token.
    Every single byte must be in ``ranks``."""
    n = len(data)
    if n < 2:
        return [ranks[data]] if data else []
    next_start = list(range(1, n + 1))  # the part starting at i ends where the next begins
    prev_start = list(range(-1, n - 1))  # -1: no part before
    alive = [True] * n  # whether a part starts at byte i
    heap = []  # (rank, start, end) of every adjacent pair that is a token
    for i in range(n - 1):
        _push_pair(heap, data, ranks, i, i + 1, i + 2)
    while heap:
        _, start, end = heapq.heappop(heap)
        middle = next_start[start] if alive[start] else n
        if middle >= n or next_start[middle] != end:
            continue  # stale: one of the two parts has merged with another since
        # merge the part at `start` with the one at `middle`
        alive[middle] = False
        next_start[start] = end
        if end < n:
            prev_start[end] = start
        _push_pair(heap, data, ranks, prev_start[start], start, end)  # the pair on the left
        if end < n:
            _push_pair(heap, data, ranks, start, end, next_start[end])  # and on the right
    ids, i = [], 0
    while i < n:
        ids.append(ranks[data[i : next_start[i]]])
        i = next_start[i]
    return ids


def _push_pair(heap: list, data: bytes, ranks: Mapping[bytes, int], left: int, middle: int,
               end: int) -> None:
    """Push the pair of the parts [left, middle) and [middle, end) if their bytes are a token."""
    if left < 0:
        return
    rank = ranks.get(data[left:end])
    if rank is not None:
        heapq.heappush(heap, (rank, left, end))
