"""One case's round statistics, as pytest-benchmark computes them (its own Stats class), for
every result file this package writes itself (ab, run --score) and every pool of rounds
compare makes: one definition of a quartile everywhere.

    stats_of([0.21, 0.20, 0.22])     # {"min": 0.2, "median": 0.21, "q1": ..., "data": [...], ...}

No torch here.
"""

from __future__ import annotations

from pytest_benchmark.stats import Stats


def stats_of(data: list[float]) -> dict:
    """pytest-benchmark's statistics of these rounds (one iteration each), with the rounds."""
    stats = Stats()
    for seconds in data:
        stats.update(seconds)
    return {**{k: getattr(stats, k) for k in Stats.fields}, "iterations": 1, "data": list(data)}
