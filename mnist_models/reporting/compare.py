"""Two sets of result files -> a verdict per case: the regression check CI runs.

    python -m mnist_models compare base.json new.json --threshold 10%
    python -m mnist_models compare runs/base runs/new --threshold 25%   # folders: runs pooled

The rule (README, "Regression alerts"): slower than the threshold AND beyond the
round-to-round noise, by a Mann-Whitney U test at ALPHA shared among the matched cases.
Every row states the smallest change its rounds could have detected; a row whose rounds
could not have detected the threshold (too few, or too noisy) is `undecided`, with the
rounds it would need, never `unchanged`. Where both sides counted instructions, they are
judged too, at their own tight threshold. A case is matched only with the same case on
the same workload (images per round; a time to accuracy also on the same recipe): a quick
run's case against a full run's is listed as not comparable, never judged. Files from different machines are said to be so first
(hardware_difference); the CLI then does not fail on them unless asked.
Rows are judged in bulk with numpy (50,000 cases: results/scale.md). No torch here.
"""

from __future__ import annotations

from math import comb, log
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UsageError
from .results import load_results
from .fields import KEY, MATCH
from .schema import HARDWARE

ALPHA = 0.05  # family-wise significance level of the Mann-Whitney U tests
POWER = 0.80  # for the detectable change
Z_POWER = 0.8416  # the normal quantile of POWER
INSTRUCTION_THRESHOLD = 0.01  # instructions per step: slower above this
VERDICTS = ("slower", "faster", "unchanged", "undecided", "missing", "new", "not comparable")
COLUMNS = ["case", "base_s", "new_s", "change", "p", "test", "detectable", "verdict", "note"]


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
    frame.attrs["machines"] = results.machines  # for hardware_difference
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
        return f"{label} ({kind[0] or 'unknown CPU'}, {kind[3] or '?'} logical cores{f', {kind[5] or kind[4]}' if kind[4] else ''})"

    return (
        f"these files come from different machines: base {', '.join(name(k, l) for k, l in a.items())}; "
        f"new {', '.join(name(k, l) for k, l in b.items())}. The changes below are the hardware's, "
        "not the code's"
    )


def pool(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per case and workload, the rounds of every run of it pooled (median and
    quartiles recomputed).

    Rounds of one run sit seconds apart and share that moment's machine noise; pooling
    several runs spreads them over time, so the test below sees the run-to-run noise too.
    """
    twice = frame.duplicated(MATCH, keep=False)
    if not twice.any():
        return frame
    rows = []
    for _, group in frame[twice].groupby(MATCH, sort=False, dropna=False):
        row = group.iloc[0].to_dict()
        data = [x for d in group["data"] for x in d]
        if data:
            q1, median, q3 = np.percentile(data, [25, 50, 75])
        else:  # runs without per-round data (autosave files): their medians, and the widest quartiles
            q1, median, q3 = group["q1"].min(), group["median"].median(), group["q3"].max()
        rows.append({**row, "data": data, "median": median, "q1": q1, "q3": q3, "rounds": group["rounds"].sum()})
    return pd.concat([frame[~twice], pd.DataFrame(rows, columns=frame.columns)], ignore_index=True)


NO_TEST = "none (too few rounds)"  # for any p-value to reach alpha


def _rounds(both: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per matched row, each side's rounds: those in the file, or the count it recorded where
    it kept none (autosave files)."""
    return tuple(
        np.array([len(d) or r for d, r in zip(both[f"data_{s}"], both[f"rounds_{s}"])], dtype=float)
        for s in ("base", "new")
    )


def _reachable(rounds_base: np.ndarray, rounds_new: np.ndarray, alpha: float) -> np.ndarray:
    """Whether a two-sided Mann-Whitney test of so many rounds can reach `alpha` at all."""
    return np.array([2 / comb(int(a + b), int(a)) < alpha for a, b in zip(rounds_base, rounds_new)], dtype=bool)


def _tests(both: pd.DataFrame, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per matched row: is the change beyond the noise, its p-value, and the test that decides.

    Where the rounds are enough for a two-sided Mann-Whitney U test to reach `alpha`
    (e.g. 4 and 4 for 0.05), that test decides; rows with the same round counts are tested
    together. A file that kept only quartiles (autosave) is judged by them: the
    interquartile ranges must not overlap. Where the rounds are too few for any p-value to
    reach `alpha`, no test decides (NO_TEST), and compare calls the row undecided."""
    from scipy.stats import mannwhitneyu

    n_base, n_new = both["data_base"].map(len).to_numpy(), both["data_new"].map(len).to_numpy()
    slower = both["ratio"].to_numpy() > 1
    apart = np.where(slower, both["q1_new"] > both["q3_base"], both["q3_new"] < both["q1_base"])
    p = np.full(len(both), np.nan)
    quartiles = (n_base == 0) | (n_new == 0)
    test = np.select(
        [~_reachable(*_rounds(both), alpha), quartiles],
        [NO_TEST, "iqr (recorded quartiles; no rounds in the file)"],
        "mann-whitney",
    ).astype(object)
    for _, rows in pd.Series(range(len(both))).groupby([n_base, n_new]):  # one round count: one outcome
        idx = rows.to_numpy()
        if test[idx[0]] != "mann-whitney":  # quartiles only, or too few rounds to decide
            continue
        x = np.array(both["data_new"].iloc[idx].tolist(), dtype=float)
        y = np.array(both["data_base"].iloc[idx].tolist(), dtype=float)
        p[idx] = mannwhitneyu(x, y, alternative="two-sided", axis=1).pvalue
    real = np.where(np.isnan(p), apart, p < alpha)
    return real.astype(bool), p, test


def compare(
    base: pd.DataFrame, new: pd.DataFrame, threshold: float = 0.10, instruction_threshold: float = INSTRUCTION_THRESHOLD
) -> pd.DataFrame:
    """Per case: base and new medians, change, test used and verdict (faster, slower,
    unchanged, missing, new, not comparable). `slower` is a regression. Several runs of a
    case on one side are pooled first. The tests share ALPHA among the matched cases
    (Bonferroni), so a file of 60 noisy cases does not raise ~3 false alarms."""
    cols = [*MATCH, "case", "median", "q1", "q3", "data", "rounds"]
    merged = pool(base)[cols].merge(
        pool(new)[cols], on=MATCH, how="outer", suffixes=("_base", "_new"), indicator=True, sort=False
    )
    both = merged[merged["_merge"] == "both"].copy()
    both["ratio"] = both["median_new"] / both["median_base"]
    alpha = ALPHA / max(1, len(both))
    real, p, test = _tests(both, alpha)
    detectable, blind_to_threshold, needs = _power(both, alpha, threshold)
    slower = (both["ratio"] > 1 + threshold).to_numpy() & real & np.isfinite(detectable)
    faster = (both["ratio"] < 1 / (1 + threshold)).to_numpy() & real & np.isfinite(detectable)
    blind = ~(slower | faster) & blind_to_threshold
    judged = pd.DataFrame(
        {
            "case": both["case_base"],
            "base_s": both["median_base"],
            "new_s": both["median_new"],
            "change": both["ratio"] - 1,
            "p": p,
            "test": test,
            "detectable": detectable,
            "verdict": np.select([slower, faster, blind], ["slower", "faster", "undecided"], "unchanged"),
            "note": np.where(blind, needs, ""),
        },
        index=both.index,
    )
    out = pd.concat([judged, _unmatched(merged)]).sort_index()[COLUMNS].reset_index(drop=True)
    return pd.concat([out, compare_instructions(base, new, instruction_threshold)], ignore_index=True)


def _power(both: pd.DataFrame, alpha: float, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per matched row: the smallest change its rounds detect with POWER probability (the
    median past the threshold and the test past alpha; inf where the rounds can never reach
    alpha), whether a change of the threshold's size would have escaped the test (the row
    is then undecided, not unchanged), and the rounds a side it would need to see it.

    The spread is the rounds' robust one (1.4826 MAD of log seconds, pooled), or the
    quartiles' where the file kept no rounds."""
    from scipy.stats import norm

    z = norm.isf(alpha / 2)
    rounds_base, rounds_new = _rounds(both)
    spread = np.array(
        [
            _spread(a, b, q)
            for a, b, q in zip(
                both["data_base"],
                both["data_new"],
                zip(both["q1_base"], both["q3_base"], both["q1_new"], both["q3_new"]),
            )
        ]
    )
    se = 1.05 * spread * np.sqrt(1 / rounds_base + 1 / rounds_new)  # Mann-Whitney's efficiency, ~0.95
    reachable = _reachable(rounds_base, rounds_new, alpha)
    bound = np.log1p(threshold)
    detectable = np.where(reachable, np.expm1(np.maximum(bound + Z_POWER * se, (z + Z_POWER) * se)), np.inf)
    blind = ~reachable | ((z + Z_POWER) * se > bound).astype(bool)
    per_side = np.maximum(rounds_base, rounds_new)
    wanted = np.ceil(2 * (1.05 * spread * (z + Z_POWER) / bound) ** 2)  # each side, for the threshold
    fewest = next(n for n in range(2, 200) if 2 / comb(2 * n, n) < alpha)
    wanted = np.maximum(wanted, fewest)
    needs = [
        f"needs {int(max(1, w - n))} more rounds a side" if w <= 10_000 else "needs 10,000+ more rounds a side"
        for w, n in zip(wanted, per_side)
    ]
    return detectable, blind, np.array(needs, dtype=object)


def _spread(base: list, new: list, quartiles: tuple) -> float:
    """The rounds' spread in log seconds, robustly (1.4826 MAD), of the noisier side; from
    the quartiles where the file kept no rounds."""
    if len(base) > 1 and len(new) > 1:
        return float(max(1.4826 * np.median(np.abs(np.log(d) - np.median(np.log(d)))) for d in (base, new)))
    q1b, q3b, q1n, q3n = quartiles
    return float(max(log(q3b / q1b), log(q3n / q1n)) / 1.349)  # a normal's IQR is 1.349 sd


def compare_instructions(
    base: pd.DataFrame, new: pd.DataFrame, threshold: float = INSTRUCTION_THRESHOLD
) -> pd.DataFrame:
    """One row per case whose instructions per step both sides counted over the same steps
    (`mnist-bench ab`): deterministic, so a plain tight threshold decides."""
    cols = [*MATCH, "case", "instructions_per_step", "instruction_steps"]
    if "instructions_per_step" not in base or "instructions_per_step" not in new:
        return pd.DataFrame(columns=COLUMNS)
    both = base[cols].dropna().merge(new[cols].dropna(), on=[*MATCH, "instruction_steps"], suffixes=("_base", "_new"))
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


def render_comparison(table: pd.DataFrame, fmt: str = "text") -> str:
    """The comparison as an aligned text table or GitHub markdown, with a closing count."""

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
        from .markdown import escape

        shown["case"] = shown["case"].map(escape)
    if not shown["note"].any():
        shown = shown.drop(columns="note")
    body = shown.to_markdown(index=False, tablefmt="github" if fmt == "markdown" else "simple", disable_numparse=True)
    counts = table["verdict"].value_counts()
    summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
    title = "## mnist-bench comparison\n\n" if fmt == "markdown" else ""
    return f"{title}{body}\n\n{summary}\n"
