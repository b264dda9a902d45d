"""Does the score's interval hold on a repeat run? `mnist-bench run --score` made back to back
on one VM, each run's interval set against the next: the new interval (interleaved passes,
drift.pass_interval) beside today's before it (each case's rounds resampled, on both machines).

    python experiments/calibration.py run --work /tmp/calibration --runs 11     # ~30 min on 2 vCPUs; resumes
    python experiments/calibration.py render --work /tmp/calibration --out results/calibration

`render` writes OUT/calibration.md and copies the runs' result files beside it. The bar:
in at least 9 of the 10 consecutive pairs the two intervals overlap (the leaderboard's own
rule calls them "not distinguishable"); it also counts how often a run's score falls inside
the previous run's interval, and the median interval's half-width.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mnist_models.files import write_files
from mnist_models.harness.workload import VERSION
from mnist_models.reporting.markdown import md_table
from mnist_models.reporting.results import load_results
from mnist_models.reporting.score import DRAWS, SEED, candidates, reference, reference_path, scores, why_left_out

REPO = Path(__file__).resolve().parents[1]


def run(work: Path, runs: int) -> None:
    """`mnist-bench run --score repNN` in `work`, back to back; a finished one is kept."""
    (work / "results").mkdir(parents=True, exist_ok=True)
    for i in range(1, runs + 1):
        label = f"rep{i:02d}"
        if (work / "results" / f"{label}.json").exists():
            continue
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "mnist_models", "run", "--score", label],
            cwd=work,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        (work / f"{label}.log").write_text(done.stdout + done.stderr)
        took = time.monotonic() - start
        (work / f"{label}.seconds").write_text(f"{took:.1f}\n")
        if done.returncode:
            sys.exit(f"{label}: exit {done.returncode}: {done.stderr.strip()[-500:]}")
        print(f"{label}: {took:.0f} s: {done.stdout.strip().splitlines()[-1]}", file=sys.stderr, flush=True)


def todays(frame: pd.DataFrame) -> tuple[float, float]:
    """The interval before this change: every case's rounds resampled on both machines, the
    run's and the reference's (bootstrap, 95%), nothing of the drift."""
    ref_frame, _ = reference(VERSION)
    ref = candidates(ref_frame).set_index("key")
    rows = candidates(frame)
    rows = rows[why_left_out(rows, ref.reset_index()) == ""]
    rng, draws = np.random.default_rng(SEED), []
    for _, r in rows.iterrows():
        base = ref.loc[r["key"]]
        a = np.median(rng.choice(base["data"], size=(DRAWS, len(base["data"]))), axis=1)
        b = np.median(rng.choice(r["data"], size=(DRAWS, len(r["data"]))), axis=1)
        draws.append(np.log(a / b))
    low, high = 1000 * np.exp(np.percentile(np.mean(draws, axis=0), [2.5, 97.5]))
    return float(low), float(high)


def render(work: Path, out: Path) -> None:
    paths = sorted((work / "results").glob("rep*.json"))
    rows = []
    for path in paths:
        results = load_results([path])
        s = scores(results.frame).iloc[0]
        doc = json.loads(path.read_text())
        low, high = todays(results.frame)
        seconds = float((work / f"{path.stem}.seconds").read_text())
        moved = s["moved"]
        rows.append(
            {
                "run": path.stem,
                "score": s["score"],
                "low": s["low"],
                "high": s["high"],
                "old_low": low,
                "old_high": high,
                "passes": int(s["passes"]),
                "seconds": seconds,
                "moved": math.expm1(moved) if pd.notna(moved) else math.nan,
                "stopped": doc["mnist_bench"].get("stopped", ""),
                "at": doc["datetime"][11:19],
            }
        )
    t = pd.DataFrame(rows)
    pairs = list(zip(t.index[:-1], t.index[1:]))
    overlap = {
        k: sum(
            t.loc[a, f"{k}low"] <= t.loc[b, f"{k}high"] and t.loc[b, f"{k}low"] <= t.loc[a, f"{k}high"]
            for a, b in pairs
        )
        for k in ("", "old_")
    }
    inside = {
        k: sum(t.loc[a, f"{k}low"] <= t.loc[b, "score"] <= t.loc[a, f"{k}high"] for a, b in pairs) for k in ("", "old_")
    }
    half = {k: float(np.median(np.log(t[f"{k}high"] / t[f"{k}low"]) / 2)) for k in ("", "old_")}
    facts = next(iter(load_results([paths[0]]).machines.values()))
    shown = pd.DataFrame(
        {
            "run": t["run"],
            "finished": t["at"],
            "score": t["score"].map("{:,.0f}".format),
            "new interval": [
                f"{lo:,.0f} - {hi:,.0f} (+-{math.expm1(math.log(hi / lo) / 2):.1%})"
                for lo, hi in zip(t["low"], t["high"])
            ],
            "today's interval": [
                f"{lo:,.0f} - {hi:,.0f} (+-{math.expm1(math.log(hi / lo) / 2):.1%})"
                for lo, hi in zip(t["old_low"], t["old_high"])
            ],
            "passes": t["passes"],
            "seconds": t["seconds"].map("{:.0f}".format),
            "sentinel moved": t["moved"].map(lambda x: "" if pd.isna(x) else f"{x:.1%}"),
            "stopped because": t["stopped"],
        }
    )
    n = len(pairs)
    text = [
        "# Does the score's interval hold on a repeat run?",
        "",
        f"Made by `python experiments/calibration.py run --work W --runs {len(t)}` then `render --work W --out "
        f"results/calibration` on {facts.get('cpu_model')} (family {facts.get('cpu_family')}, model "
        f"{facts.get('cpu_model_number')}, stepping {facts.get('cpu_stepping')}), {facts.get('logical_cores')} vCPUs, "
        f"torch {facts.get('torch')}, runs finishing {t['at'].iloc[0]} to {t['at'].iloc[-1]} UTC on "
        f"{json.loads(paths[0].read_text())['datetime'][:10]}: "
        f"`mnist-bench run --score` {len(t)} times back to back on one idle VM, each against workload "
        f"v{VERSION}'s reference ({reference_path(VERSION).stem}). The runs' files are beside this one.",
        "",
        md_table(shown),
        "",
        "| | new interval | today's interval |",
        "|---|---|---|",
        f"| consecutive pairs whose intervals overlap (the bar: at least 9 of 10) | {overlap['']} of {n} | "
        f"{overlap['old_']} of {n} |",
        f"| runs whose score falls inside the previous run's interval | {inside['']} of {n} | "
        f"{inside['old_']} of {n} |",
        f"| median half-width | +-{math.expm1(half['']):.1%} | +-{math.expm1(half['old_']):.1%} |",
        f"| longest run | {t['seconds'].max():.0f} s | |",
        "",
        "The new interval takes each pass (every case once, in a shuffled order; an inference case of short "
        "rounds as a block of them, their mean) as one score and adds half the passes' range, the machine's "
        "own movement during the run, to the passes' mean's t-interval (reporting/drift.py); today's "
        "resampled each case's rounds, the run's and the reference's, as if the "
        "machine stood still. What it could not see: drift slower than a run that moves the next run's "
        "level, and a VM of another speed (two VMs of one CPU model differ by up to 2x: the hardware "
        "classes on the page show that spread).",
        "",
    ]
    out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        shutil.copy(path, out / path.name)
    write_files({out / "calibration.md": "\n".join(text).encode()})
    print(f"wrote {out / 'calibration.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["run", "render"])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "calibration")
    args = parser.parse_args()
    run(args.work, args.runs) if args.what == "run" else render(args.work, args.out)


if __name__ == "__main__":
    main()
