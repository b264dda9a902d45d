"""Trends across commits: result files of one machine label from different commits become a
series per case and workload, and a step change is found where it happened.

    mnist-bench history results/history/      # one line per step found, or that none was

A series is each commit's rounds (`stats.data`), in the order the runs were made, of one
case on one workload (the same images a round, recipe, case definition and workload
version). The detector splits it in two where the rounds before and after differ most (a
two-sided Mann-Whitney U test), keeps the split when the difference is beyond the noise (p
below ALPHA shared among every split it tried, Bonferroni), at least MIN_STEP in size and
beyond the machine's own drift, and looks again inside each half: a piecewise-constant
fit, as asv's step detection makes. The drift: how far the sentinel timed between cases
(files from format 4 on) moved between the runs before the split and after it, and within
them; where the files come from several VMs (pytest-benchmark's `node`), as CI's runners
do, at least the spread between those VMs' sentinels. Only splits whose rounds could reach
the cutoff at all are judged; a series with none is undecided, with the rounds it would
need, never "no step". No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

ALPHA = 0.01  # family-wise, over every split tried in every series
MIN_STEP = 0.03  # a change of median time smaller than this is not called a step
KEYS = ["label", "case", "samples", "recipe", "workload", "workload_version"]  # a series


@dataclass(frozen=True)
class Step:
    machine: str  # the machine label
    case: str  # the case id
    commit: str  # the first commit after the step
    before: str  # the last commit before it
    change: float  # median time after over before, minus 1 (+0.10: 10% slower)
    p: float  # the test's p-value
    rounds: tuple[int, int]  # rounds behind each side
    drift: float = 0.0  # the machine's own movement at this split (log units; 0: not measured)
    within: bool = False  # a step the test sees, but no larger than the machine's drift: not the code's


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
    """One row per machine label, series and commit: its rounds, median and date, in the order
    the runs were made. Files without a commit, or labels with one commit, drop out."""
    f = frame.assign(label=frame["machine"].str.replace(r" \(.*\)$", "", regex=True))
    f = f[f["commit"].notna()]
    keep = f.groupby("label")["commit"].transform("nunique") > 1
    return f[keep].sort_values([*KEYS, "run_at"], kind="stable")


def _reachable(a: int, b: int, alpha: float) -> bool:
    """Whether a two-sided Mann-Whitney test of a and b rounds can reach `alpha` at all."""
    return a > 0 and b > 0 and 2 / math.comb(a + b, a) < alpha


def _sides(rounds: list[np.ndarray]) -> list[tuple[int, int]]:
    """Each split's rounds before and after it (split k: the first k commits before)."""
    sizes = [len(r) for r in rounds]
    return [(sum(sizes[:k]), sum(sizes[k:])) for k in range(1, len(rounds))]


def _split(rounds: list[np.ndarray], alpha: float) -> tuple[int, float] | None:
    """The split of the commits (index of the first after it) whose rounds differ most,
    among those whose rounds could reach `alpha` at all."""
    best = None
    for k, (a, b) in enumerate(_sides(rounds), start=1):
        if a < 2 or b < 2 or not _reachable(a, b, alpha):
            continue
        left, right = np.concatenate(rounds[:k]), np.concatenate(rounds[k:])
        p = float(mannwhitneyu(right, left, alternative="two-sided").pvalue)
        if best is None or p < best[1]:
            best = (k, p)
    return best


@dataclass(frozen=True)
class Series:
    label: str
    case: str
    commits: list[str]
    rounds: list[np.ndarray]
    levels: list[float | None]  # each commit's sentinel level (None: not measured)
    moved: list[float | None]  # each commit's movement within its run
    spread: float  # between the series' VMs, where its files come from several (0 otherwise)


def vm_spread(part: pd.DataFrame) -> float:
    """How far apart the sentinels of the different VMs a series ran on are (log of the fastest
    VM's level over the slowest's); 0 where it ran on one VM or no file measured one."""
    by_vm = part.dropna(subset=["level"]).groupby(part["node"].fillna("?"))["level"].median()
    return float(math.log(by_vm.max() / by_vm.min())) if len(by_vm) > 1 else 0.0


def _groups(frame: pd.DataFrame) -> tuple[list[Series], float]:
    """Every series of the frame, and the cutoff a split must reach (ALPHA shared among the
    splits of the first pass: Bonferroni)."""
    s = series(frame)
    out = []
    for (label, case, *_), g in s.groupby(KEYS, sort=False, dropna=False):
        rounds = [np.asarray(d if len(d) else [m], dtype=float) for d, m in zip(g["data"], g["median"], strict=True)]
        levels = [None if pd.isna(x) else float(x) for x in g["level"]]
        moved = [None if pd.isna(x) else float(x) for x in g["moved"]]
        out.append(Series(label, case, g["commit"].tolist(), rounds, levels, moved, vm_spread(g)))
    tries = sum(max(len(x.commits) - 1, 0) for x in out)
    return out, ALPHA / max(tries, 1)


def drift_at(x: Series, k: int) -> float:
    """The machine's own movement at split k: the sentinel's median level after over before,
    half the largest movement within a run, and at least the spread between the VMs."""
    before, after = [v for v in x.levels[:k] if v], [v for v in x.levels[k:] if v]
    between = abs(math.log(np.median(after) / np.median(before))) if before and after else 0.0
    within = max([m for m in x.moved if m is not None], default=0.0) / 2
    return max(between + within, x.spread)


def steps(frame: pd.DataFrame) -> list[Step]:
    """Every step change in every series of the frame (results.load_results's), those within
    the machine's drift marked so."""
    found: list[Step] = []
    groups, alpha = _groups(frame)
    for x in groups:
        found += _steps(x, 0, len(x.commits), alpha)
    return sorted(found, key=lambda st: (st.machine, st.case))  # stable: each series' steps in commit order


def undecided(frame: pd.DataFrame) -> list[Undecided]:
    """The series of the frame in which no split's rounds could reach the cutoff."""
    out = []
    groups, alpha = _groups(frame)
    for x in groups:
        sides = _sides(x.rounds)
        if not sides or _split(x.rounds, alpha) is not None:
            continue
        more = min(_more(a, b, alpha) for a, b in sides)
        out.append(Undecided(x.label, x.case, len(x.commits), sum(len(r) for r in x.rounds), alpha, more))
    return sorted(out, key=lambda u: (u.machine, u.case))


def _more(a: int, b: int, alpha: float) -> int:
    """Rounds to add to each side of a split of a and b rounds before its test can reach alpha."""
    return next(m for m in range(0, 100_000) if _reachable(a + m, b + m, alpha))


def _steps(x: Series, lo: int, hi: int, alpha: float) -> list[Step]:
    """Binary segmentation of the commits lo..hi of one series: the best split if it is a
    step, then each half."""
    best = _split(x.rounds[lo:hi], alpha)
    if best is None:
        return []
    k, p = best
    left, right = np.concatenate(x.rounds[lo : lo + k]), np.concatenate(x.rounds[lo + k : hi])
    change = float(np.median(right) / np.median(left) - 1)
    if p >= alpha or abs(change) < MIN_STEP:
        return []
    drift = drift_at(x, lo + k)
    here = Step(
        x.label,
        x.case,
        x.commits[lo + k],
        x.commits[lo + k - 1],
        change,
        p,
        (len(left), len(right)),
        drift,
        abs(math.log1p(change)) <= drift,
    )
    return [*_steps(x, lo, lo + k, alpha), here, *_steps(x, lo + k, hi, alpha)]


def vm_note(frame: pd.DataFrame) -> str | None:
    """A line where a label's files come from several VMs (CI's runners), with the spread
    between them that a step must exceed, or that it could not be measured."""
    s = series(frame)
    lines = []
    for label, part in s.groupby("label"):
        vms = part["node"].fillna("?").nunique()
        if vms < 2:
            continue
        spread = vm_spread(part)
        lines.append(
            f"{label}'s files come from {vms} machines (pytest-benchmark's node); "
            + (
                f"their sentinels are {math.expm1(spread):.0%} apart, and a step is judged only beyond that"
                if spread
                else "no file measured the sentinel, so the spread between them is unknown"
            )
        )
    return "; ".join(lines) or None


def render_steps(found: list[Step], frame: pd.DataFrame, blind: Sequence[Undecided] = ()) -> str:
    """One line per step (and per step within the machine's drift) and per undecided series
    (`blind`), and, where no step was found, one line saying over what none was."""
    s = series(frame)
    if s.empty:
        return "no machine label has result files from more than one commit; nothing to trend\n"
    real = [st for st in found if not st.within]
    lines = [f"{note}\n" for note in [vm_note(frame)] if note]
    lines += [
        f"{st.commit} {st.machine} {st.case}: {st.change:+.1%} after {st.before} (p = {st.p:.2g}; "
        f"{st.rounds[0]} rounds before, {st.rounds[1]} after"
        f"{f'; beyond the machine drift of {math.expm1(st.drift):.1%}' if st.drift else ''})\n"
        for st in real
    ]
    lines += [
        f"within the machine's drift: {st.machine} {st.case}: {st.change:+.1%} after {st.before}, and the machine "
        f"itself moved {math.expm1(st.drift):.1%} there (the sentinel between cases)\n"
        for st in found
        if st.within
    ]
    lines += [
        f"undecided: {u.machine} {u.case}: its {u.rounds} rounds over {u.commits} commits cannot reach "
        f"p < {u.alpha:.2g} at any split; needs {u.more} more rounds a side\n"
        for u in blind
    ]
    judged = s.groupby(KEYS, dropna=False).ngroups - len(blind)
    if not real and judged:
        lines.append(
            f"no step change in {judged} series over {s['commit'].nunique()} commits (p < {ALPHA} shared "
            f"among the splits, at least {MIN_STEP:.0%} and beyond the machine's drift)"
            f"{f'; {len(blind)} undecided' if blind else ''}\n"
        )
    elif not real and not [st for st in found if st.within]:
        lines.append(f"undecided in all {len(blind)} series: too few rounds to tell a step from the noise\n")
    return "".join(lines)
