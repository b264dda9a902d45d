import time

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
