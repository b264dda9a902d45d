"""Clocks that respect asynchronous devices, and the facts of the machine they run on.

    from mnist_models.timing import machine_info
    print(machine_info("laptop", probe=True))
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import socket
import time

import psutil
import torch


def sync(device: torch.device | str) -> None:
    """Wait for queued device work, so a clock read after it is honest."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device | str) -> tuple[object, float]:
    """Run fn() between two synchronized clock reads: (result, seconds)."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return result, time.perf_counter() - start


MALLOC_ENV = "MNIST_BENCH_MALLOC"  # "default" leaves the C allocator as the platform set it
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_malloc = {"state": "unchanged"}  # what tune_malloc did in this process, for machine_info


def tune_malloc() -> str:
    """Keep freed memory in the process, so the next step's tensors need no new pages.

    glibc gives big freed blocks back to the OS (mmap'd above 128 KiB, heap top trimmed)
    and faults fresh pages in on the next allocation: a CNN training step at batch 256
    took a median 6,555 page faults here and its epoch ran 1.66x slower than with
    this (results/fast/malloc.md). Raising both thresholds keeps the memory for reuse; peak
    memory is unchanged. Call once, before training; `MNIST_BENCH_MALLOC=default` skips it.
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


def matmul_peak_gflops(device: torch.device | str, dtype: torch.dtype = torch.float32,
                       n: int = 2048, seconds: float = 0.5) -> float:
    """Best GFLOP/s of an n x n matmul on the device, over about `seconds` of trials."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    (a @ b).sum()  # warm-up: lazy init, kernel choice
    best, deadline, reps = 0.0, time.perf_counter() + seconds, 1
    while time.perf_counter() < deadline:
        _, elapsed = timed(lambda: [a @ b for _ in range(reps)], device)
        best = max(best, 2 * n**3 * reps / elapsed / 1e9)
        reps = min(reps * 2, 64) if elapsed < 0.05 else reps
    return round(best, 1)


def bf16_supported(device: torch.device | str) -> bool:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available()


def peak_rss_mb() -> float:
    """Peak resident set size of this process (ru_maxrss), falling back to current RSS."""
    try:
        import resource
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except ImportError:  # Windows
        return round(psutil.Process().memory_info().rss / 2**20, 1)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info() -> dict:
    """GPU name, count, memory and driver, or {} without CUDA."""
    if not torch.cuda.is_available():
        return {}
    props = torch.cuda.get_device_properties(0)
    info = {"gpu_name": props.name, "gpu_count": torch.cuda.device_count(),
            "gpu_memory_gb": round(props.total_memory / 2**30, 1)}
    info["gpu_driver"] = _driver_version()
    return info


def _driver_version() -> str | None:
    """The NVIDIA driver version from nvidia-smi (torch does not expose it), or None."""
    import shutil
    import subprocess
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.splitlines()[0].strip() if out.returncode == 0 and out.stdout else None


def machine_info(label: str | None = None, probe: bool = True) -> dict:
    """What a reader needs to weigh results from this machine against another's."""
    import torchvision
    info = {
        "label": label or socket.gethostname(),
        "cpu_model": _cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "malloc": _malloc["state"],
        **gpu_info(),
    }
    if probe:
        info["peak_gflops"] = peak_table()
    return info


def peak_table() -> dict[str, float]:
    """Matmul probe per device and dtype, e.g. {"cpu_fp32": 190.0, "cpu_bf16": 610.0}."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    table = {}
    for device in devices:
        table[f"{device}_fp32"] = matmul_peak_gflops(device, torch.float32)
        if bf16_supported(device):
            table[f"{device}_bf16"] = matmul_peak_gflops(device, torch.bfloat16)
    return table
