"""Result files in the formats foreign dashboards read: github-action-benchmark's
`customBiggerIsBetter` and Bencher's Metric Format. Medians, never means: one slow round
moves a mean (what github-action-benchmark's `tool: pytest` reads), not a median.

    mnist-bench export --format github-action-benchmark results/*.json --out gab.json
    mnist-bench export --format bencher results/*.json --out bmf.json

Each case is named with its machine, `train-cnn-cpu-bs256 [epyc-zen5-2core]`, so one
dashboard can hold several machines. No torch here.
"""

from __future__ import annotations

import json

import pandas as pd

FORMATS = ("github-action-benchmark", "bencher")


def _name(row) -> str:
    """A series' name: the case and machine, and a time to accuracy's recipe (another recipe
    is another series)."""
    recipe = f" ({row['recipe']})" if row.get("recipe") else ""
    return f"{row['case']}{recipe} [{row['machine']}]"


def _speed(row) -> tuple[str, float, float, float]:
    """(unit, median, at the first quartile's time, at the third's): images/s, or 1/s for time to accuracy."""
    work, unit = (row["samples"], "images/s") if row["operation"] != "tta" else (1, "1/s (time to accuracy)")
    return unit, work / row["median"], work / row["q1"], work / row["q3"]


def github_action_benchmark(frame: pd.DataFrame) -> list[dict]:
    """customBiggerIsBetter: [{name, unit, value, range, extra}] (extract.ts's BenchmarkResult)."""
    out = []
    for _, r in frame.iterrows():
        unit, value, fast, slow = _speed(r)
        form = ",.0f" if value >= 100 else ".4g"
        out.append(
            {
                "name": _name(r),
                "unit": unit,
                "value": round(value, 3),
                "range": f"{slow:{form}} - {fast:{form}} (interquartile)",
                "extra": f"median {r['median']:.4g} s over {int(r['rounds'])} rounds of {int(r['samples']):,} "
                f"images\nmachine {r['machine']}, commit {r['commit'] or '?'}",
            }
        )
    return out


def bencher(frame: pd.DataFrame) -> dict:
    """Bencher Metric Format: {benchmark: {measure: {value, lower_value, upper_value}}}; latency
    in nanoseconds (Bencher's built-in unit) with the quartiles as bounds, throughput, accuracy."""
    out = {}
    for _, r in frame.iterrows():
        _, value, fast, slow = _speed(r)
        measures = {
            "latency": {"value": r["median"] * 1e9, "lower_value": r["q1"] * 1e9, "upper_value": r["q3"] * 1e9},
            "throughput": {"value": value, "lower_value": slow, "upper_value": fast},
        }
        if pd.notna(r["test_accuracy"]):
            measures["test-accuracy"] = {"value": float(r["test_accuracy"])}
        out[_name(r)] = measures
    return out


def export(frame: pd.DataFrame, fmt: str) -> bytes:
    doc = github_action_benchmark(frame) if fmt == "github-action-benchmark" else bencher(frame)
    return (json.dumps(doc, indent=2) + "\n").encode()
