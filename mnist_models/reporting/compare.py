"""Two sets of result files -> a verdict per case: the regression check CI runs.

    python -m mnist_models compare base.json new.json --threshold 10%
    python -m mnist_models compare runs/base runs/new --threshold 25%   # folders: runs pooled

The rule (README, "Regression alerts"): slower than the threshold AND beyond the
round-to-round noise, by a Mann-Whitney U test at ALPHA shared among the matched cases.
A case is matched only with the same case on the same workload (images per round): a
quick run's case against a full run's is listed as not comparable, never judged.
Rows are judged in bulk with numpy (50,000 cases: results/scale.md). No torch here.
"""
from __future__ import annotations

from math import comb
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UsageError
from .results import load_results
from .schema import KEY, MATCH

ALPHA = 0.05  # family-wise significance level of the Mann-Whitney U tests
VERDICTS = ("slower", "faster", "unchanged", "missing", "new", "not comparable")
COLUMNS = ["case", "base_s", "new_s", "change", "p", "test", "verdict", "note"]


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
    return results.frame


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
    for _, group in frame[twice].groupby(MATCH, sort=False):
        row = group.iloc[0].to_dict()
        data = [x for d in group["data"] for x in d]
        if data:
            q1, median, q3 = np.percentile(data, [25, 50, 75])
        else:  # runs without per-round data (autosave files): their medians, and the widest quartiles
            q1, median, q3 = group["q1"].min(), group["median"].median(), group["q3"].max()
        rows.append({**row, "data": data, "median": median, "q1": q1, "q3": q3, "rounds": group["rounds"].sum()})
    return pd.concat([frame[~twice], pd.DataFrame(rows, columns=frame.columns)], ignore_index=True)


def _tests(both: pd.DataFrame, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per matched row: is the change beyond the noise, its p-value, and the test used.

    Where the rounds are enough for a two-sided Mann-Whitney U test to reach `alpha`
    (e.g. 4 and 4 for 0.05), that test decides; rows with the same round counts are tested
    together. With fewer rounds the interquartile ranges must not overlap ("iqr"); with a
    single round a side that is the threshold alone, and the row says so ("threshold")."""
    from scipy.stats import mannwhitneyu
    n_base, n_new = both["data_base"].map(len).to_numpy(), both["data_new"].map(len).to_numpy()
    slower = both["ratio"].to_numpy() > 1
    apart = np.where(slower, both["q1_new"] > both["q3_base"], both["q3_new"] < both["q1_base"])
    p = np.full(len(both), np.nan)
    test = np.select([(n_base == 0) | (n_new == 0), (n_base == 1) & (n_new == 1)],
                     ["iqr (recorded quartiles; no rounds in the file)", "threshold"], "iqr").astype(object)
    for (a, b), rows in pd.Series(range(len(both))).groupby([n_base, n_new]):
        if 2 / comb(a + b, a) >= alpha:
            continue
        idx = rows.to_numpy()
        x = np.array(both["data_new"].iloc[idx].tolist(), dtype=float)
        y = np.array(both["data_base"].iloc[idx].tolist(), dtype=float)
        p[idx] = mannwhitneyu(x, y, alternative="two-sided", axis=1).pvalue
        test[idx] = "mann-whitney"
    real = np.where(np.isnan(p), apart, p < alpha)
    return real.astype(bool), p, test


def compare(base: pd.DataFrame, new: pd.DataFrame, threshold: float = 0.10) -> pd.DataFrame:
    """Per case: base and new medians, change, test used and verdict (faster, slower,
    unchanged, missing, new, not comparable). `slower` is a regression. Several runs of a
    case on one side are pooled first. The tests share ALPHA among the matched cases
    (Bonferroni), so a file of 60 noisy cases does not raise ~3 false alarms."""
    cols = [*MATCH, "case", "median", "q1", "q3", "data"]
    merged = pool(base)[cols].merge(pool(new)[cols], on=MATCH, how="outer", suffixes=("_base", "_new"),
                                    indicator=True, sort=False)
    both = merged[merged["_merge"] == "both"].copy()
    both["ratio"] = both["median_new"] / both["median_base"]
    real, p, test = _tests(both, ALPHA / max(1, len(both)))
    slower = (both["ratio"] > 1 + threshold).to_numpy() & real
    faster = (both["ratio"] < 1 / (1 + threshold)).to_numpy() & real
    judged = pd.DataFrame({"case": both["case_base"], "base_s": both["median_base"], "new_s": both["median_new"],
                           "change": both["ratio"] - 1, "p": p, "test": test,
                           "verdict": np.select([slower, faster], ["slower", "faster"], "unchanged"),
                           "note": ""}, index=both.index)
    return pd.concat([judged, _unmatched(merged)]).sort_index()[COLUMNS].reset_index(drop=True)


def _unmatched(merged: pd.DataFrame) -> pd.DataFrame:
    """Cases on one side only: missing (base only) or new (new only), except that a case on
    both sides with different workloads is one row, not comparable, naming both."""
    left, right = merged[merged["_merge"] == "left_only"], merged[merged["_merge"] == "right_only"]
    pairs = left.reset_index().merge(right.reset_index(), on=KEY, suffixes=("_l", "_r"))
    pairs = pairs.drop_duplicates("index_l").drop_duplicates("index_r")
    rows = pd.DataFrame({"case": pairs["case_base_l"].to_numpy(), "base_s": pairs["median_base_l"].to_numpy(),
                         "new_s": pairs["median_new_r"].to_numpy(), "change": np.nan, "p": np.nan, "test": "",
                         "verdict": "not comparable",
                         "note": [f"workloads differ: {a:,} vs {b:,} images per round"
                                  for a, b in zip(pairs["samples_l"], pairs["samples_r"])]},
                        index=pairs["index_l"].to_numpy())
    rest = merged.drop(index=[*pairs["index_l"], *pairs["index_r"]])
    rest = rest[rest["_merge"] != "both"]
    lone = pd.DataFrame({"case": rest["case_base"].fillna(rest["case_new"]), "base_s": rest["median_base"],
                         "new_s": rest["median_new"], "change": np.nan, "p": np.nan, "test": "",
                         "verdict": np.where(rest["_merge"] == "left_only", "missing", "new"), "note": ""},
                        index=rest.index)
    return pd.concat([rows, lone])


def render_comparison(table: pd.DataFrame, fmt: str = "text") -> str:
    """The comparison as an aligned text table or GitHub markdown, with a closing count."""
    def cells(column: str, form: str) -> pd.Series:
        return table[column].map(lambda x: "" if pd.isna(x) else format(x, form))
    shown = table.assign(base_s=cells("base_s", ".4g"), new_s=cells("new_s", ".4g"),
                         change=cells("change", "+.1%"), p=cells("p", ".3f"))
    if fmt == "markdown":
        from .markdown import escape
        shown["case"] = shown["case"].map(escape)
    if not shown["note"].any():
        shown = shown.drop(columns="note")
    body = shown.to_markdown(index=False, tablefmt="github" if fmt == "markdown" else "simple",
                             disable_numparse=True)
    counts = table["verdict"].value_counts()
    summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
    title = "## mnist-bench comparison\n\n" if fmt == "markdown" else ""
    return f"{title}{body}\n\n{summary}\n"
