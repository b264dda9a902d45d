"""Data-parallel training on the CPU with gloo: real processes through torch's launcher and
torchrun, real MNIST subsets."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from mnist_models.core.config import TrainConfig
from mnist_models.core.data import Split
from mnist_models.core.train import build_model
from mnist_models.distributed.training import ShardedLoader

DDP = [sys.executable, "-m", "mnist_models", "ddp", "--device", "cpu", "--threads", "1"]


def _run(args: list[str], root, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MNIST_ROOT": str(root)}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def test_shards_are_disjoint_cover_every_image_and_change_each_epoch():
    split = Split(torch.arange(10.0).reshape(10, 1, 1, 1), torch.arange(10))
    ranks = [ShardedLoader(split, batch_size=2, rank=r, world=3, seed=5) for r in range(3)]
    first = [torch.cat([y for _, y in loader]) for loader in ranks]
    assert [len(f) for f in first] == [4, 4, 4] and len(ranks[0]) == 2  # 10 padded to 12, 4 a rank
    assert set(torch.cat(first).tolist()) == set(range(10))  # every image, two of them twice (the pad)
    one = torch.cat([y for _, y in ShardedLoader(split, batch_size=6, rank=0, world=1, seed=5)])
    assert torch.equal(torch.stack(first, 1).flatten()[:10], one)  # rank r takes every 3rd from r
    assert not torch.equal(torch.cat([y for _, y in ranks[0]]), first[0])  # the next epoch: a new order


def test_two_ranks_train_as_one_process_on_the_same_images(tmp_path, mnist_root):
    """The proof that sharding and averaging are right: 2 ranks at batch 64 each end with the
    weights of 1 process at batch 128, after 16 steps of Adam. The tolerance (1e-6) covers the
    order of the sums: the all-reduce adds the two ranks' mean gradients, one process takes
    the mean over 128 images at once; measured differences are about 3e-8 (the MLP: no dropout)."""
    weights = {}
    for ranks in (1, 2):
        out = tmp_path / f"w{ranks}"
        done = _run(
            [
                *DDP,
                "--nproc",
                str(ranks),
                "--model",
                "mlp",
                "--epochs",
                "1",
                "--train-samples",
                "2048",
                "--batch-size",
                "128",
                "--out",
                str(out),
            ],
            mnist_root,
        )
        assert done.returncode == 0, done.stderr
        weights[ranks] = torch.load(out / "model.pt")["state_dict"]
        assert json.loads((out / "history.json").read_text())[0]["world_size"] == ranks
    start = build_model(TrainConfig(model="mlp", seed=0, channels_last=False), torch.device("cpu")).state_dict()
    for name, w in weights[1].items():
        torch.testing.assert_close(weights[2][name], w, rtol=1e-5, atol=1e-6)
        assert (w - start[name]).abs().max() > 1e-3  # 16 steps moved every tensor from the seeded start


@pytest.mark.slow
@pytest.mark.parametrize("model,threshold", [("mlp", 0.95), ("cnn", 0.975)])
def test_one_ddp_epoch_reaches_the_single_process_thresholds(tmp_path, mnist_root, model, threshold):
    done = _run([*DDP, "--nproc", "2", "--model", model, "--epochs", "1", "--out", str(tmp_path)], mnist_root)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "history.json").read_text())[0]["test_accuracy"] >= threshold


@pytest.mark.slow
def test_a_rank_that_dies_ends_the_run_naming_it(tmp_path, mnist_root):
    import psutil

    proc = subprocess.Popen(
        [*DDP, "--nproc", "2", "--model", "cnn", "--epochs", "3", "--out", str(tmp_path)],
        env={**os.environ, "MNIST_ROOT": str(mnist_root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers = []
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline:  # the two ranks, spawned by the launcher
        workers = [
            p for p in psutil.Process(proc.pid).children(recursive=True) if "spawn_main" in " ".join(p.cmdline())
        ]
        time.sleep(0.2)
    time.sleep(4)  # into the first epoch
    workers[-1].send_signal(signal.SIGKILL)
    start = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3 and time.monotonic() - start < 60
    assert err.strip().count("\n") == 0 and "failed: Signal 9 (SIGKILL)" in err, err
    assert err.startswith("mnist-bench: error: rank ") and "the other ranks were stopped" in err
    assert not (tmp_path / "history.json").exists() and not (tmp_path / "model.pt").exists()


def test_what_cannot_run_is_refused_before_any_process_starts(tmp_path, cli, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli("ddp", "--nproc", "2", "--threads", "1", "--port", str(port), "--out", str(tmp_path / "a")) == 2
        assert f"port {port} is in use; pass another --port" in capsys.readouterr().err
    ranks = (os.cpu_count() or 1) + 1
    assert (
        cli(
            "ddp",
            "--nproc",
            str(ranks),
            "--batch-size",
            str(8 * ranks),
            "--threads",
            "1",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "b"),
        )
        == 2
    )
    assert "cores, and this machine has" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert cli("ddp", "--nproc", "1", "--backend", "nccl", "--device", "cpu", "--out", str(tmp_path / "c")) == 2
        assert "the nccl backend needs CUDA GPUs" in capsys.readouterr().err
    assert cli("ddp", "--nproc", "0", "--out", str(tmp_path / "d")) == 2
    assert "--nproc must be a positive whole number" in capsys.readouterr().err
    assert cli("ddp", "--nproc", "3", "--batch-size", "128", "--threads", "1", "--out", str(tmp_path / "e")) == 2
    assert "the global batch 128 does not split evenly across 3 ranks" in capsys.readouterr().err  # on any core count
    assert not any((tmp_path / n).exists() for n in "abcde")


@pytest.mark.slow
def test_two_nodes_on_this_machine_form_one_group(tmp_path, mnist_root):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(rank),
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                "-m",
                "mnist_models",
                "ddp",
                "--device",
                "cpu",
                "--model",
                "mlp",
                "--epochs",
                "1",
                "--train-samples",
                "4096",
                "--out",
                str(tmp_path / f"node{rank}"),
            ],
            env={**os.environ, "MNIST_ROOT": str(mnist_root), "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    results = [node.communicate(timeout=180) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], results
    history = json.loads((tmp_path / "node0" / "history.json").read_text())
    assert history[0]["world_size"] == 2 and history[0]["test_accuracy"] > 0.8
    assert not (tmp_path / "node1" / "history.json").exists()  # rank 0 writes, on node 0
