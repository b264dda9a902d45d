"""What the machine is and what it runs natively: CPU flags, GPU facts, the matmul probe.

    from mnist_models.hardware import default_precisions, machine_info
    default_precisions("cpu")        # ("fp32", "bf16") only where the CPU has bf16 instructions
    machine_info("laptop", probe={"cpu": ("fp32",)})

The flag functions take the flags they decide from, so they are pure and need no
torch; torch is imported only by the functions that ask it something.
"""
from __future__ import annotations

import functools
import os
import platform
import socket
import time
from pathlib import Path
from typing import Callable, Iterable

import psutil

from .config import PRECISIONS

# Instructions that do bf16 arithmetic in hardware: x86 AVX512-BF16 (Cooper Lake, Zen 4 on),
# AMX-BF16 (Sapphire Rapids on), Arm FEAT_BF16 ("bf16" in /proc/cpuinfo's Features).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
AVX512_CORE = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})  # torch's "AVX512" level
# The flags a reader compares machines by, in the order the report shows them.
SHOWN_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile",
               "amx_bf16", "amx_int8", "neon", "asimd", "sve", "bf16")
PROBE_SECONDS = 2.0  # the most one precision's matmul probe may take, whatever the hardware


def cpu_native_bf16(flags: Iterable[str]) -> bool:
    """Does a CPU with these flags run bf16 matmuls in hardware (not emulated in fp32)?"""
    return bool(BF16_FLAGS & set(flags))


def vector_isa(flags: Iterable[str]) -> str:
    """torch's CPU capability level that these flags allow: AVX512, AVX2 or DEFAULT."""
    flags = set(flags)
    if AVX512_CORE <= flags:
        return "AVX512"
    return "AVX2" if {"avx2", "fma"} <= flags else "DEFAULT"


@functools.lru_cache(maxsize=None)
def _cpuinfo() -> dict:
    """py-cpuinfo's reading (brand, family, model, stepping, flags); {} where it fails.

    The `cpuinfo` module comes with pytest-benchmark (py-cpuinfo, or its fork py-cpuinfo2
    in pytest-benchmark 5), which records the same reading in its own machine_info.
    """
    try:
        import cpuinfo
        return cpuinfo.get_cpu_info()
    except Exception:  # an unknown platform: the facts are optional, the run is not
        return {}


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags, lower case (from /proc/cpuinfo on Linux, py-cpuinfo elsewhere)."""
    return frozenset(f.lower() for f in _cpuinfo().get("flags", ()))


_CACHE_KIND = {"Data": "d", "Instruction": "i"}  # sysfs cache types -> L1d, L1i


def _caches() -> dict[str, str]:
    """Cache sizes per level as sysfs gives them on Linux (e.g. {"L1d": "48K", "L3": "32768K"})."""
    caches = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((index / n).read_text().strip() for n in ("level", "type", "size"))
        except OSError:
            continue
        caches[f"L{level}{_CACHE_KIND.get(kind, '')}"] = size
    return caches


def cpu_facts() -> dict:
    """The CPU as a reader tells machines apart: model, family/model/stepping, ISA, bf16, caches."""
    import torch
    info, flags = _cpuinfo(), cpu_flags()
    return {"cpu_model": info.get("brand_raw") or platform.processor() or platform.machine(),
            "cpu_vendor": info.get("vendor_id_raw"),
            "cpu_family": info.get("family"), "cpu_model_number": info.get("model"),
            "cpu_stepping": info.get("stepping"),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_flags": [f for f in SHOWN_FLAGS if f in flags],
            "cpu_bf16_native": cpu_native_bf16(flags),
            "cpu_caches": _caches() or None}


def native_bf16(device: str) -> bool:
    """Does `device` (cpu, or an accelerator type) run bf16 natively? Emulation does not count."""
    if device == "cpu":
        return cpu_native_bf16(cpu_flags())
    from .devices import bf16_native
    return bf16_native(device)


def default_precisions(device: str, flags: Iterable[str] | None = None) -> tuple[str, ...]:
    """The precisions a default run uses on `device`: fp32, and bf16 where it is native.

    `flags`: the CPU flags to decide from (default: this machine's), for device "cpu".
    """
    native = cpu_native_bf16(flags) if device == "cpu" and flags is not None else native_bf16(device)
    return PRECISIONS if native else ("fp32",)


def matmul_peak_gflops(device: str, precision: str = "fp32",
                       seconds: float = PROBE_SECONDS) -> tuple[float, int]:
    """Best GFLOP/s of square matmuls on `device`, and the size it settled on.

    The size doubles from 128 while one product takes under 20 ms (up to 2048 on a CPU,
    8192 on a GPU) and the next size fits in the time left; then products at that size
    repeat for half a second. All of it ends within about `seconds`, so an emulated
    precision that runs at 0.1 GFLOP/s costs no more time than a native one.
    """
    import torch

    from .timing import timed
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


def machine_info(label: str | None = None, probe: dict[str, tuple[str, ...]] | None = None,
                 say: Callable[[str], None] = lambda line: None) -> dict:
    """What a reader needs to weigh results from this machine against another's.

    `probe`: device -> precisions whose matmul peak to measure (None: no probe).
    """
    import torch
    import torchvision

    from .devices import accelerator, facts
    from .timing import malloc_state
    info = {
        "label": label or socket.gethostname(),
        **cpu_facts(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda if accelerator() == "cuda" else None,  # the GPU's runtime, with one
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "malloc": malloc_state(),
        **facts(),
    }
    if probe is not None:
        info["peak_gflops"], info["peak_probe_size"] = peak_table(probe, say)
    return info
