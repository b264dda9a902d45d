"""Two sets of result files -> a verdict per case: the regression check CI runs.

    python -m mnist_models compare base.json new.json --threshold 10%
    python -m mnist_models compare runs/base runs/new --threshold 25%   # folders: runs pooled

The rule (README, "Regression alerts"): slower than the threshold AND beyond the
round-to-round noise, by a Mann-Whitney U test at ALPHA shared among the matched cases.
A case is matched only with the same case on the same workload (images per round): a
quick run's case against a full run's is listed as not comparable, never judged.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .report import KEY

MATCH = [*KEY, "samples"]  # a case and its workload: what compare pairs

ALPHA = 0.05  # family-wise significance level of the Mann-Whitney U tests
VERDICTS = ("slower", "faster", "unchanged", "missing", "new", "not comparable")


def _real_change(base: pd.Series, new: pd.Series, slower: bool,
                 alpha: float = ALPHA) -> tuple[bool, float | None, str]:
    """Is the difference between two cases beyond their round-to-round noise?

    With enough rounds for the test to reach `alpha` (e.g. 4 and 4 for 0.05), a
    two-sided Mann-Whitney U test on stats.data decides. With fewer, the interquartile
    ranges must not overlap; with a single round each that reduces to the threshold alone.
    """
    from math import comb

    from scipy.stats import mannwhitneyu
    a, b = base["data"], new["data"]
    if isinstance(a, list) and isinstance(b, list) and len(a) and len(b):
        if 2 / comb(len(a) + len(b), len(a)) < alpha:
            p = float(mannwhitneyu(b, a, alternative="two-sided").pvalue)
            return p < alpha, p, "mann-whitney"
    apart = new["q1"] > base["q3"] if slower else new["q3"] < base["q1"]
    return bool(apart), None, "iqr"


def pool(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per case, the rounds of every run of it pooled (median and quartiles recomputed).

    Rounds of one run sit seconds apart and share that moment's machine noise; pooling
    several runs spreads them over time, so the test below sees the run-to-run noise too.
    """
    rows = []
    for _, group in frame.groupby(MATCH, dropna=False, sort=False):
        row = group.iloc[0].to_dict()
        data = [x for d in group["data"] if isinstance(d, list) for x in d]
        if len(group) > 1 and data:
            q1, median, q3 = np.percentile(data, [25, 50, 75])
            row.update(data=data, median=median, q1=q1, q3=q3, rounds=len(data))
        rows.append(row)
    return pd.DataFrame(rows, columns=frame.columns)


def compare(base: pd.DataFrame, new: pd.DataFrame, threshold: float = 0.10) -> pd.DataFrame:
    """Per case: base and new medians, change, test used and verdict (faster, slower,
    unchanged, missing, new, not comparable). `slower` is a regression. Several runs of a
    case on one side are pooled first. The tests share ALPHA among the matched cases
    (Bonferroni), so a file of 60 noisy cases does not raise ~3 false alarms."""
    merged = pool(base).merge(pool(new), on=MATCH, how="outer", suffixes=("_base", "_new"),
                              indicator=True)
    alpha = ALPHA / max(1, int((merged["_merge"] == "both").sum()))
    rows = []
    for _, r in merged.iterrows():
        b = {s: r.get(f"{s}_base") for s in ("median", "q1", "q3", "data", "case")}
        n = {s: r.get(f"{s}_new") for s in ("median", "q1", "q3", "data", "case")}
        row = {"case": b["case"] if r["_merge"] != "right_only" else n["case"],
               "base_s": b["median"], "new_s": n["median"], "change": None, "p": None, "test": "",
               "samples": r["samples"], "_key": tuple(r[k] for k in KEY)}
        if r["_merge"] == "left_only":
            row["verdict"] = "missing"
        elif r["_merge"] == "right_only":
            row["verdict"] = "new"
        else:
            ratio = n["median"] / b["median"]
            row["change"] = ratio - 1
            slower, faster = ratio > 1 + threshold, ratio < 1 / (1 + threshold)
            real, row["p"], row["test"] = _real_change(pd.Series(b), pd.Series(n), slower, alpha)
            row["verdict"] = ("slower" if slower and real else "faster" if faster and real
                              else "unchanged")
        rows.append(row)
    return _not_comparable(pd.DataFrame(rows, columns=[
        "case", "base_s", "new_s", "change", "p", "test", "verdict", "samples", "_key"]))


def _not_comparable(table: pd.DataFrame) -> pd.DataFrame:
    """A case missing on one side and new on the other with another workload is one row:
    not comparable, its two workloads named."""
    rows = []
    for key, group in table.groupby("_key", sort=False):
        sides = group.set_index("verdict")
        if {"missing", "new"} <= set(sides.index) and len(group) == 2:
            base, new = sides.loc["missing"], sides.loc["new"]
            rows.append({"case": base["case"], "base_s": base["base_s"], "new_s": new["new_s"],
                         "change": None, "p": None, "test": "",
                         "verdict": "not comparable",
                         "note": f"workloads differ: {base['samples']:,.0f} vs {new['samples']:,.0f} "
                                 "images per round"})
        else:
            rows += [{**r, "note": ""} for r in group.to_dict("records")]
    return pd.DataFrame(rows, columns=["case", "base_s", "new_s", "change", "p", "test", "verdict", "note"])


def render_comparison(table: pd.DataFrame, fmt: str = "text") -> str:
    """The comparison as an aligned text table or GitHub markdown, with a closing count."""
    def cells(column: str, form: str) -> pd.Series:
        return table[column].map(lambda x: "" if pd.isna(x) else format(x, form))
    shown = table.assign(base_s=cells("base_s", ".4g"), new_s=cells("new_s", ".4g"),
                         change=cells("change", "+.1%"), p=cells("p", ".3f"))
    if not shown["note"].any():
        shown = shown.drop(columns="note")
    body = shown.to_markdown(index=False, tablefmt="github" if fmt == "markdown" else "simple",
                             disable_numparse=True)
    counts = table["verdict"].value_counts()
    summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
    title = "## mnist-bench comparison\n\n" if fmt == "markdown" else ""
    return f"{title}{body}\n\n{summary}\n"
