"""Every side-by-side benchmark in one run, as one markdown report.

    python benchmarks/run_all.py                      # full runs (about an hour on 2 CPU cores)
    python benchmarks/run_all.py --quick              # seconds each: does everything still run?
    python benchmarks/run_all.py --only generation loading --output results.md

The device is detected (CUDA when there is a GPU), so the same command gives the GPU rows.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import environment_line, pick_device  # noqa: E402

BENCHMARKS = ("training", "generation", "tokenization", "loading")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=BENCHMARKS)
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)

    sections = [f"# Benchmarks{' (quick)' if args.quick else ''}", "",
                f"Measured {date.today().isoformat()}. " + environment_line(pick_device())]
    print("\n".join(sections), flush=True)
    failed = []
    for name in args.only:
        start = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            section = module.run(quick=args.quick)
        except Exception as error:  # one benchmark failing must not lose the others' results
            traceback.print_exc()
            failed.append(name)
            section = f"### {name}: failed\n\n{type(error).__name__}: {error}"
        sections += ["", section]
        print(section, flush=True)
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        if args.output:  # after every benchmark, so an interrupted run keeps what it measured
            args.output.write_text("\n".join(sections) + "\n", encoding="utf-8")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
