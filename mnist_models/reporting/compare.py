"""Two sets of result files -> a verdict per case and per operation: the regression check.

    python -m mnist_models compare base.json new.json --threshold 10%
    python -m mnist_models compare runs/base runs/new --threshold 25%   # folders: runs pooled

Per case (README, "Regression alerts"): `slower` when the median is more than the threshold
slower, a Welch t-test on the log round times says so at ALPHA shared among the matched
cases (Holm's step-down), and the change is larger than the drift floor: how far the
machine itself moved between and during the two runs, as the sentinel between cases saw it
(files from format 4 on; drift.py). A change the test sees but the floor holds is `within
the machine's drift`, never `slower`; where a side's run shared the machine (busy_sides),
no change is judged: `undecided`, said why. Every row states the smallest change its rounds could
have detected; a row that could not see the threshold is `undecided`, with the rounds it
would need, never `unchanged`. Per operation and precision, the geometric mean of the
cases' ratios with a 95% interval (each side's rounds resampled) gives the overall change:
`train fp32: +15.1% [12.8, 17.4], slower`. Where both sides counted instructions, they are
judged at their own tight threshold. A case is matched only with the same case on the same
workload (images per round, the recipe, and where both recorded it, the case's definition):
otherwise it is not comparable, never judged. Files from different machines are said to be
so first (hardware_difference); the CLI then does not fail on them unless asked. Rows are
judged in bulk with numpy (50,000 cases: results/scale.md). No torch here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import t as student

from ..errors import UsageError
from ..machine.process import why_not_quiet
from .drift import level, movement
from .fields import KEY
from .markdown import escape
from .paired import holm
from .results import load_results
from .schema import HARDWARE
from .stats import stats_of

ALPHA = 0.05  # family-wise significance level of the per-case tests
POWER = 0.80  # for the detectable change
INSTRUCTION_THRESHOLD = 0.01  # instructions per step: slower above this
DRAWS, SEED = 2000, 0  # the overall change's bootstrap
DRIFT = "within the machine's drift"
VERDICTS = ("slower", "faster", DRIFT, "unchanged", "undecided", "missing", "new", "not comparable")
COLUMNS = ["case", "base_s", "new_s", "change", "p", "test", "detectable", "verdict", "note"]
SAME = [*KEY, "samples", "recipe"]  # a case and its workload; the definition hash is checked apart
MIN_ROUNDS = 3  # a side's rounds before its variance means anything to the test
NO_TEST = f"none (fewer than {MIN_ROUNDS} rounds a side)"


def load_side(side: str | Path, warn=lambda line: None) -> pd.DataFrame:
    """One side of a comparison: a result file, or a folder whose result files are pooled.
    A file or entry that cannot be used is refused (UsageError), since a comparison with a
    case left out would mislead; `warn` gets every such line beyond the first."""
    paths = sorted(Path(side).glob("*.json")) if Path(side).is_dir() else [side]
    if not paths:
        raise UsageError(f"{side}: a folder without result JSON files")
    results = load_results(paths, include_quick=True)  # workloads are matched, not mixed
    if results.problems:
        for line in results.problems[1:]:
            warn(line)
        more = f" (and {len(results.problems) - 1} more above)" if len(results.problems) > 1 else ""
        raise UsageError(f"{results.problems[0]}{more}; fix or remove it to compare")
    frame = results.frame
    frame.attrs["machines"] = results.machines  # for hardware_difference and the drift floor
    return frame


def hardware_difference(base: pd.DataFrame, new: pd.DataFrame) -> str | None:
    """A line when the two sides ran on different hardware (CPU model, cores, accelerator),
    so that their difference is the machines', not the code's; else None."""

    def kinds(side: pd.DataFrame) -> dict:
        return {tuple(f.get(k) for k in HARDWARE): label for label, f in side.attrs.get("machines", {}).items()}

    a, b = kinds(base), kinds(new)
    if not a or not b or set(a) == set(b):
        return None

    def name(kind: tuple, label: str) -> str:
        accel = f", {kind[5] or kind[4]}" if kind[4] else ""
        return f"{label} ({kind[0] or 'unknown CPU'}, {kind[3] or '?'} logical cores{accel})"

    return (
        f"these files come from different machines: base {', '.join(name(k, lab) for k, lab in a.items())}; "
        f"new {', '.join(name(k, lab) for k, lab in b.items())}. The changes below are the hardware's, "
        "not the code's"
    )


def drift_floor(base: pd.DataFrame, new: pd.DataFrame) -> tuple[float | None, str]:
    """The change (log units) the machine alone made between and during the two sides' runs:
    the ratio of the sentinel's median speeds, and half the larger movement within a run.
    None, and why, where a side's files recorded no trajectory."""
    sides = []
    for side in (base, new):
        points = [
            p
            for f in side.attrs.get("machines", {}).values()
            for p in ((f.get("trajectory") or {}).get("points") or [])
        ]
        sides.append((level(points), movement(points)))
    (base_level, base_moved), (new_level, new_moved) = sides
    if base_level is None or new_level is None:
        return None, "no drift floor: a side's files record no sentinel trajectory (made before format 4)"
    between = abs(math.log(new_level / base_level))
    within = max(base_moved or 0.0, new_moved or 0.0) / 2
    floor = between + within
    return floor, (
        f"drift floor {math.expm1(floor):.1%}: the machine ran {math.expm1(between):.1%} "
        f"{'slower' if new_level < base_level else 'faster'} during the new run by the sentinel "
        f"between cases, and moved up to {math.expm1(2 * within):.1%} within a run"
    )


def busy_sides(base: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """A line per side whose run the machine did not have to itself (other processes or the
    hypervisor took a share of the CPUs): its rounds are slower than the code is, by more than
    that share where torch's threads wait on each other, and the sentinel does not see it."""
    lines = []
    for name, side in (("base", base), ("new", new)):
        for label, facts in side.attrs.get("machines", {}).items():
            said = why_not_quiet(facts["busy"]) if isinstance(facts.get("busy"), dict) else []
            lines += [f"during the {name} run ({label}), {' and '.join(said)}"] if said else []
    return lines


BUSY = "a side's machine was busy, so a slowdown may be the load's (run both on a quiet machine)"


def pool(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per case and workload, the rounds of every run of it pooled (statistics
    recomputed as pytest-benchmark computes them). Rounds of one run sit seconds apart and
    share that moment's machine noise; pooling several runs spreads them over time, so the
    test below sees the run-to-run noise too."""
    keys = [*SAME, "workload"]
    twice = frame.duplicated(keys, keep=False)
    if not twice.any():
        return frame
    rows = []
    for _, group in frame[twice].groupby(keys, sort=False, dropna=False):
        row, data = group.iloc[0].to_dict(), [x for d in group["data"] for x in d]
        if data:
            stats = stats_of(data)
            row.update(data=data, **{k: stats[k] for k in ("median", "q1", "q3", "rounds")})
        else:  # runs without per-round data (autosave files): their medians, and the widest quartiles
            row.update(
                data=[],
                median=group["median"].median(),
                q1=group["q1"].min(),
                q3=group["q3"].max(),
                rounds=group["rounds"].sum(),
            )
        rows.append(row)
    return pd.concat([frame[~twice], pd.DataFrame(rows, columns=frame.columns)], ignore_index=True)


def _summary(data: list[float], median: float, q1: float, q3: float, rounds: float) -> tuple[float, float, int]:
    """A side's log mean, log variance and rounds: from its rounds, or where a file kept only
    quartiles (pytest-benchmark's autosave), from those (a normal's IQR is 1.349 sd)."""
    if len(data):
        logs = np.log(data)
        return float(logs.mean()), float(logs.var(ddof=1)) if len(logs) > 1 else math.nan, len(logs)
    return math.log(median), (math.log(q3 / q1) / 1.349) ** 2, int(rounds or 0)


def _welch(both: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per matched row: the two-sided p of a Welch t-test on log round times, its standard
    error and degrees of freedom (nan where a side has fewer than MIN_ROUNDS rounds), and
    whether it stood on recorded quartiles rather than rounds."""
    p, se, df = (np.full(len(both), np.nan) for _ in range(3))
    quartiles = np.zeros(len(both), dtype=bool)
    for i, row in enumerate(both.itertuples(index=False)):
        (ma, va, na), (mb, vb, nb) = (
            _summary(
                getattr(row, f"data_{s}"),
                getattr(row, f"median_{s}"),
                getattr(row, f"q1_{s}"),
                getattr(row, f"q3_{s}"),
                getattr(row, f"rounds_{s}"),
            )
            for s in ("base", "new")
        )
        quartiles[i] = not (len(row.data_base) and len(row.data_new))
        if na < MIN_ROUNDS or nb < MIN_ROUNDS:
            continue
        va, vb = va / na, vb / nb
        se[i] = math.sqrt(va + vb) or 1e-12  # identical rounds: as good as no noise
        df[i] = min((va + vb) ** 2 / ((va**2 / (na - 1) + vb**2 / (nb - 1)) or 1e-300), na + nb - 2)
        p[i] = 2 * student.sf(abs(mb - ma) / se[i], df[i])
    return p, se, df, quartiles


def compare(
    base: pd.DataFrame, new: pd.DataFrame, threshold: float = 0.10, instruction_threshold: float = INSTRUCTION_THRESHOLD
) -> pd.DataFrame:
    """Per case: base and new medians, change, test and verdict (slower, faster, within the
    machine's drift, unchanged, undecided, missing, new, not comparable). `slower` is a
    regression. Several runs of a case on one side are pooled first."""
    cols = [*SAME, "workload", "case", "median", "q1", "q3", "data", "rounds"]
    merged = pool(base)[cols].merge(
        pool(new)[cols], on=SAME, how="outer", suffixes=("_base", "_new"), indicator=True, sort=False
    )
    unlike = (
        (merged["_merge"] == "both")
        & (merged["workload_base"] != "")
        & (merged["workload_new"] != "")
        & (merged["workload_base"] != merged["workload_new"])
    )
    both = merged[(merged["_merge"] == "both") & ~unlike].copy()
    both["ratio"] = both["median_new"] / both["median_base"]
    floor, _ = drift_floor(base, new)
    judged = _judge(both, threshold, floor or 0.0)
    if busy_sides(base, new):  # never a regression from a loaded machine: undecided, said why
        loaded = judged["verdict"].isin(["slower", "faster", DRIFT])
        judged.loc[loaded, "verdict"], judged.loc[loaded, "note"] = "undecided", BUSY
    out = pd.concat([judged, _unlike(merged[unlike]), _unmatched(merged)]).sort_index()[COLUMNS]
    return pd.concat(
        [out.reset_index(drop=True), compare_instructions(base, new, instruction_threshold)], ignore_index=True
    )


def _judge(both: pd.DataFrame, threshold: float, floor: float) -> pd.DataFrame:
    p, se, df, quartiles = _welch(both)
    testable = ~np.isnan(p)
    rejected = np.zeros(len(both), dtype=bool)
    rejected[testable] = holm(p[testable], ALPHA)
    m = max(1, int(testable.sum()))
    crit = np.where(testable, student.isf(ALPHA / (2 * m), np.nan_to_num(df, nan=1)), np.inf)
    push = np.where(testable, student.isf(1 - POWER, np.nan_to_num(df, nan=1)), np.inf)
    bound = math.log1p(threshold)
    change = np.log(both["ratio"].to_numpy(dtype=float))
    detectable = np.where(
        testable, np.expm1(np.maximum.reduce([(crit + push) * se, bound + push * se, floor + push * se])), np.inf
    )
    big = np.abs(change) > bound
    beyond = np.abs(change) > floor
    slower = big & rejected & beyond & (change > 0)
    faster = big & rejected & beyond & (change < 0)
    drift = big & rejected & ~beyond
    blind = ~(slower | faster | drift) & (~testable | ((crit + push) * se > bound))
    wanted = np.ceil(both["rounds_new"].to_numpy(dtype=float) * (((crit + push) * se) / bound) ** 2)
    fewest = np.minimum(both["rounds_base"].to_numpy(dtype=float), both["rounds_new"].to_numpy(dtype=float))
    needs = [
        (
            f"needs {int(MIN_ROUNDS - n)} more rounds a side"
            if not t
            else f"needs {int(max(1, w - n))} more rounds a side"
            if w <= 10_000
            else "needs 10,000+ more rounds a side"
        )
        for t, w, n in zip(testable, wanted, fewest)
    ]
    return pd.DataFrame(
        {
            "case": both["case_base"],
            "base_s": both["median_base"],
            "new_s": both["median_new"],
            "change": both["ratio"] - 1,
            "p": p,
            "test": np.select(
                [~testable, quartiles],
                [NO_TEST, "welch t (log; recorded quartiles, no rounds in the file)"],
                "welch t (log)",
            ),
            "detectable": detectable,
            "verdict": np.select([slower, faster, drift, blind], ["slower", "faster", DRIFT, "undecided"], "unchanged"),
            "note": np.where(
                blind, needs, np.where(drift, f"the machine alone moved up to {math.expm1(floor):.1%}", "")
            ),
        },
        index=both.index,
    )


def overall(base: pd.DataFrame, new: pd.DataFrame, table: pd.DataFrame, threshold: float = 0.10) -> pd.DataFrame:
    """Per operation and precision: the geometric mean of the compared cases' ratios and its
    95% interval (each side's rounds resampled), and a verdict: slower where the whole interval
    lies above the threshold and the drift floor, faster where below their negatives."""
    cols = [*SAME, "case", "data", "median"]
    both = pool(base)[cols].merge(pool(new)[cols], on=SAME, suffixes=("_base", "_new"))
    judged = set(table.loc[table["verdict"].isin(["slower", "faster", DRIFT, "unchanged", "undecided"]), "case"])
    both = both[both["case_base"].isin(judged)]
    floor, _ = drift_floor(base, new)
    busy = bool(busy_sides(base, new))
    rng, rows = np.random.default_rng(SEED), []
    for (operation, precision), part in both.groupby(["operation", "precision"], sort=False):
        draws = np.mean(
            [
                np.log(_medians(n, mn, rng) / _medians(b, mb, rng))
                for b, mb, n, mn in zip(part["data_base"], part["median_base"], part["data_new"], part["median_new"])
            ],
            axis=0,
        )
        point = float(np.mean(np.log(part["median_new"] / part["median_base"])))
        low, high = np.percentile(draws, [2.5, 97.5])
        bar = max(math.log1p(threshold), floor or 0.0)
        verdict = (
            "undecided"
            if busy and (low > math.log1p(threshold) or high < -math.log1p(threshold))
            else "slower"
            if low > bar
            else "faster"
            if high < -bar
            else DRIFT
            if (low > math.log1p(threshold) or high < -math.log1p(threshold))
            else "not beyond the threshold"
        )
        rows.append(
            {
                "operation": operation,
                "precision": precision,
                "cases": len(part),
                "change": math.expm1(point),
                "low": math.expm1(low),
                "high": math.expm1(high),
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows, columns=["operation", "precision", "cases", "change", "low", "high", "verdict"])


def _medians(data: list[float], median: float, rng: np.random.Generator) -> np.ndarray:
    x = np.asarray(data, dtype=float)
    return np.median(rng.choice(x, size=(DRAWS, x.size)), axis=1) if x.size else np.full(DRAWS, median)


def compare_instructions(
    base: pd.DataFrame, new: pd.DataFrame, threshold: float = INSTRUCTION_THRESHOLD
) -> pd.DataFrame:
    """One row per case whose instructions per step both sides counted over the same steps
    (`mnist-bench ab`): deterministic, so a plain tight threshold decides."""
    cols = [*SAME, "case", "instructions_per_step", "instruction_steps"]
    if "instructions_per_step" not in base or "instructions_per_step" not in new:
        return pd.DataFrame(columns=COLUMNS)
    both = base[cols].dropna().merge(new[cols].dropna(), on=[*SAME, "instruction_steps"], suffixes=("_base", "_new"))
    change = both["instructions_per_step_new"] / both["instructions_per_step_base"] - 1
    return pd.DataFrame(
        {
            "case": both["case_base"] + " (instructions)",
            "base_s": both["instructions_per_step_base"],
            "new_s": both["instructions_per_step_new"],
            "change": change,
            "p": np.nan,
            "test": "instructions per step",
            "detectable": threshold,
            "verdict": np.select([change > threshold, change < -threshold], ["slower", "faster"], "unchanged"),
            "note": "",
        }
    )[COLUMNS]


def _unlike(rows: pd.DataFrame) -> pd.DataFrame:
    """Cases on both sides whose recorded definitions differ: not comparable."""
    return pd.DataFrame(
        {
            "case": rows["case_base"],
            "base_s": rows["median_base"],
            "new_s": rows["median_new"],
            "change": np.nan,
            "p": np.nan,
            "test": "",
            "verdict": "not comparable",
            "note": [
                f"another workload: the case's definition differs ({a} vs {b}: harness/workload.py)"
                for a, b in zip(rows["workload_base"], rows["workload_new"])
            ],
        },
        index=rows.index,
    )


def _unmatched(merged: pd.DataFrame) -> pd.DataFrame:
    """Cases on one side only: missing (base only) or new (new only), except that a case on
    both sides with different workloads is one row, not comparable, naming both."""
    left, right = merged[merged["_merge"] == "left_only"], merged[merged["_merge"] == "right_only"]
    pairs = left.reset_index().merge(right.reset_index(), on=KEY, suffixes=("_l", "_r"))
    pairs = pairs.drop_duplicates("index_l").drop_duplicates("index_r")
    rows = pd.DataFrame(
        {
            "case": pairs["case_base_l"].to_numpy(),
            "base_s": pairs["median_base_l"].to_numpy(),
            "new_s": pairs["median_new_r"].to_numpy(),
            "change": np.nan,
            "p": np.nan,
            "test": "",
            "verdict": "not comparable",
            "note": [
                f"workloads differ: {a:,} vs {b:,} images per round" if a != b else f"recipes differ: {ra} vs {rb}"
                for a, b, ra, rb in zip(pairs["samples_l"], pairs["samples_r"], pairs["recipe_l"], pairs["recipe_r"])
            ],
        },
        index=pairs["index_l"].to_numpy(),
    )
    rest = merged.drop(index=[*pairs["index_l"], *pairs["index_r"]])
    rest = rest[rest["_merge"] != "both"]
    lone = pd.DataFrame(
        {
            "case": rest["case_base"].fillna(rest["case_new"]),
            "base_s": rest["median_base"],
            "new_s": rest["median_new"],
            "change": np.nan,
            "p": np.nan,
            "test": "",
            "verdict": np.where(rest["_merge"] == "left_only", "missing", "new"),
            "note": "",
        },
        index=rest.index,
    )
    return pd.concat([rows, lone])


def render_comparison(
    table: pd.DataFrame, fmt: str = "text", summary: pd.DataFrame | None = None, floor_note: str = ""
) -> str:
    """The comparison as an aligned text table or GitHub markdown: the overall change per
    operation and precision first, then every case, then a closing count."""

    def cells(column: str, form: str) -> pd.Series:
        return table[column].map(lambda x: "" if pd.isna(x) else format(x, form))

    shown = table.assign(
        base_s=cells("base_s", ".4g"),
        new_s=cells("new_s", ".4g"),
        change=cells("change", "+.1%"),
        p=cells("p", ".3f"),
        detectable=table["detectable"].map(
            lambda x: "" if pd.isna(x) else "never" if np.isinf(x) else format(x, ".1%")
        ),
    )
    if fmt == "markdown":
        shown["case"] = shown["case"].map(escape)
    if not shown["note"].any():
        shown = shown.drop(columns="note")
    tablefmt = "github" if fmt == "markdown" else "simple"
    body = shown.to_markdown(index=False, tablefmt=tablefmt, disable_numparse=True)
    head = ""
    if summary is not None and len(summary):
        lines = [
            f"{r['operation']} {r['precision']}: {r['change']:+.1%} [{r['low']:+.1%}, {r['high']:+.1%}] over "
            f"{r['cases']} case{'s' * (r['cases'] != 1)}, {r['verdict']}"
            for _, r in summary.iterrows()
        ]
        head = "\n".join(f"- {line}" if fmt == "markdown" else line for line in lines) + "\n\n"
    head += f"{floor_note}\n\n" if floor_note else ""
    counts = table["verdict"].value_counts()
    closing = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
    title = "## mnist-bench comparison\n\n" if fmt == "markdown" else ""
    return f"{title}{head}{body}\n\n{closing}\n"
