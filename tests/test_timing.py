import os
import subprocess
import sys
import time

import pytest
import torch

from mnist_models.timing import machine_info, matmul_peak_gflops, peak_rss_mb, timed


def test_timed_returns_result_and_seconds():
    result, seconds = timed(lambda: time.sleep(0.05) or 7, "cpu")
    assert result == 7 and 0.05 <= seconds < 1.0


def test_matmul_probe_is_a_plausible_rate():
    gflops = matmul_peak_gflops("cpu", torch.float32, n=256, seconds=0.1)
    assert 0.1 < gflops < 100_000


def test_machine_info_has_what_readers_compare():
    info = machine_info("laptop", probe=False)
    assert info["label"] == "laptop" and info["logical_cores"] >= 1 and info["ram_gb"] > 0
    assert info["torch"] == torch.__version__ and info["torch_threads"] == torch.get_num_threads()
    assert "peak_gflops" not in info
    if not torch.cuda.is_available():
        assert info["cuda"] is None and "gpu_name" not in info
    assert peak_rss_mb() > 10


_FAULTS = """
import resource, torch
from mnist_models.data import ResidentLoader, load_split
from mnist_models.timing import machine_info, tune_malloc
from mnist_models.train import TrainConfig, build, train_epoch
state = tune_malloc()
batches = ResidentLoader(load_split(train=True).take(2048), 256)
cfg, cpu = TrainConfig(model="cnn", batch_size=256), torch.device("cpu")
for _ in range(3):  # fresh models, as benchmark rounds; the last epoch counts
    model, opt, _ = build(cfg, cpu, len(batches))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    train_epoch(model, batches, opt, cpu)
print(state, "|", machine_info(probe=False)["malloc"], "|",
      (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // len(batches))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_tune_malloc_stops_page_faults_in_training(mnist_root):
    def run(setting):
        env = {**os.environ, "MNIST_BENCH_MALLOC": setting, "MNIST_ROOT": str(mnist_root)}
        out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True)
        state, recorded, faults = out.stdout.strip().split(" | ")
        return state, recorded, int(faults)
    tuned, default = run("tuned"), run("default")
    assert tuned[0] == tuned[1] == "glibc: mmap 1 GiB, trim 2 GiB thresholds" and tuned[2] < 100
    assert default[0] == default[1] == "platform default ($MNIST_BENCH_MALLOC=default)"
    assert default[2] > 1000  # glibc hands the step's big tensors back and faults them in again
