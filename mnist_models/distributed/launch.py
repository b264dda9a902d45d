"""Starting ranks on this machine: whether they fit, a free rendezvous port, torch's
launcher API for a function, torchrun's command line for a module, and one line for a
group that failed.

    launch(run_rank, (job,), nproc=2)               # rank 0's return value
    torchrun_command(2, "mnist_models.harness.ddp_worker", ["--store", "127.0.0.1:5000"])

Every group rendezvouses (c10d) on 127.0.0.1 and is never restarted: a failed rank fails
the run.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Callable

from ..errors import RunError, UsageError


def room(kind: str, ranks: int, threads: int) -> str | None:
    """Why `ranks` ranks of `threads` torch threads do not fit this machine (None: they do):
    one GPU a rank on cuda, one core a thread on the cpu, no other device."""
    if kind == "cuda":
        import torch
        gpus = torch.cuda.device_count()
        return f"{ranks} ranks need {ranks} GPUs, and this machine has {gpus}" if ranks > gpus else None
    if kind == "cpu":
        cores = os.cpu_count() or 1
        return (f"{ranks} ranks x {threads} thread{'s' * (threads > 1)} need {ranks * threads} cores, "
                f"and this machine has {cores}" if ranks * threads > cores else None)
    return f"no data-parallel backend for {kind} here (gloo on the cpu, nccl on cuda)"


def free_port(port: int = 0) -> int:
    """`port` if it can be bound on this machine (0: a free one); UsageError if it is in use."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise UsageError(f"port {port} is in use; pass another --port, or 0 for a free one") from None
        return s.getsockname()[1]


def launch(entrypoint: Callable, args: tuple, nproc: int, port: int = 0, run_id: str | None = None):
    """Run entrypoint(*args) in `nproc` ranks through torch's launcher API: rank 0's return
    value. A failed rank raises RunError naming it (the others are stopped)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch
    for noisy in ("torch.distributed.elastic", "torch.multiprocessing"):  # the one line below says it
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc,
                          run_id=run_id or f"mnist-bench-{os.getpid()}", rdzv_backend="c10d",
                          rdzv_endpoint=f"127.0.0.1:{free_port(port)}", max_restarts=0, monitor_interval=0.1)
    try:
        return elastic_launch(config, entrypoint=entrypoint)(*args)[0]
    except ChildFailedError as exc:
        raise RunError(describe(exc)) from None


def torchrun_command(nproc: int, module: str, args: list[str]) -> list[str]:
    """torchrun's command line for `nproc` ranks of `python -m module args` on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--max-restarts", "0",
            "-m", module, *args]


def describe(exc) -> str:
    """One line for a failed group: which rank failed first, and how."""
    rank, failure = min(exc.failures.items(), key=lambda kv: kv[1].timestamp)
    message = failure.message.get("message") if isinstance(failure.message, dict) else failure.message
    how = message or (f"killed by signal {failure.signal_name()}" if failure.exitcode < 0
                      else f"exit code {failure.exitcode}")
    return f"rank {rank} (local rank {failure.local_rank}) failed: {how}; the other ranks were stopped"
