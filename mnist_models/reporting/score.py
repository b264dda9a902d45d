"""A score per machine and device, with its 95% interval: which machine is faster, by how
much, and how sure that is.

    mnist-bench score results/*.json
    scores(load_results(paths).frame)      # a row per machine and device

The score is 1000 x the geometric mean, over a frozen reference set of cases, of this
device's speed over the reference machine's on the same case (its file ships inside the
package: reference/, with its commit), so double the score is double the speed and scores
stay comparable as results/ grows. The reference set: full workload, the resident tuned
loop, train and infer for both models at batch 64, 256 and 1024 in fp32 and bf16, and
time to accuracy (speed: 1 / seconds, whatever precision its recipe ran in). A case
counts only where the device ran it natively, and a bf16 case only where bf16 training
kept its test accuracy within TOLERANCE of fp32's on the same case; time to accuracy
counts only when every seed reached the target, and only with the reference's recipe (a
device that ran another leaves that case out of its set, and says so). The interval
resamples each case's recorded rounds, on both machines (bootstrap; at most MOST_ROUNDS of
them, and a note says where). No torch here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

REFERENCE = Path(__file__).parent / "reference" / "epyc-zen5-2core.json"  # score 1000
BATCHES = (64, 256, 1024)  # the default matrix's batch sizes
TOLERANCE = 0.003  # bf16's test accuracy may sit at most 0.3 points from fp32's on the same case
DRAWS, SEED = 2000, 0  # bootstrap resamples, and their seed (the intervals are reproducible)
MOST_ROUNDS = 1000  # a case's rounds the bootstrap resamples at most: a random subset of more (seconds, not minutes)
ANOTHER_RECIPE = "another recipe than the reference's"  # why a time to accuracy is left out of the set
KEY = ["operation", "model", "batch_size", "precision"]  # a reference case, whatever the device


def _key(frame: pd.DataFrame) -> pd.Series:
    """A case's place in the reference set; time to accuracy keyed without its precision."""
    precision = frame["precision"].where(frame["operation"] != "tta", "recipe")
    return frame["operation"] + " " + frame["model"] + " bs" + frame["batch_size"].astype(str) + " " + precision


def candidates(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows that could belong to the reference set: resident tuned loop, default batches,
    train, infer or tta; `key` names the case across devices and machines."""
    f = frame[
        frame["operation"].isin(["train", "infer", "tta"])
        & (frame["loader"] == "resident")
        & (frame["variant"] == "tuned")
    ]
    f = f[(f["operation"] == "tta") | f["batch_size"].isin(BATCHES)]
    return f.assign(key=_key(f))


def why_left_out(rows: pd.DataFrame, reference: pd.DataFrame) -> pd.Series:
    """Per candidate row: why it does not count (empty: it counts)."""
    ref = reference.set_index("key")
    twins = rows[rows["precision"] == "fp32"].set_index(["machine", "device", "operation", "model", "batch_size"])

    def reason(r) -> str:
        if r["key"] not in ref.index:
            return "not in the reference set"
        if r["samples"] != ref.loc[r["key"], "samples"]:
            return f"another workload ({int(r['samples']):,} images a round, the reference's {int(ref.loc[r['key'], 'samples']):,})"
        if r["operation"] == "tta":
            if r["recipe"] != ref.loc[r["key"], "recipe"]:
                return f"{ANOTHER_RECIPE} ({ref.loc[r['key'], 'recipe']})"
            return "" if r["reached"] is not None and all(r["reached"]) else "not every seed reached the target"
        if r["precision"] == "bf16":
            if r["native"] is not True:
                return "bf16 emulated on this device"
            train = rows[
                (rows["machine"] == r["machine"])
                & (rows["device"] == r["device"])
                & (rows["operation"] == "train")
                & (rows["model"] == r["model"])
                & (rows["batch_size"] == r["batch_size"])
                & (rows["precision"] == "bf16")
            ]
            key = (r["machine"], r["device"], "train", r["model"], r["batch_size"])
            if train.empty or key not in twins.index:
                return "no bf16 and fp32 training pair to check its accuracy against"
            gap = abs(train["test_accuracy"].iloc[0] - twins.loc[key, "test_accuracy"])
            if not gap <= TOLERANCE:
                return f"bf16 training accuracy {gap:.2%} from fp32's (tolerance {TOLERANCE:.1%})"
        return ""

    return rows.apply(reason, axis=1) if len(rows) else pd.Series(dtype=object)


def _medians(rounds: list[float], fallback: float, rng: np.random.Generator) -> np.ndarray:
    """DRAWS bootstrap medians of a case's rounds (its median alone where none were recorded),
    resampling at most MOST_ROUNDS of them (scores() notes where: the interval is then wider)."""
    data = np.asarray(rounds, dtype=float)
    if data.size == 0:
        return np.full(DRAWS, fallback)
    if data.size > MOST_ROUNDS:
        data = rng.choice(data, size=MOST_ROUNDS, replace=False)
    return np.median(rng.choice(data, size=(DRAWS, data.size), replace=True), axis=1)


def _score(rows: pd.DataFrame, reference: pd.DataFrame, rng: np.random.Generator) -> tuple[float, float, float]:
    """(score, low, high) over `rows`, each matched with its reference case by key."""
    ref = reference.set_index("key")
    logs, draws = [], []
    for _, r in rows.iterrows():
        base = ref.loc[r["key"]]
        logs.append(np.log(base["median"] / r["median"]))  # speed ratio: the same work, in less time
        draws.append(np.log(_medians(base["data"], base["median"], rng) / _medians(r["data"], r["median"], rng)))
    point = 1000 * np.exp(np.mean(logs))
    low, high = 1000 * np.exp(np.percentile(np.mean(draws, axis=0), [2.5, 97.5]))
    return float(point), float(low), float(high)


def scores(frame: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """A row per machine and device: score and 95% interval overall and per precision, the
    cases it stands on (`cases` of `of`), partial or complete, what was left out, and notes
    (a case whose interval resampled only MOST_ROUNDS of its rounds)."""
    from .results import load_results

    ref = candidates(reference if reference is not None else load_results([REFERENCE]).frame)
    rows = candidates(frame)
    rows = rows.assign(left_out=why_left_out(rows, ref))
    rng = np.random.default_rng(SEED)
    out = []
    for (machine, device), part in rows.groupby(["machine", "device"], sort=False):
        used = part[part["left_out"] == ""]
        if used.empty:
            continue
        # a time to accuracy whose recipe is not the reference's is no case of this device's set
        other = int(part["left_out"].str.startswith(ANOTHER_RECIPE).sum())
        record = {
            "machine": machine,
            "device": device,
            "cases": len(used),
            "of": len(ref) - other,
            "left_out": [f"{k}: {why}" for k, why in zip(part["key"], part["left_out"]) if why],
            "notes": [
                f"{k}: {len(d):,} rounds; its interval resamples {MOST_ROUNDS:,} of them (wider than all would give)"
                for k, d in zip(used["key"], used["data"], strict=True)
                if len(d) > MOST_ROUNDS
            ],
        }
        record["score"], record["low"], record["high"] = _score(used, ref, rng)
        for precision in ("fp32", "bf16"):
            mine = used[used["precision"] == precision]
            record[precision] = _score(mine, ref, rng) if len(mine) else None
        out.append(record)
    table = pd.DataFrame(
        out, columns=["machine", "device", "score", "low", "high", "fp32", "bf16", "cases", "of", "left_out", "notes"]
    )
    table["partial"] = table["cases"] < table["of"]
    return table.sort_values(["partial", "score"], ascending=[True, False], ignore_index=True)


def leaderboard(table: pd.DataFrame) -> pd.DataFrame:
    """The scores as a reader ranks them: complete entries by score, each beside the next one
    down (faster, or not distinguishable where the intervals overlap); partial ones after,
    unranked, with how many cases they stand on."""
    rows = []
    complete = table[~table["partial"]].reset_index(drop=True)
    for i, r in complete.iterrows():
        below = complete.iloc[i + 1] if i + 1 < len(complete) else None
        versus = (
            ""
            if below is None
            else (
                f"not distinguishable from {below['machine']} {below['device']}"
                if r["low"] <= below["high"]
                else f"faster than {below['machine']} {below['device']} ({r['score'] / below['score']:.2f}x)"
            )
        )
        rows.append({"rank": str(i + 1), **_shown(r), "next one down": versus})
    for _, r in table[table["partial"]].iterrows():
        rows.append({"rank": f"partial, {r['cases']} of {r['of']} cases", **_shown(r), "next one down": "not ranked"})
    return pd.DataFrame(
        rows, columns=["rank", "machine", "device", "score", "95% interval", "fp32", "bf16", "next one down"]
    )


def _shown(r) -> dict:
    def one(s) -> str:
        return "" if s is None else f"{s[0]:,.0f} [{s[1]:,.0f}, {s[2]:,.0f}]"

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
    wide = table.pivot_table(index="machine", columns="device", values="score", aggfunc="first")
    if "cpu" not in wide.columns:
        return pd.DataFrame(columns=["machine", "accelerator", "accelerator over cpu"])
    rows = [
        {"machine": m, "accelerator": d, "accelerator over cpu": f"{wide.loc[m, d] / wide.loc[m, 'cpu']:.1f}x"}
        for m in wide.index
        for d in wide.columns
        if d != "cpu" and pd.notna(wide.loc[m, d]) and pd.notna(wide.loc[m, "cpu"])
    ]
    return pd.DataFrame(rows, columns=["machine", "accelerator", "accelerator over cpu"])
