"""Loading GPT-2 weights: time and peak memory of ``load_gpt2`` against ``from_pretrained``.

    python benchmarks/loading.py            # a 124M-size checkpoint (about a minute or two)
    python benchmarks/loading.py --quick    # a tiny checkpoint (seconds)

The benchmark first writes a checkpoint in Hugging Face's layout: ``GPT2LMHeadModel`` with
GPT-2 small's config and random weights (seeded), ``save_pretrained`` with safetensors into a
temporary folder. Then each load runs in a fresh Python process, so that one load's memory
cannot hide in another's: the process imports what it needs, notes its peak resident memory
(``VmHWM``), loads, and notes the peak again; the difference is the load's peak. The time
covers the load call only (not Python's start or the imports). Loads alternate between the two
contenders, and both models' logits on the same tokens must agree.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    import common  # noqa: F401  (puts the repository root on sys.path)

import torch

from benchmarks.common import ROOT, environment_line, markdown_table, median_ratio, write_report

SEED = 123
FULL = {"config": {}, "rounds": 3}  # GPT2Config() is GPT-2 small (124M)
QUICK = {"config": {"n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 1000,
                    "bos_token_id": None, "eos_token_id": None}, "rounds": 1}
PEAK_TARGET = 1.3  # our peak at most 1.3x the checkpoint's size
OURS, HF = "ours: load_gpt2(folder)", "transformers: from_pretrained(folder)"

# Runs in a fresh process: one load, then time, peak memory and a few logits as JSON.
CHILD = """
import json, resource, sys, time
import torch
from benchmarks.common import peak_resident_bytes as peak
who, folder = sys.argv[1], sys.argv[2]
if who == "ours":
    import safetensors.torch  # noqa: F401  (transformers imports it too: not part of the timing)
    from helpers.weights import load_gpt2
    load = lambda: load_gpt2(folder)
    logits = lambda model, ids: model(ids)
else:
    from transformers import GPT2LMHeadModel
    load = lambda: GPT2LMHeadModel.from_pretrained(folder)
    logits = lambda model, ids: model(ids).logits
page = resource.getpagesize()
with open("/proc/self/statm") as f:
    before = int(f.read().split()[1]) * page  # resident now, after the imports
start = time.perf_counter()
model = load()
loaded, loaded_peak = time.perf_counter() - start, peak()
with torch.no_grad():  # a first forward: weights that were only mapped get read now
    out = logits(model.eval(), torch.arange(8).unsqueeze(0))[0, -1, :16]
print(json.dumps({"seconds": loaded, "used_seconds": time.perf_counter() - start,
                  "peak_bytes": loaded_peak - before, "used_peak_bytes": peak() - before,
                  "logits": out.tolist()}))
"""


WRITER = """
import json, sys, torch
from transformers import GPT2Config, GPT2LMHeadModel
torch.manual_seed(int(sys.argv[2]))
GPT2LMHeadModel(GPT2Config(**json.loads(sys.argv[3]))).save_pretrained(sys.argv[1], safe_serialization=True)
"""


def write_checkpoint(folder: Path, config_changes: dict) -> int:
    """A random GPT-2 in Hugging Face's layout; returns the size of its weights file.

    Written by a separate process, so that the benchmark process itself stays small (and its
    children's memory readings cannot pick up a 124M model's worth of the parent's peak:
    ``ru_maxrss`` would, which is why the loaders read ``VmHWM`` instead).
    """
    subprocess.run(
        [sys.executable, "-c", WRITER, str(folder), str(SEED), json.dumps(config_changes)],
        check=True, capture_output=True, cwd=ROOT,
    )
    return (folder / "model.safetensors").stat().st_size


def load_in_child(who: str, folder: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, who, str(folder)],
        capture_output=True, text=True, cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"loading with {who} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(folder: Path, rounds: int) -> dict[str, list[dict]]:
    """Each contender's results, one per round, alternating which goes first."""
    names = ["ours", "hf"]
    results: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(rounds):
        for who in names[r % 2 :] + names[: r % 2]:
            results[who].append(load_in_child(who, folder))
    return results


def run(quick: bool = False) -> str:
    setup = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="gpt2-checkpoint-") as tmp:
        size = write_checkpoint(Path(tmp), setup["config"])
        results = measure(Path(tmp), setup["rounds"])
    ours_logits = torch.tensor(results["ours"][-1]["logits"])
    hf_logits = torch.tensor(results["hf"][-1]["logits"])
    same = torch.allclose(ours_logits, hf_logits, rtol=1e-4, atol=1e-4)
    rows = []
    for who, name in (("ours", OURS), ("hf", HF)):
        row = [name]
        for key in ("seconds", "used_seconds"):
            times = [r[key] for r in results[who]]
            ours = [r[key] for r in results["ours"]]
            row += [f"{median(times):.2f}", f"{median_ratio(times, ours):.2f}×"]
        for key in ("peak_bytes", "used_peak_bytes"):
            peak = median(r[key] for r in results[who])
            row.append(f"{peak / 2**20:,.0f} ({peak / size:.2f}×)")
        rows.append(row + ["yes" if same else "**NO**"])
    ours_peaks = [median(r[key] for r in results["ours"]) for key in ("peak_bytes", "used_peak_bytes")]
    ours_peak = max(ours_peaks) / size
    return "\n".join([
        "### Loading a GPT-2 checkpoint" + (" (quick)" if quick else ""),
        "",
        f"model.safetensors: {size / 2**20:,.0f} MiB (Hugging Face layout, random weights, "
        f"seed {SEED}); {setup['rounds']} alternating round(s), each load in a fresh process; "
        "medians. Peak = maximum resident memory minus the resident memory before the load "
        "(MiB, and × the checkpoint's size). \"+ first forward\": until the model has run once "
        "on 8 tokens (a loader that maps the file lazily reads the weights only then). "
        + environment_line(torch.device("cpu")),
        "",
        markdown_table(["loader", "load s", "load time vs ours", "load + first forward s",
                        "vs ours", "peak after load", "peak + first forward", "same logits"],
                       rows),
        "",
        f"- our peak (the larger of the two): {ours_peak:.2f}× the checkpoint — "
        f"{'met' if ours_peak <= PEAK_TARGET else 'missed'} (target ≤ {PEAK_TARGET:g}×)",
    ])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny checkpoint, seconds")
    parser.add_argument("--output", help="also write the markdown to this file")
    args = parser.parse_args(argv)
    write_report(run(quick=args.quick), args.output)


if __name__ == "__main__":
    main()
