"""Time and peak memory of each notebook, run top to bottom as a student would.

    python benchmarks/notebook_resources.py --profile smoke            # all ten, a markdown table
    python benchmarks/notebook_resources.py --profile cpu 06 07        # some of them
    python benchmarks/notebook_resources.py --profile cpu 06 --save-to notebooks   # and keep it

Each notebook runs in a fresh kernel (``jupyter nbconvert --execute`` on a copy, so the committed
files are untouched), in order, sharing one data folder (notebooks 07-09 need the model 06
saves). Time includes the kernel's start. Peak memory is the kernel's maximum resident set size,
read from ``getrusage(RUSAGE_CHILDREN)`` of a runner process whose only long-lived child is the
kernel. ``--save-to`` writes the executed notebooks there (how the committed outputs are made
without resuming an old checkpoint). ``--data-dir`` keeps earlier results out (a fresh folder retrains notebook 06's model
instead of resuming its checkpoint); downloads come from ``LLM_DATA_MIRROR`` if set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# Runs in a child process: execute one notebook, then report the kernel's peak memory.
RUNNER = """
import json, resource, sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=7200, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
nbformat.write(nb, sys.argv[1])
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def measure(notebook: Path, env: dict) -> dict:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(notebook), str(notebook.parent)],
        env=env, capture_output=True, text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{notebook.name} failed:\n{done.stderr[-3000:]}")
    peak = json.loads(done.stdout.strip().splitlines()[-1])["peak_kib"] * 1024
    return {"notebook": notebook.stem, "seconds": seconds, "peak_bytes": peak}


def as_markdown(rows: list[dict], profile: str) -> str:
    lines = [f"| notebook | time (`{profile}`) | peak memory (`{profile}`) |", "|---|---:|---:|"]
    for row in rows:
        minutes, seconds = divmod(round(row["seconds"]), 60)
        took = f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
        lines.append(f"| {row['notebook']} | {took} | {row['peak_bytes'] / 2**30:.2f} GiB |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("numbers", nargs="*", help="notebook numbers (default: all)")
    parser.add_argument("--profile", default="smoke", choices=["smoke", "cpu", "gpu"])
    parser.add_argument("--data-dir", type=Path, help="data folder to use (default: a fresh one)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--save-to", type=Path, help="write the executed notebooks to this folder")
    args = parser.parse_args(argv)

    chosen = [nb for nb in NOTEBOOKS if not args.numbers or nb.name[:2] in args.numbers]
    with tempfile.TemporaryDirectory() as tmp:
        # absolute: the kernels run in the temporary folder, where "data" would be a new one
        data_dir = args.data_dir.resolve() if args.data_dir else Path(tmp) / "data"
        env = {**os.environ, "LLM_PROFILE": args.profile, "LLM_DATA_DIR": str(data_dir),
               "PYTHONHASHSEED": "0"}
        rows = []
        for notebook in chosen:
            copy = Path(tmp) / notebook.name
            copy.write_bytes(notebook.read_bytes())
            rows.append(measure(copy, env))
            if args.save_to:
                (args.save_to / notebook.name).write_bytes(copy.read_bytes())
            print(f"{notebook.stem}: {rows[-1]['seconds']:.0f} s, "
                  f"{rows[-1]['peak_bytes'] / 2**30:.2f} GiB", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(as_markdown(rows, args.profile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
