"""Paired rounds of two versions -> a verdict per case that says what it could not see:
the statistics of `mnist-bench ab` (harness/ab.py). No torch here.

    table = judge_pairs({"train-mlp-cpu-bs64": (base_seconds, new_seconds)}, threshold=0.02)
    table[["case", "change", "low", "high", "detectable", "verdict"]]

Round i of the base and round i of the new side ran back to back (in ABBA order), so each
pair shares that moment's machine speed and their log-ratio cancels it. Per case:

- change: the Hodges-Lehmann estimate of the pairs' log-ratios (the median of their Walsh
  averages), with its 95% interval from the exact signed-rank distribution.
- slower: a one-sided signed-rank test that the change exceeds the threshold, at ALPHA / 2
  shared across the cases by Holm's step-down (faster, the mirror test, gets the other
  half): the case's two-sided interval at its Holm level, at least the 95% one shown, lies
  above the threshold. A case too short for any interval is never judged.
- detectable: the smallest change this many rounds flag with 80% probability, given the
  spread the pairs showed.
- unchanged: neither, the detectable change is at most `detect` (what the gate promises
  to see, 5%), so a change that large would have shown, and the interval lies below it.
  Otherwise undecided, with the rounds that would bring the detectable change down to
  `detect`.

Instruction counts are deterministic to a few hundredths of a percent, so they get a plain
tight threshold (judge_counts), and no rounds.
"""

from __future__ import annotations

from functools import cache
from math import ceil, exp, log, sqrt

import numpy as np
import pandas as pd
from scipy.stats import norm

from .markdown import escape

ALPHA = 0.05  # family-wise error rate across the cases of one comparison
POWER = 0.80  # for the detectable change
CLOCK_THRESHOLD = 0.02  # a case is slower when its change is surely above this
DETECT = 0.05  # the change the clock promises to see: a case that could not is undecided
INSTRUCTION_THRESHOLD = 0.01  # instructions per step: slower above this
EXACT_UP_TO = 60  # pairs: the exact signed-rank distribution; beyond, the normal one
MOST_ROUNDS = 1000  # "needs N more rounds" is capped here
COLUMNS = ["case", "signal", "base", "new", "pairs", "change", "low", "high", "detectable", "p", "verdict", "note"]


@cache
def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(T+ <= k) for k = 0..n(n+1)/2 under the null: every sign equally likely."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    return np.cumsum(counts) / 2.0**n


def signed_rank_p(d: np.ndarray) -> float:
    """One-sided p-value that the median of d is above 0 (Wilcoxon signed rank; zeros dropped)."""
    d = d[d != 0]
    n = len(d)
    if n == 0:
        return 1.0
    ranks = pd.Series(np.abs(d)).rank().to_numpy()
    t_plus = ranks[d > 0].sum()
    tied = len(np.unique(np.abs(d))) < n
    if n <= EXACT_UP_TO and not tied:
        k = int(t_plus) - 1  # P(T+ >= t) = 1 - P(T+ <= t - 1)
        return float(1 - _signed_rank_cdf(n)[k]) if k >= 0 else 1.0
    _, counts = np.unique(np.abs(d), return_counts=True)  # ties shrink the variance
    mean = n * (n + 1) / 4
    sd = sqrt(n * (n + 1) * (2 * n + 1) / 24 - (counts**3 - counts).sum() / 48)
    return float(norm.sf((t_plus - 0.5 - mean) / sd)) if sd > 0 else 1.0


def hodges_lehmann(d: np.ndarray, alpha: float = ALPHA) -> tuple[float, float, float]:
    """The estimate and two-sided (1 - alpha) interval of the median of d; the interval is
    infinite where n is too small for the level."""
    n = len(d)
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2)
    if n <= EXACT_UP_TO:
        cdf = _signed_rank_cdf(n)
        k = int(np.searchsorted(cdf, alpha / 2, side="right"))  # P(T+ <= k - 1) <= alpha/2
    else:
        k = int(np.floor(n * (n + 1) / 4 + 0.5 - norm.isf(alpha / 2) * sqrt(n * (n + 1) * (2 * n + 1) / 24)))
    estimate = float(np.median(walsh))
    if k < 1:
        return estimate, -np.inf, np.inf
    return estimate, float(walsh[k - 1]), float(walsh[len(walsh) - k])


def holm(p: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Which hypotheses Holm's step-down rejects at family-wise level alpha."""
    order = np.argsort(p)
    reject = np.zeros(len(p), dtype=bool)
    for step, idx in enumerate(order):
        if p[idx] > alpha / (len(p) - step):
            break
        reject[idx] = True
    return reject


def _needs(row, bound: float, detect: float) -> str:
    """How many more pairs would likely decide: bring the detectable change down to `detect`
    (its excess over the threshold shrinks as 1/sqrt(pairs)) and the interval's top below it."""
    pairs, detectable = row["pairs"], row["detectable"]
    if not np.isfinite(detectable):  # too few pairs for any interval at this level
        fewest = ceil(log(2 / ALPHA, 2))
        return f"needs {max(1, fewest - pairs)}+ more rounds for an interval"
    goal, estimate, high = log1p(detect), log1p(row["change"]), log1p(row["high"])
    totals = [
        pairs * ((log1p(detectable) - bound) / (goal - bound)) ** 2,
        pairs * ((high - estimate) / (goal - estimate)) ** 2 if estimate < goal else MOST_ROUNDS,
    ]
    total = min(MOST_ROUNDS, ceil(max(totals)))
    return f"needs {max(1, total - pairs)}{'+' if total >= MOST_ROUNDS else ''} more rounds to see {detect:.0%}"


def by_block(ratios: np.ndarray, blocks: list[int]) -> np.ndarray:
    """One log-ratio a block: the Hodges-Lehmann estimate of its pairs' (robust, and nearly as
    efficient as their mean)."""
    ids = np.asarray(blocks[: len(ratios)])
    return np.array([hodges_lehmann(ratios[ids == b], 1.0)[0] for b in dict.fromkeys(ids.tolist())])


def judge_pairs(
    pairs: dict[str, tuple[list[float], list[float]]],
    threshold: float = CLOCK_THRESHOLD,
    detect: float = DETECT,
    alpha: float = ALPHA,
    blocks: list[int] | None = None,
) -> pd.DataFrame:
    """One row per case from its paired rounds (base seconds, new seconds), judged together.
    `blocks`: each pair's process block; a block's pairs share its processes' bias, so each
    block is one unit (its Hodges-Lehmann log-ratio), and the interval sees that bias as noise."""
    bound, m = log(1 + threshold), max(1, len(pairs))
    rows, p_slow, p_fast = [], [], []
    for case, (base, new) in pairs.items():
        ratios = np.log(np.asarray(new, dtype=float) / np.asarray(base, dtype=float))
        d = ratios if blocks is None else by_block(ratios, blocks)
        estimate, low, high = hodges_lehmann(d, alpha)
        p_slow.append(signed_rank_p(d - bound))
        p_fast.append(signed_rank_p(-d - bound))
        se = (high - low) / (2 * norm.isf(alpha / 2))
        detectable = bound + (norm.isf(alpha / (2 * m)) + norm.isf(1 - POWER)) * se
        rows.append(
            {
                "case": case,
                "signal": "clock",
                "base": float(np.median(base)),
                "new": float(np.median(new)),
                "pairs": len(ratios),
                "change": exp(estimate) - 1,
                "low": exp(low) - 1 if np.isfinite(low) else np.nan,  # nan: no interval
                "high": exp(high) - 1 if np.isfinite(high) else np.nan,
                "detectable": exp(detectable) - 1 if np.isfinite(detectable) else np.inf,
                "p": p_slow[-1],
                "note": "",
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    if table.empty:
        return table
    finite = np.isfinite(table["low"].to_numpy(dtype=float))  # nan: too few pairs for an interval
    slower = holm(np.array(p_slow), alpha / 2) & finite
    faster = holm(np.array(p_fast), alpha / 2) & finite
    verdicts, notes = [], []
    for i, row in table.iterrows():
        if slower[i] or faster[i]:
            verdicts.append("slower" if slower[i] else "faster")
            notes.append("")
        elif row["detectable"] <= detect and log1p(row["high"]) < log1p(detect):
            verdicts.append("unchanged")
            notes.append("")
        else:
            verdicts.append("undecided")
            notes.append(_needs(row, bound, max(detect, threshold * 1.01)))
    table["verdict"], table["note"] = verdicts, notes
    table["p"] = np.where(faster & ~slower, p_fast, p_slow)
    return table


def log1p(x: float) -> float:
    return log(1 + x) if x > -1 else -np.inf


def judge_counts(counts: dict[str, tuple[float, float]], threshold: float = INSTRUCTION_THRESHOLD) -> pd.DataFrame:
    """One row per case from its instructions per step (base, new): slower above the threshold."""
    rows = []
    for case, (base, new) in counts.items():
        change = new / base - 1
        verdict = "slower" if change > threshold else "faster" if change < -threshold else "unchanged"
        rows.append(
            {
                "case": case,
                "signal": "instructions",
                "base": base,
                "new": new,
                "pairs": 1,
                "change": change,
                "low": change,
                "high": change,
                "detectable": threshold,
                "p": np.nan,
                "verdict": verdict,
                "note": "",
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def render(table: pd.DataFrame, fmt: str = "text", title: str = "") -> str:
    """The verdicts as an aligned text table or GitHub markdown, with a closing count."""

    def pct(x) -> str:
        return "" if pd.isna(x) else "inf" if np.isinf(x) else format(x, "+.1%")

    shown = pd.DataFrame(
        {
            "case": table["case"],
            "signal": table["signal"],
            "base": [_figure(v, s) for v, s in zip(table["base"], table["signal"])],
            "new": [_figure(v, s) for v, s in zip(table["new"], table["signal"])],
            "rounds": table["pairs"].map(str),
            "change (95% interval)": [
                (f"{pct(c)} ({pct(lo)} .. {pct(hi)})" if np.isfinite(hi - lo) else f"{pct(c)} (no interval)")
                if s == "clock"
                else pct(c)
                for c, lo, hi, s in zip(table["change"], table["low"], table["high"], table["signal"])
            ],
            "detectable": table["detectable"].map(lambda x: "never" if np.isinf(x) else format(x, ".1%")),
            "verdict": [f"{v} ({n})" if n else v for v, n in zip(table["verdict"], table["note"])],
        }
    )
    if fmt == "markdown":
        shown["case"] = shown["case"].map(escape)
    body = shown.to_markdown(index=False, tablefmt="github" if fmt == "markdown" else "simple", disable_numparse=True)
    counts = table["verdict"].value_counts()
    summary = ", ".join(f"{counts[v]} {v}" for v in ("slower", "faster", "unchanged", "undecided") if v in counts)
    head = f"## {title}\n\n" if fmt == "markdown" and title else f"{title}\n\n" if title else ""
    return f"{head}{body}\n\n{summary}\n"


def _figure(value: float, signal: str) -> str:
    return f"{value:.4g} s" if signal == "clock" else f"{value:,.0f}/step"


def verdict_records(table: pd.DataFrame) -> list[dict]:
    """The verdicts for machines to read: one plain dict per row, infinities as null."""
    clean = table.astype(object).where(table.notna() & ~table.isin([np.inf, -np.inf]), None)
    return clean.to_dict(orient="records")
