"""The matmul probe: the best GFLOP/s square matrix products reach on a device and
precision, bounded in time whatever the hardware ("of peak" in the report divides by it).

    from mnist_models.machine.probe import peak_table
    peaks, sizes = peak_table({"cpu": ("fp32", "bf16")}, say=print)
"""
from __future__ import annotations

import time
from typing import Callable

from .devices import timed

PROBE_SECONDS = 2.0  # the most one precision's matmul probe may take, whatever the hardware


def matmul_peak_gflops(device: str, precision: str = "fp32",
                       seconds: float = PROBE_SECONDS) -> tuple[float, int]:
    """Best GFLOP/s of square matmuls on `device`, and the size it settled on.

    The size doubles from 128 while one product takes under 20 ms (up to 2048 on a CPU,
    8192 on a GPU) and the next size fits in the time left; then products at that size
    repeat for half a second. All of it ends within about `seconds`, so an emulated
    precision that runs at 0.1 GFLOP/s costs no more time than a native one.
    """
    import torch
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    deadline = time.perf_counter() + seconds
    best, n, largest = 0.0, 128, 2048 if device == "cpu" else 8192  # an accelerator: up to 8192
    while True:
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        timed(lambda: a @ b, device)  # lazy init, kernel choice
        _, one = timed(lambda: a @ b, device)
        best = max(best, 2 * n**3 / one / 1e9)
        if n >= largest or one > 0.02 or time.perf_counter() + 16 * one > deadline:
            break
        n *= 2
    settle = min(deadline, time.perf_counter() + 0.5)
    reps = max(1, int(0.01 / one))  # products per clock read: at least 10 ms of work
    while time.perf_counter() + reps * one < settle:
        _, elapsed = timed(lambda: [a @ b for _ in range(reps)], device)
        best = max(best, 2 * n**3 * reps / elapsed / 1e9)
    return round(best, 1), n


def peak_table(precisions: dict[str, tuple[str, ...]],
               say: Callable[[str], None] = lambda line: None) -> tuple[dict[str, float], dict[str, int]]:
    """Matmul probe for each device's precisions: ({"cpu_fp32": 190.0}, {"cpu_fp32": 2048})."""
    peaks, sizes = {}, {}
    for device, names in precisions.items():
        for precision in names:
            start = time.perf_counter()
            key = f"{device}_{precision}"
            peaks[key], sizes[key] = matmul_peak_gflops(device, precision)
            say(f"matmul probe {device} {precision}: {peaks[key]:,.1f} GFLOP/s at "
                f"{sizes[key]}x{sizes[key]} in {time.perf_counter() - start:.1f} s")
    return peaks, sizes
