"""How far is every number in a checked notebook output from flipping its last printed digit?

    python tests/checked_output_margins.py                 # all ten notebooks, smoke profile
    python tests/checked_output_margins.py 04 05           # some of them

nbval compares a ``# NBVAL_CHECK_OUTPUT`` cell's output as text. A float printed with four
decimals is only safe there if the value sits well inside its rounding interval: other CPUs,
thread counts and BLAS kernels change the last bits of float32 results, and a value within a
few units in the last place of a rounding boundary prints differently elsewhere (notebook 06
once printed a perplexity of 48725.8203 on one machine and 48725.8672 on another).

This script runs each notebook as it is, then once more with every checked cell printing more
digits (tensor print precision, f-string precisions and pandas' ``round`` raised by ``EXTRA``),
pairs each printed number with its longer twin and lists those whose distance to the nearest
rounding boundary (or, for a printed zero, to a sign flip) is under ``MIN_MARGIN`` times the
number's size. It exits 1 if there is one. It is a tool for whoever adds or changes a checked
cell; the suite itself runs the notebooks again on another arithmetic path (``make
test-portable``). Measured here, those paths move a small computation's result by 1-2 units in
the last place and a 124M-parameter model's logits by up to ~30: a large model's numbers belong
in a checked output only rounded far beyond that (or in an ``assert`` with a tolerance).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
EXTRA = 5  # more digits in the twin run
MIN_MARGIN = 1e-6  # relative: about 8 float32 units in the last place
CHECK = "# NBVAL_CHECK_OUTPUT"

NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:e[+-]?\d+)?")
FORMAT_SPEC = re.compile(r"(:[^{}:]*?\.)(\d+)([efg%])(?=[}\"'])")


def more_digits(source: str) -> str:
    """The cell's source, printing EXTRA more digits wherever it chooses a precision."""
    source = FORMAT_SPEC.sub(lambda m: f"{m[1]}{int(m[2]) + EXTRA}{m[3]}", source)
    return re.sub(r"\.round\((\d+)\)", lambda m: f".round({int(m[1]) + EXTRA})", source)


def text_of(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            parts.append(out["text"])
        elif "data" in out and "text/plain" in out["data"]:
            parts.append(out["data"]["text/plain"])
    return "".join(parts)


def decimals(token: str) -> int:
    mantissa = token.split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def margin(printed: str, precise: str) -> float | None:
    """Relative distance of the precise value to where its printed form would change; None
    for a number that cannot change (an integer, or a value its twin shows to be exact)."""
    value, shown = float(precise.replace(",", "")), float(printed.replace(",", ""))
    if "." not in printed and "e" not in printed:
        return None  # an integer: ids, counts, shapes
    if shown == 0.0:
        # 0.0000 or -0.0000: the sign is whatever the last bits say, unless truly zero
        return abs(value) if value != 0.0 or precise.startswith("-") else None
    if value == shown:
        return None  # exact: the extra digits are all zero
    exponent = int(printed.split("e")[1]) if "e" in printed else 0
    step = 10.0 ** (exponent - decimals(printed))
    scaled = abs(value) / step
    return abs(scaled - math.floor(scaled) - 0.5) * step / abs(value)


def execute(nb, path: Path):
    NotebookClient(nb, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def run(path: Path, min_margin: float) -> tuple[list[tuple[int, str, str, float]], list[float]]:
    # Run it as it is (the committed outputs may come from another profile or older code),
    # then its twin with more digits.
    nb = execute(nbformat.read(path, as_version=4), path)
    checked = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and CHECK in cell.source]
    originals = {i: text_of(nb.cells[i]) for i in checked}
    for i in checked:
        nb.cells[i].source = more_digits(nb.cells[i].source)
    prelude = nbformat.v4.new_code_cell(
        f"import torch, pandas\ntorch.set_printoptions(precision={4 + EXTRA})\n"
        f"pandas.set_option('display.precision', {6 + EXTRA})"
    )
    nb.cells.insert(0, prelude)
    execute(nb, path)
    findings, margins = [], []
    for index, original in originals.items():
        precise = text_of(nb.cells[index + 1])
        printed_numbers, precise_numbers = NUMBER.findall(original), NUMBER.findall(precise)
        if len(printed_numbers) != len(precise_numbers):
            findings.append((index, "?", "?", float("nan")))  # could not pair them up
            continue
        for printed, twin in zip(printed_numbers, precise_numbers):
            m = margin(printed, twin)
            if m is None:
                continue
            margins.append(m)
            if m < min_margin:
                findings.append((index, printed, twin, m))
    return findings, margins


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="numbers like 04 (default: all)")
    parser.add_argument("--min-margin", type=float, default=MIN_MARGIN,
                        help=f"smallest relative margin that passes (default {MIN_MARGIN})")
    args = parser.parse_args()
    os.environ.setdefault("LLM_PROFILE", "smoke")
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        paths = [p for p in paths if p.name[:2] in args.notebooks]
    bad = 0
    for path in paths:
        findings, margins = run(path, args.min_margin)
        for index, printed, twin, m in findings:
            bad += 1
            why = "outputs could not be paired" if math.isnan(m) else f"margin {m:.1e}"
            print(f"{path.name} cell {index}: {printed} (is {twin}): {why}")
        smallest = f", smallest margin {min(margins):.1e}" if margins else ""
        verdict = f"{len(findings)} fragile" if findings else "ok"
        print(f"{path.name}: {verdict} ({len(margins)} printed floats{smallest})", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
