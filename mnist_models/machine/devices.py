"""Devices: the cpu, and whatever accelerator torch.accelerator reports (cuda, ROCm as cuda,
mps, xpu, ...): which is here, what it runs natively, one clock sync, one peak-memory
reading and one free-memory reading for all.

    from mnist_models.machine.devices import accelerator, resolve, timed
    accelerator()             # "cuda", "mps", "xpu", or None on a machine without one
    resolve("accel")          # the accelerator's type name, or "accel" where there is none
    result, seconds = timed(lambda: model(x), "cuda")   # synchronized before both clock reads

Everything goes through torch.accelerator (torch 2.6 on); a call that the installed torch
lacks (its memory statistics came later than 2.6) falls back to the backend's own module
(torch.cuda, torch.xpu, torch.mps), and a backend with no such statistic reads None with
the reason. torch is imported only inside functions.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .cpu import BF16_FLAGS, MATRIX_FLAGS, has_any

ACCEL = "accel"  # "the accelerator here, whatever it is"
NAMED = ("cuda", "mps", "xpu")  # accelerator types --devices spells out (others pass as accel)
CHOICES = ("cpu", ACCEL, *NAMED)


def accelerator() -> str | None:
    """The type name of the accelerator present and usable, or None."""
    import torch  # noqa: PLC0415 (machine: torch only inside functions)

    if not torch.accelerator.is_available():
        return None
    current = torch.accelerator.current_accelerator()
    return current.type if current is not None else None


def resolve(name: str) -> str:
    """A device name with the `accel` alias replaced by the accelerator's type (kept where none)."""
    return (accelerator() or ACCEL) if name == ACCEL else name


def absent(name: str) -> str | None:
    """Why device `name` cannot run here (None: it can): the skip reason of its cases."""
    if name == "cpu":
        return None
    here = accelerator()
    if here is None:
        return "no accelerator"
    return None if name in (ACCEL, here) else f"the accelerator here is {here}, not {name}"


def sync(device) -> None:
    """Wait for the device's queued work, so a clock read after it is honest: any
    accelerator, through torch.accelerator (the cpu has nothing queued)."""
    import torch  # noqa: PLC0415 (machine: torch only inside functions)

    device = torch.device(device)
    if device.type != "cpu":
        torch.accelerator.synchronize(device)


def timed(fn, device) -> tuple[object, float]:
    """Run fn() between two synchronized clock reads: (result, seconds)."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return result, time.perf_counter() - start


def is_rocm() -> bool:
    """ROCm: AMD GPUs, which PyTorch presents as cuda."""
    import torch  # noqa: PLC0415 (machine: torch only inside functions)

    return torch.version.hip is not None


def _backend(kind: str):
    """torch.cuda, torch.xpu, torch.mps: the backend module for a fallback, or None."""
    import torch  # noqa: PLC0415 (machine: torch only inside functions)

    return getattr(torch, kind, None)


def _call(name: str, kind: str, *args):
    """torch.accelerator's `name` (its memory module first), else the backend's own, else
    AttributeError: the installed torch has neither."""
    import torch  # noqa: PLC0415 (machine: torch only inside functions)

    for where in (getattr(torch.accelerator, "memory", None), torch.accelerator, _backend(kind)):
        fn = getattr(where, name, None) if where is not None else None
        if fn is not None:
            return fn(*args)
    raise AttributeError(f"{kind} has no {name} in torch {torch.__version__}")


def reset_peak_memory(device) -> None:
    """Start the peak-memory reading afresh (cpu, or a backend without one: nothing)."""
    import torch  # noqa: PLC0415 (machine: torch only inside functions)

    device = torch.device(device)
    if device.type != "cpu":
        try:
            _call("reset_peak_memory_stats", device.type, device)
        except (AttributeError, RuntimeError, NotImplementedError):
            pass


def peak_memory_mb(device) -> tuple[float | None, str | None]:
    """Peak memory held by tensors on `device` since the last reset, in MiB, and None with
    the reason where it cannot be read (the cpu has peak_rss_mb instead)."""
    import torch  # noqa: PLC0415 (machine: torch only inside functions)

    device = torch.device(device)
    if device.type == "cpu":
        return None, "the cpu's is the process's peak RSS (peak_rss_mb)"
    try:
        return round(_call("max_memory_allocated", device.type, device) / 2**20, 1), None
    except (AttributeError, RuntimeError, NotImplementedError) as exc:
        return None, f"{device.type} gives no peak-memory statistic here ({exc})"


def _limits_left() -> list[int]:
    """Bytes this process may still take under its own limits: RLIMIT_AS and RLIMIT_DATA (ulimit
    -v, -d) less what it holds, and its cgroup's memory.max less memory.current."""
    import psutil  # noqa: PLC0415 (psutil: cli start-up imports this)

    left = []
    try:
        import resource  # noqa: PLC0415 (resource: POSIX only)

        mem = psutil.Process().memory_info()
        for which, used in ((resource.RLIMIT_AS, mem.vms), (resource.RLIMIT_DATA, mem.vms)):
            soft = resource.getrlimit(which)[0]
            if soft != resource.RLIM_INFINITY:
                left.append(max(soft - used, 0))
    except (ImportError, OSError, ValueError):
        pass
    try:
        group = Path("/proc/self/cgroup").read_text().strip().split("\n")[0].split("::")[-1]
        base = Path("/sys/fs/cgroup") / group.lstrip("/")
        most = (base / "memory.max").read_text().strip()
        if most != "max":
            left.append(max(int(most) - int((base / "memory.current").read_text()), 0))
    except (OSError, ValueError, IndexError):
        pass
    return left


def free_memory(device) -> int | None:
    """Bytes free for tensors on `device`: on the cpu the RAM available, or less where the
    process's limits (ulimit, cgroup) leave less; the device's own where it says."""
    import psutil  # noqa: PLC0415 (psutil: cli start-up imports this)
    import torch  # noqa: PLC0415 (machine: torch only inside functions)

    device = torch.device(device)
    if device.type == "cpu":
        return min([psutil.virtual_memory().available, *_limits_left()])
    for name in ("get_memory_info", "mem_get_info"):  # torch.accelerator's, then the backend's
        try:
            return int(_call(name, device.type, device)[0])
        except (AttributeError, RuntimeError, NotImplementedError):
            continue
    return None


def fused_optimizer(kind: str) -> bool:
    """Does torch have fused Adam/SGD kernels for this device type?"""
    try:
        from torch.utils import _foreach_utils  # noqa: PLC0415 (machine: torch only inside functions)

        return kind in _foreach_utils._get_fused_kernels_supported_devices()
    except (ImportError, AttributeError):  # a torch that moved it: the two torch has had longest
        return kind in ("cuda", "cpu")


def compile_unavailable(device: str) -> str | None:
    """Why torch.compile (inductor) cannot run on this device type here, or None."""

    import torch._dynamo  # noqa: PLC0415 (machine: torch only inside functions)

    if not torch._dynamo.is_dynamo_supported():
        return f"torch.compile does not support this Python ({sys.version.split()[0]})"
    if device == "cpu":
        compiler = os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")  # inductor's search
        if not shutil.which(compiler):
            return (
                f"torch.compile's CPU backend needs a C++ compiler, and {compiler} is not on the PATH; "
                "install it or set CXX"
            )
        return None
    if device == "cuda":
        return (
            None
            if importlib.util.find_spec("triton")
            else "torch.compile on cuda needs triton, which this torch install lacks (pip install triton)"
        )
    return f"the compiled variant is measured on cpu and cuda only, not on {device}"


def native_bf16(device: str, flags: Iterable[str] | None = None) -> bool:
    """Does `device` (cpu, or an accelerator type) run bf16 in hardware? Emulation does not count.

    The cpu decides from its flags (`flags`: another machine's, default this one's); cuda
    and xpu ask torch; mps is not counted (not checked on Apple hardware here).
    """
    if device == "cpu":
        return has_any(BF16_FLAGS, flags)
    import torch  # noqa: PLC0415 (machine: torch only inside functions)

    if device == "cuda" and torch.cuda.is_available():
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # a torch without the argument: Ampere (8.0) and later have bf16 units
            return torch.cuda.get_device_capability()[0] >= 8
    if device == "xpu" and getattr(torch, "xpu", None) is not None and torch.xpu.is_available():
        return bool(torch.xpu.is_bf16_supported())
    return False


def matrix_engine(device: str, flags: Iterable[str] | None = None) -> bool:
    """Is `device` a cpu with a bf16 matrix engine (AMX)? `flags`: another machine's cpu flags."""
    if device != "cpu":
        return False
    return has_any(MATRIX_FLAGS, flags)


def accelerator_facts() -> dict:
    """The accelerator present: type, name, count, memory, runtime, driver, capability and
    what it runs natively; {} without one."""
    import torch  # noqa: PLC0415 (machine: torch only inside functions)

    kind = accelerator()
    if kind is None:
        return {}
    info = {
        "accelerator": "rocm" if kind == "cuda" and is_rocm() else kind,
        "accelerator_count": torch.accelerator.device_count(),
        "accelerator_bf16_native": native_bf16(kind),
        "accelerator_fused_optimizer": fused_optimizer(kind),
    }
    if kind in ("cuda", "xpu"):
        props = _backend(kind).get_device_properties(0)
        info.update(accelerator_name=props.name, accelerator_memory_gb=round(props.total_memory / 2**30, 1))
    if kind == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            accelerator_capability=getattr(props, "gcnArchName", None) if is_rocm() else f"{props.major}.{props.minor}",
            accelerator_runtime=f"HIP {torch.version.hip}" if is_rocm() else f"CUDA {torch.version.cuda}",
            accelerator_driver=_nvidia_driver() if not is_rocm() else None,
            cudnn=torch.backends.cudnn.version(),
        )
    elif kind == "xpu":
        props = torch.xpu.get_device_properties(0)
        info.update(
            accelerator_driver=getattr(props, "driver_version", None),
            accelerator_runtime=f"XPU {getattr(torch.version, 'xpu', '?')}",
        )
    elif kind == "mps":
        info.update(
            accelerator_name="Apple MPS",
            accelerator_runtime="Metal",
            accelerator_memory_gb=round(torch.mps.recommended_max_memory() / 2**30, 1)
            if hasattr(torch.mps, "recommended_max_memory")
            else None,
        )
    return info


def _nvidia_driver() -> str | None:
    """The NVIDIA driver version from nvidia-smi (torch does not expose it), or None."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    out = subprocess.run(
        [smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
    )
    return out.stdout.splitlines()[0].strip() if out.returncode == 0 and out.stdout else None


@dataclass(frozen=True)
class DeviceClass:
    """What a case's tuned path depends on for one device type: machines of one class run
    the same work (the workload version's fingerprint covers each of CLASSES)."""

    device: str  # cpu, cuda, mps, xpu
    bf16: bool  # bf16 arithmetic in hardware: a default run times bf16 too
    matrix_engine: bool = False  # a cpu with a bf16 matrix engine (AMX): the CNN's inference compiles
    here: bool = False  # this machine's: torch is asked whether it has fused kernels and can compile

    def fused(self) -> bool:
        """Has torch fused optimizer kernels for it?"""
        return fused_optimizer(self.device) if self.here else self.device in ("cpu", "cuda")

    def compiles(self) -> bool:
        """Can torch.compile build here (a C++ compiler on the cpu, triton on cuda)?"""
        return compile_unavailable(self.device) is None if self.here else self.device in ("cpu", "cuda")


# the device classes a workload is defined over (harness/workload.py fingerprints each)
CLASSES = {
    "cpu-avx2": DeviceClass("cpu", bf16=False),
    "cpu-bf16": DeviceClass("cpu", bf16=True),
    "cpu-amx": DeviceClass("cpu", bf16=True, matrix_engine=True),
    "cuda": DeviceClass("cuda", bf16=True),
}


def cpu_class(flags: Iterable[str]) -> DeviceClass:
    """The class of a cpu with these flags (another machine's, read from its result file)."""
    return DeviceClass("cpu", bf16=native_bf16("cpu", flags), matrix_engine=matrix_engine("cpu", flags))


@functools.cache
def device_class(device: str) -> DeviceClass:
    """This machine's class of `device` (torch is imported only where an accelerator is asked of)."""
    if absent(device):
        return DeviceClass(device, bf16=False, here=True)
    return DeviceClass(device, bf16=native_bf16(device), matrix_engine=matrix_engine(device), here=True)
