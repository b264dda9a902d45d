"""Interleaved rounds: on a shared machine the speed drifts by tens of percent within
minutes, so variants timed one after another compare the moments, not the code. Every
round here runs each item once, in a freshly shuffled (seeded) order, after one cold round.

    seconds = interleaved(["a", "b"], rounds=5, time_one=lambda name, r: ...)   # {"a": [rounds 1-5 s], ...}
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

Item = TypeVar("Item", bound=Hashable)


def interleaved(
    items: Iterable[Item],
    rounds: int,
    time_one: Callable[[Item, int], float],
    progress: Callable[[int, Item], None] | None = None,
    seed: int = 0,
) -> dict[Item, list[float]]:
    """time_one(item, r) for every item in every round r = 0 (cold) .. rounds, each round in
    a new shuffled order: {item: the seconds it returned in rounds 1..rounds}."""
    order = list(items)
    seconds: dict[Item, list[float]] = {item: [] for item in order}
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
