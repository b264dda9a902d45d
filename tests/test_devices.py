"""The device axis on the machine at hand: discovery, aliases, skip reasons, one clock
sync and one memory reading for every device, and the branches a CPU can run."""

import pytest
import torch

from mnist_models.harness.cases import BenchOptions, cases
from mnist_models.machine import devices
from mnist_models.machine.devices import sync, timed

pytestmark = pytest.mark.accelerator  # bench/gpu-run.sh runs these first on a lent GPU

no_accelerator = pytest.mark.skipif(torch.accelerator.is_available(), reason="this machine has an accelerator")


@no_accelerator
def test_without_an_accelerator_only_the_cpu_is_here():
    assert devices.accelerator() is None and devices.accelerator_facts() == {}
    assert devices.resolve("accel") == "accel" and devices.resolve("cpu") == "cpu"
    assert devices.absent("cpu") is None
    assert devices.absent("accel") == devices.absent("cuda") == devices.absent("xpu") == "no accelerator"
    ids = [c.id for c in cases(BenchOptions(), "infer")]
    assert "infer-mlp-cpu-bs64" in ids and "infer-mlp-accel-bs64" in ids  # listed, and skipped


@pytest.mark.skipif(not torch.accelerator.is_available(), reason="no accelerator here")
def test_with_an_accelerator_accel_is_its_name():
    here = devices.accelerator()
    assert devices.resolve("accel") == here == torch.accelerator.current_accelerator().type
    assert devices.absent(here) is None and devices.absent("accel") is None
    assert devices.accelerator_facts()["accelerator_count"] == torch.accelerator.device_count() >= 1
    assert {c.device for c in cases(BenchOptions(devices=("accel", here)), "infer")} == {here}


def test_the_cpu_reads_its_memory_as_the_process_rss():
    value, why = devices.peak_memory_mb("cpu")
    assert value is None and "peak_rss_mb" in why
    devices.reset_peak_memory("cpu")  # nothing to reset, and no error
    assert devices.free_memory("cpu") > 2**20


def test_a_backend_without_a_statistic_reads_none_with_the_reason():
    with pytest.raises(AttributeError, match="has no peak_everything"):
        devices._call("peak_everything", "cpu")


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "accel", marks=pytest.mark.skipif(not torch.accelerator.is_available(), reason="no accelerator here")
        ),
    ],
)
def test_a_synchronized_clock_waits_for_the_work(device, monkeypatch):
    """timed() reads the clock only after sync(): on the cpu the work is done when fn returns,
    on an accelerator only after the sync; either way a sleep inside the work is counted."""
    import time

    device = devices.resolve(device)
    calls = []
    monkeypatch.setattr(devices, "sync", lambda d: calls.append(torch.device(d).type) or sync(d))
    x = torch.randn(256, 256, device=device)
    result, seconds = timed(lambda: (time.sleep(0.05), (x @ x).sum())[1], device)
    assert calls == [torch.device(device).type] * 2  # once before the first clock read, once before the second
    assert seconds >= 0.05 and result.device.type == torch.device(device).type


def test_fused_optimizers_are_known_per_device():
    assert devices.fused_optimizer("cpu") and devices.fused_optimizer("cuda")
    assert not devices.fused_optimizer("accel")  # an accelerator that is not here has none
    tuned = [c.config() for c in cases(BenchOptions(devices=("cpu",)), "train") if c.variant == "tuned"]
    assert tuned and all(cfg.fused and cfg.channels_last for cfg in tuned)


def test_bf16_is_native_only_where_the_device_says():
    assert devices.native_bf16("mps") is False  # not checked on Apple hardware: not in a default run
    if not torch.accelerator.is_available():
        assert devices.native_bf16("cuda") is False and devices.native_bf16("xpu") is False
