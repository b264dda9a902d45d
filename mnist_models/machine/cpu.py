"""The CPU: its flags, what they say about its vector units, and the facts that tell it apart.

    from mnist_models.machine.cpu import cpu_flags, vector_isa
    vector_isa(cpu_flags())          # "AVX512", "AVX2" or "DEFAULT"

The flag functions take the flags they decide from, so they are pure and need no torch;
torch is imported only by cpu_facts, which asks it for its own capability level.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Iterable
from pathlib import Path

# Instructions that do bf16 arithmetic in hardware: x86 AVX512-BF16 (Cooper Lake, Zen 4 on),
# AMX-BF16 (Sapphire Rapids on), Arm FEAT_BF16 ("bf16" in /proc/cpuinfo's Features).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
MATRIX_FLAGS = frozenset({"amx_bf16"})  # a matrix engine that multiplies bf16 tiles (Intel AMX)
AVX512_CORE = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})  # torch's "AVX512" level
# The flags a reader compares machines by, in the order the report shows them.
SHOWN_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "neon",
    "asimd",
    "sve",
    "bf16",
)


def vector_isa(flags: Iterable[str]) -> str:
    """torch's CPU capability level that these flags allow: AVX512, AVX2 or DEFAULT."""
    flags = set(flags)
    if AVX512_CORE <= flags:
        return "AVX512"
    return "AVX2" if {"avx2", "fma"} <= flags else "DEFAULT"


@functools.cache
def _cpuinfo() -> dict:
    """py-cpuinfo's reading (brand, family, model, stepping, flags); {} where it fails.

    The `cpuinfo` module comes with pytest-benchmark (py-cpuinfo, or its fork py-cpuinfo2
    in pytest-benchmark 5), which records the same reading in its own machine_info.
    """
    try:
        import cpuinfo  # noqa: PLC0415 (cpuinfo: a failing import reads as no facts)

        return cpuinfo.get_cpu_info()
    except Exception:  # an unknown platform: the facts are optional, the run is not
        return {}


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags, lower case (from /proc/cpuinfo on Linux, py-cpuinfo elsewhere)."""
    return frozenset(f.lower() for f in _cpuinfo().get("flags", ()))


def has_any(wanted: frozenset[str], flags: Iterable[str] | None = None) -> bool:
    """Does the CPU have any of `wanted`? `flags`: another machine's (default: this one's)."""
    return bool(wanted & set(cpu_flags() if flags is None else flags))


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
    """The CPU as a reader tells machines apart: model, family/model/stepping, ISA, flags, caches."""
    import torch  # noqa: PLC0415 (machine: torch only inside functions)

    info, flags = _cpuinfo(), cpu_flags()
    return {
        "cpu_model": info.get("brand_raw") or platform.processor() or platform.machine(),
        "cpu_vendor": info.get("vendor_id_raw"),
        "cpu_family": info.get("family"),
        "cpu_model_number": info.get("model"),
        "cpu_stepping": info.get("stepping"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": [f for f in SHOWN_FLAGS if f in flags],
        "cpu_caches": _caches() or None,
    }
