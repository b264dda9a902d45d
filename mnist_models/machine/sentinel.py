"""The sentinel: a short fixed workload timed between cases, whose speed traces the machine's
own through a run. These VMs drift by tens of percent within minutes at 0% steal; the
sentinel sees it where the cases' rounds, seconds apart, cannot.

    Trajectory().mark()          # before a case: (seconds since the start, sentinel speed)

It is numpy's single-threaded elementwise arithmetic over 4 MiB, not torch: a change of
torch or of this package's code leaves it alone, so a difference it shows between two
runs is the machine's. Its speed is in passes a second (larger: faster), the best of three.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

VALUES = 1 << 20  # float32 values of each array: 4 MiB
PASSES = 16  # multiply-adds over them a timing (about 20 ms on a 2-vCPU VM)


class Sentinel:
    """The arrays, made once; speed() times them."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.a, self.b = (rng.random(VALUES, dtype=np.float32) for _ in range(2))
        self.c = np.empty_like(self.a)

    def _once(self) -> float:
        start = time.perf_counter()
        for _ in range(PASSES):
            np.multiply(self.a, self.b, out=self.c)
            np.add(self.c, self.a, out=self.c)
        return time.perf_counter() - start

    def speed(self) -> float:
        """Passes a second, the best of three timings."""
        return PASSES / min(self._once() for _ in range(3))


@dataclass
class Trajectory:
    """The sentinel's speed through a run: (seconds since the start, speed) at each mark."""

    start: float = field(default_factory=time.monotonic)
    points: list[tuple[float, float]] = field(default_factory=list)
    sentinel: Sentinel = field(default_factory=Sentinel, repr=False)

    def mark(self) -> float:
        """Time the sentinel now and keep it; its speed."""
        speed = self.sentinel.speed()
        self.points.append((round(time.monotonic() - self.start, 2), round(speed, 2)))
        return speed

    def record(self) -> dict:
        """What a result file keeps (fields.py: `trajectory`)."""
        return {"sentinel": "numpy float32 multiply-add over 2^20 values, passes/s", "points": self.points}
