"""report and compare on a result file of 50,000 distinct cases (time and peak memory),
and the start-up of the commands that never import torch.

    python experiments/scale.py > results/scale.md        # about a minute here

The file is made from a real one (results/epyc-zen5-2core.json): its train and infer
entries copied in turn, the n-th copy given batch size n, until there are CASES distinct
cases, times jittered. Each command runs as its own process, as CI runs it; peak memory is the child's
ru_maxrss. Issue 12 asks for report under 60 s and 1 GB, compare under 15 s.
"""

from __future__ import annotations

import copy
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from mnist_models.machine.cpu import cpu_facts

CASES = 50_000
SOURCE = Path(__file__).parents[1] / "results" / "epyc-zen5-2core.json"


def make(path: Path, factor: float, seed: int) -> None:
    doc = json.loads(SOURCE.read_text())
    entries = [b for b in doc["benchmarks"] if b["extra_info"]["operation"] != "tta"]
    rng, made = random.Random(seed), []
    for i in range(CASES):
        b = copy.deepcopy(entries[i % len(entries)])
        size = i + 1  # every case its own batch size: 50,000 distinct cases
        b["extra_info"]["batch_size"] = size
        b["param"] = f"{b['param'].split('-bs')[0]}-bs{size}{b['param'].split('-bs')[1].lstrip('0123456789')}"
        data = [x * factor * rng.uniform(0.95, 1.05) for x in b["stats"]["data"]]
        b["stats"].update(data=data, min=min(data), max=max(data), median=sorted(data)[len(data) // 2])
        b["stats"].update(q1=sorted(data)[1], q3=sorted(data)[-2], mean=sum(data) / len(data))
        made.append(b)
    doc["benchmarks"] = made
    path.write_text(json.dumps(doc))


def measure(command: list[str]) -> tuple[float, float, int]:
    """Seconds, peak MiB of the child, and its exit code."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, done.returncode


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base, new = Path(tmp) / "base.json", Path(tmp) / "new.json"
        make(base, 1.0, 0)
        make(new, 1.3, 1)
        mb = base.stat().st_size / 2**20
        rows = []
        for name, command in [
            ("report", [sys.executable, "-m", "mnist_models", "report", str(base), "--out", f"{tmp}/report"]),
            ("compare", [sys.executable, "-m", "mnist_models", "compare", str(base), str(new)]),
        ]:
            seconds, peak, code = measure(command)
            rows.append(f"| `{name}` | {seconds:.1f} s | {peak:,.0f} MiB | {code} |")
    cpu = cpu_facts()
    print(
        f"# report and compare at scale\n\nMade by `python experiments/scale.py > results/scale.md` on "
        f"{cpu['cpu_model']} family {cpu['cpu_family']} ({psutil.cpu_count()} cores; epyc-zen5-2core's "
        f"class): a result file of {CASES:,} distinct cases ({mb:.0f} MB, made from `{SOURCE.name}`'s "
        "train and infer entries, the n-th copy with batch size n) and a copy 1.3x slower, each "
        "command in a process of its own (peak memory: the largest child so far, ru_maxrss). "
        "The goals: report under 60 s and 1 GB, compare under 15 s (its exit code 1: the slower "
        "copy's cases are flagged, as they should be).\n"
    )
    print("| command | wall time | peak memory | exit code |\n|---|---:|---:|---:|")
    print("\n".join(rows))
    print("\nStart-up: commands that never import torch, median of 5 runs each (goal: under 2 s).\n")
    print("| command | median wall time |\n|---|---:|")
    fixture = Path(__file__).parents[1] / "tests" / "data" / "fixture-cpu.json"
    for args in (
        ["--version"],
        ["compare", "--help"],
        ["train", "--model", "resnet", "--out", "x"],
        ["compare", str(fixture), str(fixture)],
    ):
        times = sorted(measure([sys.executable, "-m", "mnist_models", *args])[0] for _ in range(5))
        shown = " ".join(a if not a.endswith(".json") else "tests/data/fixture-cpu.json" for a in args)
        print(f"| `mnist-bench {shown}` | {times[2]:.2f} s |")


if __name__ == "__main__":
    main()
