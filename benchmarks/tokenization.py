"""Tokenizer speed: our from-scratch BPE against tiktoken (encoding) and the simple trainer.

    python benchmarks/tokenization.py            # the-verdict + tinyshakespeare (a few minutes)
    python benchmarks/tokenization.py --quick    # smaller texts, fewer merges (seconds)

Encoding: ``BPETokenizer.from_gpt2`` (GPT-2's own merges, so the ids must equal tiktoken's,
which is checked) against ``tiktoken``'s gpt2 encoding (``helpers.tokenizer.gpt2_tokenizer``,
the same ranks). Ours keeps a cache of chunks it has encoded; it is emptied before every timed
run, so each run starts cold, as tiktoken (which has no such cache) does.

Training: ``BPETokenizer().train`` (the fast trainer, ``helpers.bpe_train``) for 1,000 merges
on tinyshakespeare, against ``helpers.tokenizer.train_bpe_simple``, the loop notebook 01 shows,
which counts all pairs again after every merge. Both split the text the same way, keep each
distinct chunk once with its count, and break ties the same way, so they must learn the same
merges (checked). The fast one updates only the counts a merge changes.
"""

from __future__ import annotations

import argparse
from statistics import median

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    import common  # noqa: F401  (puts the repository root on sys.path)

import torch

from benchmarks.common import (
    alternate,
    environment_line,
    markdown_table,
    median_ratio,
    verdict,
    write_report,
)
from helpers.data import fetch, read_text
from helpers.tokenizer import BPETokenizer, gpt2_tokenizer, train_bpe_simple

TEXTS = ("the-verdict.txt", "tinyshakespeare.txt")
FULL = {"chars": None, "merges": 1000, "encode_rounds": 5, "train_rounds": 3}
QUICK = {"chars": 20_000, "merges": 30, "encode_rounds": 3, "train_rounds": 3}
ENCODE_TARGET = 10.0  # ours within 10x of tiktoken
TRAIN_TARGET = 5.0  # ours at least 5x faster than the simple trainer


# ---------------------------------------------------------------------------------------------
# The simple trainer: the loop notebook 01 shows, recounting every pair after every merge
# ---------------------------------------------------------------------------------------------


def naive_train(text: str, n_merges: int) -> list[tuple[tuple[int, int], int]]:
    """``train_bpe_simple`` for ``n_merges`` merges (its ``vocab_size`` counts the 256 bytes)."""
    return train_bpe_simple(text, vocab_size=256 + n_merges)


# ---------------------------------------------------------------------------------------------
# The two measurements
# ---------------------------------------------------------------------------------------------


def encode_rows(texts: dict[str, str], rounds: int, device) -> list[list[object]]:
    ours = BPETokenizer.from_gpt2(fetch("encoder.json"), fetch("vocab.bpe"))
    theirs = gpt2_tokenizer()

    def ours_cold(text):
        ours.cache.clear()  # start without remembered chunks, as a fresh tokenizer would
        return ours.encode_ordinary(text)

    rows = []
    for name, text in texts.items():
        runs = {
            "ours": lambda t=text: ours_cold(t),
            "tiktoken": lambda t=text: theirs.encode_ordinary(t),
        }
        seconds, ids = alternate(runs, rounds, device)
        megabytes = len(text.encode("utf-8")) / 1e6
        for who in runs:
            rows.append([
                name, who, f"{len(ids[who]) / median(seconds[who]):,.0f}",
                f"{megabytes / median(seconds[who]):.2f}",
                f"{median_ratio(seconds[who], seconds['tiktoken']):.1f}×",
                "yes" if ids[who] == ids["tiktoken"] else "**NO**",
            ])
    return rows


FAST = "BPETokenizer.train (incremental counts)"
SIMPLE = "train_bpe_simple (recount every merge)"


def train_rows(text: str, n_merges: int, rounds: int, device) -> tuple[list, float]:
    runs = {
        FAST: lambda: BPETokenizer().train(text, vocab_size=256 + n_merges, special_tokens=()).merges,
        SIMPLE: lambda: naive_train(text, n_merges),
    }
    seconds, merges = alternate(runs, rounds, device)
    same = merges[FAST] == merges[SIMPLE]
    speedup = median_ratio(seconds[SIMPLE], seconds[FAST])
    rows = [
        [who, f"{median(seconds[who]):.2f}", f"{median_ratio(seconds[SIMPLE], seconds[who]):.1f}×",
         "yes" if same else "**NO**"]
        for who in runs
    ]
    return rows, speedup


def run(quick: bool = False) -> str:
    setup = QUICK if quick else FULL
    device = torch.device("cpu")  # tokenizers run on the CPU
    texts = {name: read_text(name)[: setup["chars"]] for name in TEXTS}
    encode = encode_rows(texts, setup["encode_rounds"], device)
    train, speedup = train_rows(texts["tinyshakespeare.txt"], setup["merges"],
                                setup["train_rounds"], device)
    slowest = max(float(row[4].rstrip("×")) for row in encode if row[1] == "ours")
    chars = "whole texts" if setup["chars"] is None else f"first {setup['chars']:,} characters"
    return "\n".join([
        "### Tokenizers" + (" (quick)" if quick else ""),
        "",
        f"Encoding ({chars}; GPT-2's vocabulary, ordinary text), {setup['encode_rounds']} "
        "alternating rounds, medians; ours starts each run with an empty chunk cache. "
        + environment_line(device),
        "",
        markdown_table(["text", "tokenizer", "tokens/s", "MB/s", "time vs tiktoken",
                        "same ids as tiktoken"], encode),
        "",
        f"Training {setup['merges']:,} merges on tinyshakespeare ({chars}), "
        f"{setup['train_rounds']} alternating rounds:",
        "",
        markdown_table(["trainer", "seconds (median)", "speed-up vs simple", "same merges"], train),
        "",
        f"- our encoding, slowest text vs tiktoken: {slowest:.1f}× the time — "
        f"{'met' if slowest <= ENCODE_TARGET else 'missed'} (target ≤ {ENCODE_TARGET:g}×)",
        f"- our training vs the simple trainer: {speedup:.1f}× — {verdict(speedup, TRAIN_TARGET)}",
    ])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small texts, a few seconds")
    parser.add_argument("--output", help="also write the markdown to this file")
    args = parser.parse_args(argv)
    write_report(run(quick=args.quick), args.output)


if __name__ == "__main__":
    main()
