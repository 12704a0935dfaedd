"""benchmarks/: each quick run finishes, has its rows, and its correctness checks pass.

Speed is never asserted here (that is what the benchmarks report, as ratios); only that every
contender computed the same thing: the same tokens, ids, merges or logits.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def tables(markdown: str) -> list[list[dict[str, str]]]:
    """Every markdown table in the text, as a list of {column: cell} rows."""
    found, lines = [], markdown.splitlines() + [""]
    block: list[str] = []
    for line in lines:
        if line.startswith("|"):
            block.append(line)
        elif block:
            cells = [[c.strip() for c in row.strip("|").split("|")] for row in block]
            header, body = cells[0], cells[2:]  # cells[1] is the |---| line
            found.append([dict(zip(header, row, strict=True)) for row in body])
            block = []
    return found


def test_tables_reads_what_markdown_table_writes():
    from benchmarks.common import markdown_table

    text = "intro\n\n" + markdown_table(["a", "b"], [[1, "x"], [2, "y"]]) + "\n\nend"
    assert tables(text) == [[{"a": "1", "b": "x"}, {"a": "2", "b": "y"}]]


def test_naive_trainer_learns_the_same_merges_as_ours():
    from benchmarks.tokenization import naive_train
    from helpers.tokenizer import BPETokenizer

    text = "low lower lowest newer wider " * 20 + "the then there these " * 15
    ours = BPETokenizer().train(text, vocab_size=256 + 15, special_tokens=())
    assert naive_train(text, 15) == ours.merges


def test_generation_quick():
    pytest.importorskip("transformers")
    pytest.importorskip("llms_from_scratch.ch04")
    from benchmarks import generation

    (table,) = tables(generation.run(quick=True))
    names = [row["contender"] for row in table]
    assert names == [generation.OURS_CACHE, generation.OURS_PLAIN, generation.BOOK,
                     generation.HF]
    assert all(row["same tokens as ours"] == "yes" for row in table)
    assert all(float(row["max abs logit diff vs ours"]) < 1e-4 for row in table)


def test_tokenization_quick():
    from benchmarks import tokenization

    report = tokenization.run(quick=True)
    encode, train = tables(report)
    assert [(row["text"], row["tokenizer"]) for row in encode] == [
        (text, who) for text in tokenization.TEXTS for who in ("ours", "tiktoken")
    ]
    assert all(row["same ids as tiktoken"] == "yes" for row in encode)
    assert len(train) == 2 and all(row["same merges"] == "yes" for row in train)


def test_loading_quick():
    pytest.importorskip("transformers")
    from benchmarks import loading

    (table,) = tables(loading.run(quick=True))
    assert [row["loader"] for row in table] == [loading.OURS, loading.HF]
    assert all(row["same logits"] == "yes" for row in table)
