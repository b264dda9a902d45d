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
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable

import torch
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from ..errors import RunError, Terminated, UsageError


def room(kind: str, ranks: int, threads: int) -> str | None:
    """Why `ranks` ranks of `threads` torch threads do not fit this machine (None: they do):
    one GPU a rank on cuda, one core a thread on the cpu, no other device."""
    if kind == "cuda":
        gpus = torch.cuda.device_count()
        return f"{ranks} ranks need {ranks} GPUs, and this machine has {gpus}" if ranks > gpus else None
    if kind == "cpu":
        cores = os.cpu_count() or 1
        return (
            f"{ranks} ranks x {threads} thread{'s' * (threads > 1)} need {ranks * threads} cores, "
            f"and this machine has {cores}"
            if ranks * threads > cores
            else None
        )
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
    for name in [
        n
        for n in list(logging.root.manager.loggerDict)  # the one line below says it
        if n.startswith(("torch.distributed.elastic", "torch.multiprocessing"))
    ]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    scratch, before = tempfile.mkdtemp(prefix="mnist-bench-ranks-"), tempfile.tempdir
    tempfile.tempdir = scratch  # the agent's log folders (made as its config is), removed with it
    try:
        config = LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            nproc_per_node=nproc,
            run_id=run_id or f"mnist-bench-{os.getpid()}",
            rdzv_backend="c10d",
            rdzv_endpoint=f"127.0.0.1:{free_port(port)}",
            max_restarts=0,
            monitor_interval=0.1,
        )
        return elastic_launch(config, entrypoint=entrypoint)(*args)[0]
    except ChildFailedError as exc:
        raise RunError(describe(exc, nproc)) from None
    except SignalException as exc:  # the agent's own SIGTERM handling: the ranks are stopped
        if "15" in str(exc) or "SIGTERM" in str(exc):
            raise Terminated("the ranks were stopped") from None
        raise
    finally:
        tempfile.tempdir = before
        shutil.rmtree(scratch, ignore_errors=True)


def torchrun_command(nproc: int, module: str, args: list[str]) -> list[str]:
    """torchrun's command line for `nproc` ranks of `python -m module args` on this machine."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(nproc),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{free_port()}",
        "--max-restarts",
        "0",
        "-m",
        module,
        *args,
    ]


PEER = ("Connection reset", "Connection closed", "Broken pipe", "connection", "gloo")  # a peer's death, seen
TIMED_OUT = ("Timed out", "timed out", "Timeout", "timeout")  # a collective that waited too long


def describe(exc, nproc: int | None = None) -> str:
    """One line for a failed group: every failed rank and how, the ranks whose own error is
    not a lost connection to a peer first (those are the ones that failed; the others saw it).
    When every failed rank timed out waiting, the ranks that did not fail are the ones that
    hung (they never reached the collective), and they are named first."""

    def how(failure) -> str:
        message = failure.message.get("message") if isinstance(failure.message, dict) else failure.message
        message = " ".join(str(message or "").split())
        return message[:300] or (
            f"killed by signal {failure.signal_name()}" if failure.exitcode < 0 else f"exit code {failure.exitcode}"
        )

    def seen_from_a_peer(failure) -> bool:
        return any(word in how(failure) for word in PEER)

    ranked = sorted(exc.failures.items(), key=lambda kv: (seen_from_a_peer(kv[1]), kv[1].timestamp))
    parts = [f"rank {rank} (local rank {f.local_rank}) failed: {how(f)}" for rank, f in ranked]
    hung = sorted(set(range(nproc or 0)) - set(exc.failures))
    if hung and all(any(w in how(f) for w in TIMED_OUT) for f in exc.failures.values()):
        names = ", ".join(map(str, hung))
        return (
            f"rank{'s' * (len(hung) > 1)} {names} hung: never reached the collective the others waited "
            f"for until it timed out; " + "; ".join(parts) + f"; rank{'s' * (len(hung) > 1)} {names} stopped"
        )
    return "; ".join(parts) + "; the other ranks were stopped"
