"""Interleaved rounds: on a shared machine the speed drifts by tens of percent within
minutes, so variants timed one after another compare the moments, not the code. Every
round here runs each item once, in a freshly shuffled (seeded) order, after one cold round.

    seconds = interleaved(["a", "b"], rounds=5, time_one=lambda name, r: ...)   # {"a": [rounds 1-5 s], ...}
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable


def interleaved(
    items: Iterable[Hashable],
    rounds: int,
    time_one: Callable[[Hashable, int], float],
    progress: Callable[[int, Hashable], None] | None = None,
    seed: int = 0,
) -> dict:
    """time_one(item, r) for every item in every round r = 0 (cold) .. rounds, each round in
    a new shuffled order: {item: the seconds it returned in rounds 1..rounds}."""
    order = list(items)
    seconds = {item: [] for item in order}
    shuffle = random.Random(seed)
    for r in range(rounds + 1):
        shuffle.shuffle(order)
        for item in order:
            took = time_one(item, r)
            if r:
                seconds[item].append(took)
            if progress:
                progress(r, item)
    return seconds
