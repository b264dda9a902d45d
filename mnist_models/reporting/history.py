"""Trends across commits: result files of one machine label from different commits become a
series per case, and a step change is found where it happened.

    mnist-bench history results/history/      # one line per step found, or that none was

A series is each commit's rounds (`stats.data`), in the order the runs were made. The
detector splits it in two where the rounds before and after differ most (a two-sided
Mann-Whitney U test), keeps the split when the difference is beyond the noise (p below
ALPHA shared among every split it tried, Bonferroni) and at least MIN_STEP in size, and
looks again inside each half: a piecewise-constant fit, as asv's step detection makes.
Only splits whose rounds could reach that cutoff at all are judged (as compare's); a
series with none is undecided, with the rounds it would need, never "no step".
No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .compare import _reachable

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


@dataclass(frozen=True)
class Undecided:
    """A series whose rounds could not reach the cutoff at any split: no step can be told."""

    machine: str  # the machine label
    case: str  # the case id
    commits: int  # commits in the series
    rounds: int  # rounds in it, all commits together
    alpha: float  # the cutoff its splits had to reach
    more: int  # rounds a side its most promising split would need added to reach it


def series(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per machine label, case, workload (and recipe) and commit: its rounds, median and date, in
    the order the runs were made. Files without a commit, or labels with one commit, drop out."""
    f = frame.assign(label=frame["machine"].str.replace(r" \(.*\)$", "", regex=True))
    f = f[f["commit"].notna()]
    keep = f.groupby("label")["commit"].transform("nunique") > 1
    return f[keep].sort_values(["label", "case", "samples", "recipe", "run_at"], kind="stable")


def _sides(rounds: list[np.ndarray]) -> list[tuple[int, int]]:
    """Each split's rounds before and after it (split k: the first k commits before)."""
    sizes = [len(r) for r in rounds]
    return [(sum(sizes[:k]), sum(sizes[k:])) for k in range(1, len(rounds))]


def _split(rounds: list[np.ndarray], alpha: float) -> tuple[int, float] | None:
    """The split of the commits (index of the first after it) whose rounds differ most,
    among those whose rounds could reach `alpha` at all."""
    from scipy.stats import mannwhitneyu

    best = None
    for k, (a, b) in enumerate(_sides(rounds), start=1):
        if a < 2 or b < 2 or not _reachable(np.array([a]), np.array([b]), alpha)[0]:
            continue
        left, right = np.concatenate(rounds[:k]), np.concatenate(rounds[k:])
        p = float(mannwhitneyu(right, left, alternative="two-sided").pvalue)
        if best is None or p < best[1]:
            best = (k, p)
    return best


def _groups(frame: pd.DataFrame):
    """Every series of the frame: (label, case, commits, rounds), and the cutoff a split must
    reach (ALPHA shared among the splits of the first pass: Bonferroni)."""
    s = series(frame)
    groups = list(s.groupby(["label", "case", "samples", "recipe"], sort=False))  # another recipe: another series
    tries = sum(max(len(g) - 1, 0) for _, g in groups)
    alpha = ALPHA / max(tries, 1)
    for (label, case, _, _), g in groups:
        rounds = [np.asarray(d if len(d) else [m], dtype=float) for d, m in zip(g["data"], g["median"], strict=True)]
        yield label, case, g["commit"].tolist(), rounds, alpha


def steps(frame: pd.DataFrame) -> list[Step]:
    """Every step change in every series of the frame (results.load_results's)."""
    found: list[Step] = []
    for label, case, commits, rounds, alpha in _groups(frame):
        found += _steps(label, case, commits, rounds, alpha)
    return sorted(found, key=lambda st: (st.machine, st.case))  # stable: each series' steps in commit order


def undecided(frame: pd.DataFrame) -> list[Undecided]:
    """The series of the frame in which no split's rounds could reach the cutoff."""
    out = []
    for label, case, commits, rounds, alpha in _groups(frame):
        sides = _sides(rounds)
        if not sides or _split(rounds, alpha) is not None:
            continue
        more = min(_more(a, b, alpha) for a, b in sides)
        out.append(Undecided(label, case, len(commits), sum(len(r) for r in rounds), alpha, more))
    return sorted(out, key=lambda u: (u.machine, u.case))


def _more(a: int, b: int, alpha: float) -> int:
    """Rounds to add to each side of a split of a and b rounds before its test can reach alpha."""
    return next(m for m in range(0, 100_000) if _reachable(np.array([a + m]), np.array([b + m]), alpha)[0])


def _steps(
    label: str, case: str, commits: list[str], rounds: list[np.ndarray], alpha: float, offset: int = 0
) -> list[Step]:
    """Binary segmentation of one series: the best split if it is a step, then each half."""
    best = _split(rounds, alpha)
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


def render_steps(found: list[Step], frame: pd.DataFrame, blind: list[Undecided] = ()) -> str:
    """One line per step and per undecided series (`blind`), and, where no step was found,
    one line saying over what none was."""
    s = series(frame)
    if s.empty:
        return "no machine label has result files from more than one commit; nothing to trend\n"
    lines = [
        f"{st.commit} {st.machine} {st.case}: {st.change:+.1%} after {st.before} (p = {st.p:.2g}; "
        f"{st.rounds[0]} rounds before, {st.rounds[1]} after)\n"
        for st in found
    ]
    lines += [
        f"undecided: {u.machine} {u.case}: its {u.rounds} rounds over {u.commits} commits cannot reach "
        f"p < {u.alpha:.2g} at any split; needs {u.more} more rounds a side\n"
        for u in blind
    ]
    judged = s.groupby(["label", "case", "samples", "recipe"]).ngroups - len(blind)
    if not found and judged:
        lines.append(
            f"no step change in {judged} series over {s['commit'].nunique()} commits (p < {ALPHA} shared "
            f"among the splits, at least {MIN_STEP:.0%}){f'; {len(blind)} undecided' if blind else ''}\n"
        )
    elif not found:
        lines.append(f"undecided in all {len(blind)} series: too few rounds to tell a step from the noise\n")
    return "".join(lines)
