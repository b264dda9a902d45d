"""How far the machine itself moved during a run, and intervals that include it: these VMs
drift by tens of percent within minutes at 0% steal, so an interval from rounds seconds
apart says how noisy a moment was, not what a repeat run a few minutes later will read.

    movement(points)                     # 0.18: the sentinel's speed moved 18% through the run
    level(points)                        # the sentinel's median speed: the machine's, between runs
    pass_interval([0.02, -0.01, 0.00])   # (mean, half-width) of per-pass log scores

All in natural-log units unless said. No torch here.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import t as student

LEVEL = 0.95  # the intervals' coverage


def _speeds(points) -> np.ndarray:
    return np.asarray([p[1] for p in points or [] if p and p[1] and p[1] > 0], dtype=float)


def movement(points) -> float | None:
    """How far the machine's speed moved through a run: the log-ratio of the sentinel's 90th
    percentile to its 10th (the largest and smallest where fewer than ten marks), so one
    hiccup does not count as drift; None without three marks."""
    speeds = _speeds(points)
    if len(speeds) < 3:
        return None
    low, high = np.percentile(speeds, [10, 90]) if len(speeds) >= 10 else (speeds.min(), speeds.max())
    return float(math.log(high / low))


def level(points) -> float | None:
    """The sentinel's median speed through a run: the machine's level, to set beside another run's."""
    speeds = _speeds(points)
    return float(np.median(speeds)) if len(speeds) else None


def pass_interval(logs: list[float]) -> tuple[float, float]:
    """The mean of per-pass log scores and the half-width of an interval that covers a repeat
    run: the mean's own (Student's t over the passes) and half the passes' range, the machine's
    movement during the run, which a run minutes later is as likely to land anywhere in,
    together: sqrt(t^2 sd^2 / n + (range / 2)^2). Infinite with fewer than three passes."""
    x = np.asarray(logs, dtype=float)
    if len(x) < 3:
        return float(x.mean()) if len(x) else math.nan, math.inf
    se = x.std(ddof=1) / math.sqrt(len(x))
    spread = student.ppf(0.5 + LEVEL / 2, len(x) - 1) * se
    return float(x.mean()), float(math.hypot(spread, (x.max() - x.min()) / 2))


def with_drift(low: float, point: float, high: float, moved: float | None) -> tuple[float, float]:
    """An interval (in the score's own units, around `point`) widened by a run's movement:
    each side's half-width and half the movement, added in quadrature on the log scale."""
    if not moved:
        return low, high
    down, up = math.log(point / low), math.log(high / point)
    return point / math.exp(math.hypot(down, moved / 2)), point * math.exp(math.hypot(up, moved / 2))


def moved_line(moved: float | None, half_width: float) -> str | None:
    """The words for a run whose speed moved more than its interval's width, else None."""
    if moved is None or moved <= 2 * half_width:
        return None
    return (
        f"this machine's speed moved {math.expm1(moved):.0%} during the run (the sentinel between cases), "
        f"more than the score's interval ({math.expm1(2 * half_width):.0%} wide): a repeat may read differently"
    )
