import json
import platform
import sys
import time
from pathlib import Path

import pytest
import torch

from mnist_models.harness.cases import default_precisions
from mnist_models.machine.cpu import SHOWN_FLAGS, cpu_flags, vector_isa
from mnist_models.machine.devices import cpu_class, device_class, native_bf16, timed
from mnist_models.machine.facts import build_machine_facts
from mnist_models.machine.probe import matmul_peak_gflops, peak_table, probe, triad_bandwidth_gbs
from mnist_models.machine.process import peak_rss_mb

RECORD = Path(__file__).parent / "data" / "record"  # frozen copies of real result files


def _flags(name: str) -> list[str]:
    """py-cpuinfo's flags as pytest-benchmark recorded them in a real result file."""
    return json.loads((RECORD / name).read_text())["machine_info"]["cpu"]["flags"]


def _amx(name: str = "xeon-amx-2core.json") -> list[str]:
    return json.loads((RECORD.parent / name).read_text())["machine_info"]["cpu"]["flags"]


def test_default_precisions_follow_the_cpu_flags():
    # the two real machines in results/: an EPYC with AVX512-BF16, one with AVX2 only
    assert default_precisions(cpu_class(_flags("epyc-2core.json"))) == ("fp32", "bf16")
    assert default_precisions(cpu_class(_flags("epyc-avx2-2core.json"))) == ("fp32",)
    assert default_precisions(cpu_class(_amx())) == ("fp32", "bf16")  # the Xeon with AMX
    assert default_precisions(cpu_class(["avx2", "fma", "amx_tile", "amx_bf16"])) == ("fp32", "bf16")
    assert default_precisions(cpu_class(["asimd", "bf16"])) == ("fp32", "bf16")  # Arm FEAT_BF16
    assert default_precisions(cpu_class(["avx512f", "avx512bw", "avx512vl", "avx512dq"])) == ("fp32",)


def test_vector_isa_from_flags():
    assert vector_isa(_flags("epyc-2core.json")) == "AVX512"
    assert vector_isa(_flags("epyc-avx2-2core.json")) == "AVX2"
    assert vector_isa(["sse4_2"]) == "DEFAULT"


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or not hasattr(torch.cpu, "_is_avx512_bf16_supported"),
    reason="torch's own bf16 CPUID checks are x86's",
)
def test_this_cpu_is_read_as_torch_reads_it():
    """native_bf16 reads the flags; torch asks CPUID itself: the two must agree here."""
    flags = cpu_flags()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    assert native_bf16("cpu") == (torch.cpu._is_avx512_bf16_supported() or amx)
    assert ("avx512_bf16" in flags) == torch.cpu._is_avx512_bf16_supported()
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        assert vector_isa(flags) in ("AVX2", "AVX512")


@pytest.mark.skipif(torch.accelerator.is_available(), reason="this machine has an accelerator")
def test_no_gpu_means_no_native_bf16_there():
    assert native_bf16("cuda") is False and default_precisions(device_class("cuda")) == ("fp32",)


def test_probe_is_bounded_and_agrees_with_a_direct_timing():
    start = time.perf_counter()
    gflops, n = matmul_peak_gflops("cpu", "fp32", seconds=0.3)
    assert time.perf_counter() - start < 3.0  # the deadline, plus at most one product past it
    assert 128 <= n <= 2048 and n & (n - 1) == 0
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    direct = max(2 * n**3 / timed(lambda: a @ b, "cpu")[1] / 1e9 for _ in range(5))
    assert direct / 3 < gflops < direct * 3


def test_probe_measures_only_what_it_is_asked_and_says_so():
    lines = []
    peaks, sizes = peak_table({"cpu": ("fp32",)}, say=lines.append)
    assert set(peaks) == set(sizes) == {"cpu_fp32"} and peaks["cpu_fp32"] > 0
    assert len(lines) == 1 and lines[0].startswith("matmul probe cpu fp32: ")


def test_bandwidth_probe_is_bounded_and_agrees_with_a_direct_timing():
    start = time.perf_counter()
    gbs = triad_bandwidth_gbs("cpu", seconds=0.3)
    assert time.perf_counter() - start < 5.0  # allocation and first touch, the deadline, one pass past it
    b, c = torch.ones(2**24), torch.ones(2**24)  # 64 MiB each: out of every cache
    b + c
    direct = max(12 * 2**24 / timed(lambda: b + 3 * c, "cpu")[1] / 1e9 for _ in range(3))
    assert direct / 3 < gbs < direct * 6  # `b + 3 * c` makes a temporary: more traffic than counted


def test_a_runs_probe_holds_both_ceilings_and_says_each():
    lines = []
    found = probe({"cpu": ("fp32",)}, say=lines.append)
    assert set(found) == {"peak_gflops", "peak_probe_size", "bandwidth_gbs"}
    assert found["bandwidth_gbs"]["cpu"] > 0 and len(lines) == 2
    assert lines[1].startswith("bandwidth probe cpu: ")


def test_machine_info_tells_machines_apart():
    info = build_machine_facts("laptop", quick=True)
    assert info["label"] == "laptop" and info["logical_cores"] >= 1 and info["ram_gb"] > 0
    assert info["quick"] is True  # the run's own facts, beside the machine's
    assert info["torch"] == torch.__version__ and info["torch_threads"] == torch.get_num_threads()
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert set(info["cpu_flags"]) <= set(SHOWN_FLAGS) and set(info["cpu_flags"]) <= cpu_flags()
    assert info["cpu_bf16_native"] == native_bf16("cpu")
    if sys.platform.startswith("linux"):
        assert info["cpu_family"] is not None and "L1d" in info["cpu_caches"]
    assert "peak_gflops" not in info
    if not torch.cuda.is_available():
        assert info["cuda"] is None and "accelerator" not in info
    assert peak_rss_mb() > 10
