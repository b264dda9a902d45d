"""Trends across commits: result files of one machine label from different commits become a
series per case, and a step change is found where it happened.

    mnist-bench history results/history/      # one line per step found, or that none was

A series is each commit's rounds (`stats.data`), in the order the runs were made. The
detector splits it in two where the rounds before and after differ most (a two-sided
Mann-Whitney U test), keeps the split when the difference is beyond the noise (p below
ALPHA shared among every split it tried, Bonferroni) and at least MIN_STEP in size, and
looks again inside each half: a piecewise-constant fit, as asv's step detection makes.
No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ALPHA = 0.01  # family-wise, over every split tried in every series
MIN_STEP = 0.03  # a change of median time smaller than this is not called a step


@dataclass(frozen=True)
class Step:
    machine: str  # the machine label
    case: str  # the case id
    commit: str  # the first commit after the step
    before: str  # the last commit before it
    change: float  # median time after over before, minus 1 (+0.10: 10% slower)
    p: float  # the test's p-value
    rounds: tuple[int, int]  # rounds behind each side


def series(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per machine label, case, workload (and recipe) and commit: its rounds, median and date, in
    the order the runs were made. Files without a commit, or labels with one commit, drop out."""
    f = frame.assign(label=frame["machine"].str.replace(r" \(.*\)$", "", regex=True))
    f = f[f["commit"].notna()]
    keep = f.groupby("label")["commit"].transform("nunique") > 1
    return f[keep].sort_values(["label", "case", "samples", "recipe", "run_at"], kind="stable")


def _split(rounds: list[np.ndarray]) -> tuple[int, float] | None:
    """The split of the commits (index of the first after it) whose rounds differ most."""
    from scipy.stats import mannwhitneyu

    best = None
    for k in range(1, len(rounds)):
        left, right = np.concatenate(rounds[:k]), np.concatenate(rounds[k:])
        if len(left) < 2 or len(right) < 2:
            continue
        p = float(mannwhitneyu(right, left, alternative="two-sided").pvalue)
        if best is None or p < best[1]:
            best = (k, p)
    return best


def steps(frame: pd.DataFrame) -> list[Step]:
    """Every step change in every series of the frame (results.load_results's)."""
    s = series(frame)
    groups = list(s.groupby(["label", "case", "samples", "recipe"], sort=False))  # another recipe: another series
    tries = sum(max(len(g) - 1, 0) for _, g in groups)  # splits the first pass tries: Bonferroni
    found: list[Step] = []
    for (label, case, _, _), g in groups:
        commits = g["commit"].tolist()
        rounds = [np.asarray(d if len(d) else [m], dtype=float) for d, m in zip(g["data"], g["median"])]
        found += _steps(label, case, commits, rounds, ALPHA / max(tries, 1))
    return sorted(found, key=lambda st: (st.machine, st.case))  # stable: each series' steps in commit order


def _steps(
    label: str, case: str, commits: list[str], rounds: list[np.ndarray], alpha: float, offset: int = 0
) -> list[Step]:
    """Binary segmentation of one series: the best split if it is a step, then each half."""
    best = _split(rounds)
    if best is None:
        return []
    k, p = best
    left, right = np.concatenate(rounds[:k]), np.concatenate(rounds[k:])
    change = float(np.median(right) / np.median(left) - 1)
    if p >= alpha or abs(change) < MIN_STEP:
        return []
    here = Step(label, case, commits[k], commits[k - 1], change, p, (len(left), len(right)))
    return [
        *_steps(label, case, commits[:k], rounds[:k], alpha),
        here,
        *_steps(label, case, commits[k:], rounds[k:], alpha),
    ]


def render_steps(found: list[Step], frame: pd.DataFrame) -> str:
    """One line per step, or one line saying none was found (and over what)."""
    s = series(frame)
    if s.empty:
        return "no machine label has result files from more than one commit; nothing to trend\n"
    if not found:
        return (
            f"no step change in {s.groupby(['label', 'case', 'samples', 'recipe']).ngroups} series over "
            f"{s['commit'].nunique()} commits (p < {ALPHA} shared among the splits, at least {MIN_STEP:.0%})\n"
        )
    return "".join(
        f"{st.commit} {st.machine} {st.case}: {st.change:+.1%} after {st.before} (p = {st.p:.2g}; "
        f"{st.rounds[0]} rounds before, {st.rounds[1]} after)\n"
        for st in found
    )
