"""A score per machine and device, with a 95% interval that holds on a repeat run: which
machine is faster, by how much, and how sure that is.

    mnist-bench score results/*.json
    scores(load_results(paths).frame)      # a row per workload version, machine and device

The score is 1000 x the geometric mean, over a frozen reference set of cases, of this
device's speed over the reference machine's on the same case (one reference file per
workload version ships inside the package: reference/vN/), so double the score is double
the speed. Files are scored only against their own version's reference, and a version-2-on
file whose workload fingerprint is not its version's ran modified code: another workload,
never ranked. The reference set: full workload, the resident tuned loop, both models in
fp32 and bf16, training at batch 256 and inference at 64, 256 and 1024 (fields.OPERATIONS'
`score_batches`), and time to accuracy (speed: 1 / seconds). A case counts only where the
device ran it natively, a bf16 case only where bf16 training kept its test accuracy within
TOLERANCE of fp32's on the same case (inference: on its model's training in the set), and
a time to accuracy only when every seed reached the target with the reference's recipe.

The interval is the machine's own (the reference is a fixed yardstick shared by every
machine, so its noise cancels in any comparison). A run of interleaved passes (`run
--score`) gives one score per pass, and the interval covers the passes' mean and half their
range, the machine's movement during the run (drift.pass_interval); a run of consecutive
rounds is resampled (bootstrap, at most MOST_ROUNDS of a case's, and a note says where) and
widened by the sentinel's movement through the run (drift.with_drift). No torch here.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .drift import moved_line, pass_interval, with_drift
from .fields import OPERATIONS
from .results import load_results

REFERENCES = Path(__file__).parent / "reference"  # vN/<machine>.json: score 1000 for workload version N
TOLERANCE = 0.003  # bf16's test accuracy may sit at most 0.3 points from fp32's on the same case
DRAWS, SEED = 2000, 0  # bootstrap resamples, and their seed (the intervals are reproducible)
MOST_ROUNDS = 1000  # a case's rounds the bootstrap resamples at most (seconds, not minutes): evenly spaced ones
ANOTHER_RECIPE = "another recipe than the reference's"  # why a time to accuracy is left out of the set
ANOTHER_WORKLOAD = "another workload"  # why a whole file is left out of its version's ranking
KEY = ["operation", "model", "batch_size", "precision"]  # a reference case, whatever the device
COLUMNS = [
    "version",
    "machine",
    "device",
    "score",
    "low",
    "high",
    "fp32",
    "bf16",
    "cases",
    "of",
    "left_out",
    "passes",
    "moved",
    "note",
    "notes",
]


def reference_path(version: int) -> Path | None:
    """The reference file of a workload version, or None where none was made for it."""
    found = sorted((REFERENCES / f"v{int(version)}").glob("*.json"))
    return found[0] if found else None


@functools.cache
def _reference(version: int) -> tuple[pd.DataFrame, str | None] | None:
    path = reference_path(version)
    if path is None:
        return None
    results = load_results([path])
    facts = next(iter(results.machines.values()))
    return results.frame, facts.get("workload_fingerprint")


def reference(version: int) -> tuple[pd.DataFrame, str | None] | None:
    """A version's reference frame and its workload fingerprint (None: no reference yet)."""
    found = _reference(int(version))
    return None if found is None else (found[0].copy(), found[1])


def _key(frame: pd.DataFrame) -> pd.Series:
    """A case's place in the reference set; time to accuracy keyed without its precision."""
    precision = frame["precision"].where(frame["operation"] != "tta", "recipe")
    return frame["operation"] + " " + frame["model"] + " bs" + frame["batch_size"].astype(str) + " " + precision


def in_set(operation: str, batch_size: int) -> bool:
    """Whether a scored operation's case at this batch is in the score's set."""
    op = OPERATIONS[operation]
    return not op.per_image or batch_size in op.score_batches


def candidates(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows that could belong to the reference set: resident tuned loop, the operations
    the score counts (fields.OPERATIONS' `scored`), at their `score_batches` where of images;
    `key` names the case across devices and machines."""
    scored = [name for name, op in OPERATIONS.items() if op.scored]
    f = frame[frame["operation"].isin(scored) & (frame["loader"] == "resident") & (frame["variant"] == "tuned")]
    f = f[[in_set(op, bs) for op, bs in zip(f["operation"], f["batch_size"])]]
    return f.assign(key=_key(f))


def why_left_out(rows: pd.DataFrame, reference: pd.DataFrame) -> pd.Series:
    """Per candidate row: why it does not count (empty: it counts)."""
    ref = reference.set_index("key")
    twins = rows[rows["precision"] == "fp32"].set_index(["machine", "device", "operation", "model", "batch_size"])

    def reason(r) -> str:
        if r["key"] not in ref.index:
            return "not in the reference set"
        if r["samples"] != ref.loc[r["key"], "samples"]:
            return (
                f"another workload ({int(r['samples']):,} images a round, the reference's "
                f"{int(ref.loc[r['key'], 'samples']):,})"
            )
        if not OPERATIONS[r["operation"]].per_image:
            if r["recipe"] != ref.loc[r["key"], "recipe"]:
                return f"{ANOTHER_RECIPE} ({ref.loc[r['key'], 'recipe']})"
            return "" if r["reached"] is not None and all(r["reached"]) else "not every seed reached the target"
        if r["workload_version"] == 1 and _path(r) != _path(ref.loc[r["key"]]):
            # before versions, a file's tuned path was whatever its commit ran: the same only where it says so
            return f"another path than the reference's ({_path(r)}, the reference's {_path(ref.loc[r['key']])})"
        if r["precision"] == "bf16":
            if r["native"] is not True:
                return "bf16 emulated on this device"
            # a training case is checked against its own fp32 twin, an inference case against
            # its model's training pairs in the set (training at the score's batches)
            train = rows[
                (rows["machine"] == r["machine"])
                & (rows["device"] == r["device"])
                & (rows["operation"] == "train")
                & (rows["model"] == r["model"])
                & (rows["precision"] == "bf16")
                & ((rows["batch_size"] == r["batch_size"]) | (r["operation"] != "train"))
            ]
            keys = [(r["machine"], r["device"], "train", r["model"], bs) for bs in train["batch_size"]]
            if train.empty or not all(k in twins.index for k in keys):
                return "no bf16 and fp32 training pair to check its accuracy against"
            gap = max(abs(a - twins.loc[k, "test_accuracy"]) for a, k in zip(train["test_accuracy"], keys))
            if not gap <= TOLERANCE:
                return f"bf16 training accuracy {gap:.2%} from fp32's (tolerance {TOLERANCE:.1%})"
        return ""

    return rows.apply(reason, axis=1) if len(rows) else pd.Series(dtype=object)


def _path(r) -> str:
    """What a case's tuned path ran, as every file records it: compiled or eager, its dtype."""
    return f"{'compiled' if r['compiled'] is True else 'eager'}, {r.get('dtype') or 'float32'}"


def _rounds(data: list[float]) -> np.ndarray:
    """A case's rounds, at most MOST_ROUNDS of them, evenly spaced through the run."""
    x = np.asarray(data, dtype=float)
    return x if len(x) <= MOST_ROUNDS else x[np.linspace(0, len(x) - 1, MOST_ROUNDS).astype(int)]


def _bootstrap(rows: pd.DataFrame, ref: pd.DataFrame, rng: np.random.Generator) -> tuple[float, float, float]:
    """(score, low, high): the geometric mean of the per-case speed ratios, and the interval
    of DRAWS resamples of each case's own rounds (its median alone where it kept none)."""
    logs, draws = [], []
    for _, r in rows.iterrows():
        base, data = ref.loc[r["key"], "median"], _rounds(r["data"])
        logs.append(math.log(base / r["median"]))
        medians = (
            np.median(rng.choice(data, size=(DRAWS, data.size)), axis=1) if data.size else np.full(DRAWS, r["median"])
        )
        draws.append(np.log(base / medians))
    low, high = 1000 * np.exp(np.percentile(np.mean(draws, axis=0), [2.5, 97.5]))
    return 1000 * math.exp(float(np.mean(logs))), float(low), float(high)


def _by_pass(rows: pd.DataFrame, ref: pd.DataFrame, passes: int) -> tuple[float, float, float]:
    """(score, low, high) from a run of interleaved passes: a score a pass, drift.pass_interval."""
    logs = [
        float(np.mean([math.log(ref.loc[k, "median"] / d[p]) for k, d in zip(rows["key"], rows["data"])]))
        for p in range(passes)
    ]
    mean, half = pass_interval(logs)
    return 1000 * math.exp(mean), 1000 * math.exp(mean - half), 1000 * math.exp(mean + half)


def _score(
    rows: pd.DataFrame, ref: pd.DataFrame, passes: int, moved: float | None, rng: np.random.Generator
) -> tuple[float, float, float]:
    if passes >= 3 and all(len(d) >= passes for d in rows["data"]):
        return _by_pass(rows, ref, passes)
    point, low, high = _bootstrap(rows, ref, rng)
    return point, *with_drift(low, point, high, moved)


def _record(machine: str, device: str, part: pd.DataFrame, ref: pd.DataFrame, rng) -> dict | None:
    used = part[part["left_out"] == ""]
    if used.empty:
        return None
    # a time to accuracy whose recipe is not the reference's is no case of this device's set
    other = int(part["left_out"].str.startswith(ANOTHER_RECIPE).sum())
    passes, moved = int(part["passes"].iloc[0] or 0), part["moved"].iloc[0]
    moved = None if pd.isna(moved) else float(moved)
    record: dict[str, Any] = {
        "machine": machine,
        "device": device,
        "cases": len(used),
        "of": len(ref) - other,
        "passes": passes,
        "moved": moved,
        "left_out": [f"{k}: {why}" for k, why in zip(part["key"], part["left_out"]) if why],
    }
    record["score"], record["low"], record["high"] = _score(used, ref, passes, moved, rng)
    for precision in ("fp32", "bf16"):
        mine = used[used["precision"] == precision]
        record[precision] = _score(mine, ref, passes, moved, rng) if len(mine) else None
    half = math.log(record["high"] / record["low"]) / 2 if record["low"] > 0 else math.inf
    record["note"] = moved_line(moved, half) or ""
    record["notes"] = [line for line in [record["note"]] if line] + [
        f"{k}: {len(d):,} rounds; its interval resamples {MOST_ROUNDS:,} of them (wider than all would give)"
        for k, d in zip(used["key"], used["data"])
        if len(d) > MOST_ROUNDS and passes < 3
    ]
    return record


def scores(frame: pd.DataFrame, reference_frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """A row per workload version, machine and device: score and 95% interval overall and per
    precision, the cases it stands on (`cases` of `of`), partial or complete, what was left
    out, and how far the machine moved during the run (`moved`, log units)."""
    rng, out = np.random.default_rng(SEED), []
    for version, part in candidates(frame).groupby("workload_version", sort=False):
        found = (reference_frame, None) if reference_frame is not None else reference(version)
        if found is None:
            out += [
                {"version": version, "machine": m, "device": d, "note": f"no reference for workload v{version}"}
                for m, d in part[["machine", "device"]].drop_duplicates().itertuples(index=False)
            ]
            continue
        ref = candidates(found[0]).set_index("key")
        rows = part.assign(left_out=why_left_out(part, ref.reset_index()))
        for (machine, device), mine in rows.groupby(["machine", "device"], sort=False):
            fingerprint = mine["workload_fingerprint"].iloc[0]
            if found[1] and fingerprint and fingerprint != found[1]:
                out.append(
                    {
                        "version": version,
                        "machine": machine,
                        "device": device,
                        "note": (
                            f"{ANOTHER_WORKLOAD}: its cases' definitions (fingerprint {fingerprint}) are not workload "
                            f"v{version}'s ({found[1]}): code changed without a new version; never ranked"
                        ),
                    }
                )
                continue
            record = _record(machine, device, mine, ref, rng)
            if record is not None:
                out.append({"version": version, **record})
    table = pd.DataFrame(out, columns=COLUMNS)
    table["partial"] = table["cases"].isna() | (table["cases"] < table["of"])
    table["ranked"] = table["score"].notna()
    return table.sort_values(["version", "partial", "score"], ascending=[False, True, False], ignore_index=True)


def leaderboard(table: pd.DataFrame) -> pd.DataFrame:
    """The scores as a reader ranks them, newest workload version first: complete entries by
    score, each beside the next one down (faster, or not distinguishable where the intervals
    overlap); partial ones after, unranked, with how many cases they stand on; files of
    another workload or without a reference, named, never ranked."""
    rows = []
    for version, part in table.groupby("version", sort=False):
        complete = part[part["ranked"] & ~part["partial"]].reset_index(drop=True)
        for i, r in complete.iterrows():
            below = complete.iloc[i + 1] if i + 1 < len(complete) else None
            rows.append(
                {"workload": f"v{version}", "rank": str(i + 1), **_shown(r), "next one down": _versus(r, below)}
            )
        for _, r in part[part["ranked"] & part["partial"]].iterrows():
            rows.append(
                {
                    "workload": f"v{version}",
                    "rank": f"partial, {r['cases']} of {r['of']} cases",
                    **_shown(r),
                    "next one down": "not ranked",
                }
            )
        for _, r in part[~part["ranked"]].iterrows():
            rows.append(
                {
                    "workload": f"v{version}",
                    "rank": "not scored",
                    "machine": r["machine"],
                    "device": r["device"],
                    "next one down": r["note"],
                }
            )
    return pd.DataFrame(
        rows,
        columns=["workload", "rank", "machine", "device", "score", "95% interval", "fp32", "bf16", "next one down"],
    ).fillna("")


def _versus(r, below) -> str:
    if below is None:
        return ""
    if r["low"] <= below["high"]:
        return f"not distinguishable from {below['machine']} {below['device']}"
    return f"faster than {below['machine']} {below['device']} ({r['score'] / below['score']:.2f}x)"


def _shown(r) -> dict:
    def one(s) -> str:
        return (
            "" if s is None or (isinstance(s, float) and math.isnan(s)) else f"{s[0]:,.0f} [{s[1]:,.0f}, {s[2]:,.0f}]"
        )

    return {
        "machine": r["machine"],
        "device": r["device"],
        "score": f"{r['score']:,.0f}",
        "95% interval": f"{r['low']:,.0f} - {r['high']:,.0f}",
        "fp32": one(r["fp32"]),
        "bf16": one(r["bf16"]),
    }


def accelerator_over_cpu(table: pd.DataFrame) -> pd.DataFrame:
    """Q7 at a glance: each machine's accelerator score over its own CPU's, where it has both."""
    ranked = table[table["ranked"]]
    wide = ranked.pivot_table(index="machine", columns="device", values="score", aggfunc="first")
    if "cpu" not in wide.columns:
        return pd.DataFrame(columns=["machine", "accelerator", "accelerator over cpu"])
    rows = [
        {"machine": m, "accelerator": d, "accelerator over cpu": f"{wide.loc[m, d] / wide.loc[m, 'cpu']:.1f}x"}
        for m in wide.index
        for d in wide.columns
        if d != "cpu" and pd.notna(wide.loc[m, d]) and pd.notna(wide.loc[m, "cpu"])
    ]
    return pd.DataFrame(rows, columns=["machine", "accelerator", "accelerator over cpu"])
