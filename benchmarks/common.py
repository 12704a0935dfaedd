"""What every benchmark here shares: the device, alternating timed runs, median ratios, tables.

Timing rules (the same for all benchmarks): every contender runs once per round, in an order
rotated from round to round, so a slow spell of the machine (another process, a warm-up, a
clock change) hits each of them about equally. Speed is compared *within* a round (a ratio of
two runs that were seconds apart) and the median over rounds is reported: ratios from one
process on one machine carry over to other machines far better than absolute times do.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so `python benchmarks/x.py` finds `benchmarks` and `helpers`
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def pick_device() -> torch.device:
    """CUDA if there is a GPU, else the CPU: the same command gives GPU numbers elsewhere."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"CPU {platform.machine()}, {torch.get_num_threads()} torch threads"


def environment_line(device: torch.device) -> str:
    """One line saying where the numbers come from."""
    return (
        f"Device: {describe_device(device)}; Python {platform.python_version()}, "
        f"torch {torch.__version__}."
    )


def peak_resident_bytes() -> int:
    """This process's peak resident memory so far, in bytes.

    On Linux, ``VmHWM`` from /proc: it belongs to the process's own memory map, which starts
    afresh at ``exec``. ``ru_maxrss`` does not: a child process inherits its parent's peak at
    the time of the fork, so a small probe started by a big benchmark process would report the
    parent's size. Elsewhere ``ru_maxrss`` is the best there is (bytes on macOS, KiB on BSD).
    """
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer measures the work and not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(run: Callable[[], object], device: torch.device, repeats: int = 5) -> float:
    """The shortest of ``repeats`` timed calls of ``run``, after one untimed warm-up call: for
    probing what the machine can do at best (its matmul or memory-read peak)."""
    run()
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def alternate(
    contenders: dict[str, Callable[[], object]], rounds: int, device: torch.device
) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Seconds of each contender's run, ``rounds`` times, alternating (see the module doc),
    and what each contender's last run returned (for checking that they agree)."""
    names = list(contenders)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, object] = {}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            start = time.perf_counter()
            results[name] = contenders[name]()
            synchronize(device)
            seconds[name].append(time.perf_counter() - start)
    return seconds, results


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of numerator[r] / denominator[r] (e.g. baseline time / our time)."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(value: float, target: float) -> str:
    """'met' or 'missed' for a ratio that should be at least ``target``."""
    return f"{'met' if value >= target else 'missed'} (target ≥ {target:g}×)"


def write_report(markdown: str, output: str | None) -> None:
    """Print the report; also save it when ``--output`` names a file."""
    print(markdown)
    if output:
        Path(output).write_text(markdown + "\n", encoding="utf-8")
