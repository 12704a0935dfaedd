"""benchmarks/: each quick run finishes, has its rows, and its correctness checks pass.

Speed is never asserted here (that is what the benchmarks report, as ratios); only that every
contender computed the same thing: the same tokens, ids, merges or logits.
"""

import sys
from pathlib import Path

import pytest
import torch

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
    assert names == [generation.OURS_CACHE, generation.OURS_OWN_LAYERS, generation.OURS_PLAIN,
                     generation.BOOK, generation.HF]
    assert all(row["same tokens as ours"] == "yes" for row in table)
    assert all(float(row["max abs logit diff vs ours"]) < 1e-4 for row in table)


def test_generation_own_layers_switches_the_decoding_kernels_off():
    from benchmarks import generation
    from helpers.generate import generate
    from helpers.model import GPTModel

    model = GPTModel(generation.QUICK_CFG)
    swapped = []  # per forward of the final norm: was its forward replaced?
    model.final_norm.register_forward_hook(lambda m, args, out: swapped.append("forward" in vars(m)))
    prompt = torch.zeros((1, 3), dtype=torch.long)
    generation.own_layers(generate, model, prompt, 2, 64)
    generate(model, prompt, 2, 64)
    assert swapped == [False, False, True, True]  # the prompt, one step; each way


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


def test_training_contenders_compute_the_same_loss():
    pytest.importorskip("transformers")
    pytest.importorskip("llms_from_scratch.ch04")
    import torch

    from benchmarks import training
    from helpers.model import GPT_CONFIG_124M, GPTModel

    # qkv_bias: GPT-2's c_attn always has a bias, so with it every contender has the same
    # parameters and one optimizer step must change them all alike
    cfg = {**GPT_CONFIG_124M, "vocab_size": 300, "context_length": 16, "emb_dim": 32,
           "n_heads": 4, "n_layers": 2, "drop_rate": 0.0, "qkv_bias": True}
    torch.manual_seed(0)
    ours = GPTModel(cfg)
    device = torch.device("cpu")
    contenders = {name: training.build(name, cfg, device, ours) for name in training.CONTENDERS}
    inputs, targets = training.batch(cfg, 2, device)
    assert training.check_same_losses(contenders, inputs, targets, tolerance=1e-5) < 1e-5
    # and one optimizer step each still agrees: the same update, not only the same forward
    for _, optimizer, loss_fn in contenders.values():
        training.step(optimizer, loss_fn, inputs, targets)
    assert training.check_same_losses(contenders, inputs, targets, tolerance=1e-4) < 1e-4


def test_peak_memory_of_a_child_does_not_include_its_parent():
    """ru_maxrss would report the parent's peak in a freshly started child; VmHWM does not."""
    import subprocess

    from benchmarks.common import peak_resident_bytes

    ballast = bytearray(400 * 2**20)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page: resident
    assert peak_resident_bytes() > 400 * 2**20
    child = "from benchmarks.common import peak_resident_bytes as p; print(p())"
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    # the child imports what the parent did, less the ballast (whatever torch's build weighs)
    assert int(done.stdout) < peak_resident_bytes() - 300 * 2**20, int(done.stdout) / 2**20
    del ballast


def test_a_cached_step_reads_every_weight_but_one_row_of_each_embedding():
    import torch

    from benchmarks.generation import weight_bytes_per_step
    from helpers.model import GPT_CONFIG_124M, GPTModel

    cfg = {**GPT_CONFIG_124M, "vocab_size": 500, "context_length": 20, "emb_dim": 16,
           "n_heads": 2, "n_layers": 2}
    model = GPTModel(cfg)
    every = sum(p.numel() for p in model.parameters())
    tables = (500 - 1) * 16 + (20 - 1) * 16  # all but one row of the token and position tables
    assert weight_bytes_per_step(model) == 4 * (every - tables)
    model.out_head.weight = model.tok_emb.weight  # tied, as GPT-2: the head reads the table
    shared = sum(p.numel() for p in model.parameters())  # parameters() counts it once
    assert weight_bytes_per_step(model) == 4 * (shared - (20 - 1) * 16)
    assert weight_bytes_per_step(model.to(torch.bfloat16)) == 2 * (shared - (20 - 1) * 16)


def test_run_all_keeps_the_other_results_when_one_benchmark_fails(tmp_path, monkeypatch):
    import types

    from benchmarks import run_all

    def fake(name):
        def run(quick):
            if name.endswith("generation"):
                raise RuntimeError("no such model")
            return f"### {name} table"
        return types.SimpleNamespace(run=run)

    monkeypatch.setattr(run_all.importlib, "import_module", fake)
    report = tmp_path / "results.md"
    code = run_all.main(["--quick", "--only", "training", "generation", "loading",
                         "--output", str(report)])
    assert code == 1
    text = report.read_text()
    assert "### benchmarks.training table" in text and "### benchmarks.loading table" in text
    assert "### generation: failed" in text and "RuntimeError: no such model" in text
