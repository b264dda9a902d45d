"""The process: the C allocator's setting, and its peak memory.

    from mnist_models.machine.process import tune_malloc, peak_rss_mb
    tune_malloc()            # before any tensor: freed memory kept for the next step
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

import psutil

MALLOC_ENV = "MNIST_BENCH_MALLOC"  # "default" leaves the C allocator as the platform set it
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_malloc = {"state": "unchanged"}  # what tune_malloc did in this process, for machine_info


def tune_malloc() -> str:
    """Keep freed memory in the process, so the next step's tensors need no new pages.

    glibc gives big freed blocks back to the OS (mmap'd above 128 KiB, heap top trimmed)
    and faults fresh pages in on the next allocation, thousands a CNN step (what that
    costs: results/fast/malloc.md). Raising both thresholds keeps the memory
    for reuse; peak memory is unchanged. Call once, before training;
    `MNIST_BENCH_MALLOC=default` skips it.
    Returns what was done, which machine_info records.
    """
    if os.environ.get(MALLOC_ENV) == "default":
        state = f"platform default (${MALLOC_ENV}=default)"
    else:
        try:
            mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
        except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
            mallopt = None
        ok = mallopt and mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 and mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
        state = "glibc: mmap 1 GiB, trim 2 GiB thresholds" if ok else "unchanged (no glibc mallopt)"
    _malloc["state"] = state
    return state


def peak_rss_mb() -> float:
    """Peak resident set size of this process (ru_maxrss), falling back to current RSS."""
    try:
        import resource
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except ImportError:  # Windows
        return round(psutil.Process().memory_info().rss / 2**20, 1)


def malloc_state() -> str:
    """What tune_malloc did in this process, for machine_info."""
    return _malloc["state"]


def oversubscribed() -> str | None:
    """A word when torch or OpenMP would run more threads than this machine has cores (an
    OMP_NUM_THREADS or --threads set too high makes every step wait on the others), else None."""
    import torch
    asked = os.environ.get("OMP_NUM_THREADS", "")
    cores = os.cpu_count() or 1
    threads = max(torch.get_num_threads(), int(asked) if asked.isdigit() else 0)  # OpenMP's own pool too
    if threads <= cores:
        return None
    return (f"torch runs up to {threads} threads on {cores} cores (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}); "
            "steps wait on one another: lower it to at most the cores")
