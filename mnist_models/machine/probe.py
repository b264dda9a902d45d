"""The machine's two ceilings, each bounded in time whatever the hardware: the matmul probe
(the best GFLOP/s square matrix products reach on a device and precision: "of peak" in
the report divides by it) and the bandwidth probe (the best GB/s a STREAM triad moves:
with the peak, the roofline's second side, roofline.py).

    from mnist_models.machine.probe import probe
    probe({"cpu": ("fp32", "bf16")}, say=print)   # {"peak_gflops": ..., "peak_probe_size": ..., "bandwidth_gbs": ...}
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .devices import timed

PROBE_SECONDS = 2.0  # the most one precision's matmul probe, or one device's triad, may take
TRIAD_BYTES = {"cpu": 3 * 2**27, "accelerator": 3 * 2**30}  # three arrays, far beyond any last-level cache


def matmul_peak_gflops(device: str, precision: str = "fp32", seconds: float = PROBE_SECONDS) -> tuple[float, int]:
    """Best GFLOP/s of square matmuls on `device`, and the size it settled on.

    The size doubles from 128 while one product takes under 20 ms (up to 2048 on a CPU,
    8192 on a GPU) and the next size fits in the time left; then products at that size
    repeat for half a second. All of it ends within about `seconds`, so an emulated
    precision that runs at 0.1 GFLOP/s costs no more time than a native one.
    """
    import torch  # noqa: PLC0415 (machine: torch only inside functions)

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    deadline = time.perf_counter() + seconds
    best, n, largest = 0.0, 128, 2048 if device == "cpu" else 8192  # an accelerator: up to 8192
    while True:
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        timed(lambda a=a, b=b: a @ b, device)  # lazy init, kernel choice
        _, one = timed(lambda a=a, b=b: a @ b, device)
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


def peak_table(
    precisions: dict[str, tuple[str, ...]], say: Callable[[str], None] = lambda line: None
) -> tuple[dict[str, float], dict[str, int]]:
    """Matmul probe for each device's precisions: ({"cpu_fp32": 190.0}, {"cpu_fp32": 2048})."""
    peaks, sizes = {}, {}
    for device, names in precisions.items():
        for precision in names:
            start = time.perf_counter()
            key = f"{device}_{precision}"
            peaks[key], sizes[key] = matmul_peak_gflops(device, precision)
            say(
                f"matmul probe {device} {precision}: {peaks[key]:,.1f} GFLOP/s at "
                f"{sizes[key]}x{sizes[key]} in {time.perf_counter() - start:.1f} s"
            )
    return peaks, sizes


def triad_bandwidth_gbs(device: str, seconds: float = PROBE_SECONDS) -> float:
    """Best GB/s of a STREAM triad, a = b + 3c in fp32, on `device`.

    Counted as STREAM counts it: two arrays read and one written, 12 bytes an element (a
    cache that reads the written line first moves more than is counted). The arrays hold
    TRIAD_BYTES together, quartered while they do not fit; passes repeat for up to `seconds`
    after the first, which pays for first touch, and the quickest pass counts.
    """
    import torch  # noqa: PLC0415 (machine: torch only inside functions)

    total = TRIAD_BYTES["cpu" if device == "cpu" else "accelerator"]
    while True:
        try:
            a, b, c = (torch.ones(total // 12, device=device) for _ in range(3))
            break
        except (RuntimeError, MemoryError):  # a small device: a quarter of the memory at a time
            if total <= 3 * 2**22:
                raise
            total //= 4
    deadline = time.perf_counter() + seconds
    timed(lambda: torch.add(b, c, alpha=3.0, out=a), device)  # first touch, kernel choice
    best = 0.0
    while True:
        _, one = timed(lambda: torch.add(b, c, alpha=3.0, out=a), device)
        best = max(best, 12 * a.numel() / one / 1e9)
        if time.perf_counter() + one > deadline:
            return round(best, 1)


def probe(plan: dict[str, tuple[str, ...]], say: Callable[[str], None] = lambda line: None) -> dict:
    """Both probes for a run: the matmul peak of each device's precisions, the triad per device."""
    peaks, sizes = peak_table(plan, say)
    bandwidth = {}
    for device in plan:
        start = time.perf_counter()
        bandwidth[device] = triad_bandwidth_gbs(device)
        say(f"bandwidth probe {device}: {bandwidth[device]:,.1f} GB/s in {time.perf_counter() - start:.1f} s")
    return {"peak_gflops": peaks, "peak_probe_size": sizes, "bandwidth_gbs": bandwidth}
