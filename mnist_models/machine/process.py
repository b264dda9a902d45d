"""The process: the C allocator's setting, its peak memory, and how busy the machine was.

from mnist_models.machine.process import tune_malloc, peak_rss_mb
tune_malloc()            # before any tensor: freed memory kept for the next step
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time

import psutil

MALLOC_ENV = "MNIST_BENCH_MALLOC"  # "default" leaves the C allocator as the platform set it
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
STEAL_WARN, OTHERS_WARN = 5.0, 5.0  # percent of all CPU time: a run beyond either was not quiet
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
        import resource  # noqa: PLC0415 (resource: POSIX only)

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except ImportError:  # Windows
        return round(psutil.Process().memory_info().rss / 2**20, 1)


def malloc_state() -> str:
    """What tune_malloc did in this process, for machine_info."""
    return _malloc["state"]


def oversubscribed() -> str | None:
    """A word when torch or OpenMP would run more threads than this machine has cores (an
    OMP_NUM_THREADS or --threads set too high makes every step wait on the others), else None."""
    import torch  # noqa: PLC0415 (machine: torch only inside functions)

    asked = os.environ.get("OMP_NUM_THREADS", "")
    cores = os.cpu_count() or 1
    threads = max(torch.get_num_threads(), int(asked) if asked.isdigit() else 0)  # OpenMP's own pool too
    if threads <= cores:
        return None
    return (
        f"torch runs up to {threads} threads on {cores} cores (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}); "
        "steps wait on one another: lower it to at most the cores"
    )


def cpu_snapshot() -> dict:
    """The machine's and this process's CPU times now, for busy_since()."""
    me = psutil.Process().cpu_times()
    return {
        "wall": time.monotonic(),
        "machine": psutil.cpu_times()._asdict(),
        "ours": me.user + me.system + me.children_user + me.children_system,
    }


def busy_since(before: dict) -> dict:
    """How quiet the machine was since `before`: the load average at the end, the share of
    CPU time the hypervisor stole, and the share other processes used (all CPUs = 100)."""
    return {
        **busy_between(before, cpu_snapshot(), psutil.cpu_count() or 1),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def busy_between(before: dict, now: dict, cores: int) -> dict:
    """busy_since's shares from two snapshots of `cores` CPUs."""
    wall = max(now["wall"] - before["wall"], 1e-9)
    delta = {
        k: now["machine"][k] - before["machine"].get(k, 0) for k in now["machine"] if k not in ("guest", "guest_nice")
    }  # Linux counts those inside user and nice already
    total = sum(delta.values()) or 1e-9
    idle = delta.get("idle", 0) + delta.get("iowait", 0)
    busy = (total - idle - delta.get("steal", 0)) / total  # this machine's CPUs doing work
    ours = (now["ours"] - before["ours"]) / (wall * cores)
    return {
        "seconds": round(wall, 1),
        "steal_percent": round(100 * delta.get("steal", 0) / total, 1),
        "others_percent": round(100 * max(0.0, busy - ours), 1),
    }


def why_not_quiet(busy: dict) -> list[str]:
    """What took the machine from a run (what busy_since measured): one phrase each; none when quiet."""
    said = []
    if busy.get("steal_percent", 0) >= STEAL_WARN:
        said.append(f"the hypervisor took {busy['steal_percent']}% of the CPU time (steal)")
    if busy.get("others_percent", 0) >= OTHERS_WARN:
        said.append(f"other processes used {busy['others_percent']}% of the CPUs")
    return said


def not_quiet(busy: dict) -> str | None:
    """A line when the machine was not quiet during a run (what busy_since measured), else None."""
    said = why_not_quiet(busy)
    if not said:
        return None
    return (
        f"the machine was not quiet during the run: {' and '.join(said)}; "
        "its times are slower than this machine can do (run again on a quiet machine)"
    )
