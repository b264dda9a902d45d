"""The `ddp` command: one data-parallel training run, as a torchrun rank or through torch's
launcher API on one machine.

    torchrun --nproc-per-node 2 -m mnist_models ddp --model mlp --epochs 1 --out /tmp/x
    torchrun --nnodes 2 --node-rank R --nproc-per-node 1 --rdzv-endpoint HOST:PORT \\
        -m mnist_models ddp --model cnn --epochs 1 --out runs/ddp   # on each of two nodes
    python -m mnist_models ddp --nproc 2 --model mlp --epochs 1 --out /tmp/x

Rank 0 prints an epoch's line, evaluates, and writes history.json and model.pt at the end;
a rank that fails ends the run (torch's agent stops the others) and nothing is written.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import TrainConfig
from .files import RunError, UsageError, json_bytes, torch_bytes, write_files


@dataclass(frozen=True)
class Job:
    """What every rank is told: the training, where rank 0 writes, and how to run."""

    cfg: TrainConfig  # the global batch in cfg.batch_size
    out: str  # the folder for history.json and model.pt
    kind: str  # cpu | cuda
    backend: str  # gloo | nccl
    threads: int  # torch threads per rank


def run_rank(job: Job) -> list[dict] | None:
    """This process's rank of the job: train, and on rank 0 write; rank 0's history."""
    import torch.distributed as dist

    from .distributed import ShardedLoader, ddp_trainer, per_rank, resident, start, timed_epoch
    from .timing import tune_malloc
    tune_malloc()
    place, device = start(job.kind, job.threads, job.backend)
    try:
        cfg = per_rank(job.cfg, place.world)
        train, test = resident(job.cfg, device)
        batches = ShardedLoader(train, cfg.batch_size, place.rank, place.world, cfg.seed)
        trainer = ddp_trainer(cfg, len(batches), device)
        history = []
        while trainer.epochs < cfg.epochs:
            totals = timed_epoch(trainer, batches, device)
            record = {"epoch": trainer.epochs, "train_loss": totals["loss"], "train_accuracy": totals["accuracy"]}
            if place.rank == 0:
                from .data import ResidentLoader
                from .train import evaluate
                result = evaluate(trainer.model.module, ResidentLoader(test, cfg.eval_batch_size, shuffle=False),
                                  device, cfg.precision)
                record.update(test_loss=result["loss"], test_accuracy=result["accuracy"],
                              seconds=totals["seconds"], world_size=place.world)
                history.append(record)
                print(f"epoch {record['epoch']:>3}  train loss {record['train_loss']:.4f}  test acc "
                      f"{record['test_accuracy']:.2%}  {record['seconds']:.1f} s  ({place.world} ranks)", flush=True)
        if place.rank == 0:
            state = {k: v.detach().cpu() for k, v in trainer.model.module.state_dict().items()}
            write_files({Path(job.out) / "history.json": json_bytes(history),
                         Path(job.out) / "model.pt": torch_bytes({"config": asdict(job.cfg), "state_dict": state,
                                                                   "world_size": place.world})})
        dist.barrier()  # every rank is done before any leaves
        return history if place.rank == 0 else None
    finally:
        dist.destroy_process_group()


def free_port(port: int) -> int:
    """`port` if it can be bound on this machine (0: a free one); UsageError if it is in use."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise UsageError(f"port {port} is in use; pass another --port, or 0 for a free one") from None
        return s.getsockname()[1]


def check_job(job: Job, nproc: int) -> None:
    """UsageError for a job this machine cannot run: before any process starts."""
    import torch

    from .distributed import room
    if job.backend == "nccl" and not torch.cuda.is_available():
        raise UsageError("the nccl backend needs CUDA GPUs and torch finds none; use --backend gloo "
                         "(or leave it out: gloo on the cpu)")
    why = room(job.kind, nproc, job.threads)
    if why:
        raise UsageError(f"--nproc {nproc}: {why}; lower --nproc or --threads")


def launch(job: Job, nproc: int, port: int) -> list[dict]:
    """Start `nproc` ranks on this machine through torch's launcher API; rank 0's history.
    A failed rank raises RunError naming it (the others are stopped)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch
    for noisy in ("torch.distributed.elastic", "torch.multiprocessing"):  # the one line below says it
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"mnist-bench-{os.getpid()}",
                          rdzv_backend="c10d", rdzv_endpoint=f"127.0.0.1:{free_port(port)}", max_restarts=0,
                          monitor_interval=0.1)
    try:
        return elastic_launch(config, entrypoint=run_rank)(job)[0]
    except ChildFailedError as exc:
        raise RunError(describe(exc)) from None


def describe(exc) -> str:
    """One line for a failed group: which rank failed first, and how."""
    rank, failure = min(exc.failures.items(), key=lambda kv: kv[1].timestamp)
    message = failure.message.get("message") if isinstance(failure.message, dict) else failure.message
    how = message or (f"killed by signal {failure.signal_name()}" if failure.exitcode < 0
                      else f"exit code {failure.exitcode}")
    return f"rank {rank} (local rank {failure.local_rank}) failed: {how}; the other ranks were stopped"


def job_from(cfg: TrainConfig, out: Path, threads: int | None, backend: str | None, ranks: int) -> Job:
    """The job's device, backend and threads per rank, from the command line's choices."""
    import torch
    kind = "cuda" if cfg.device in ("cuda", "accel") or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    if cfg.device not in ("auto", "cpu", "cuda", "accel"):
        raise UsageError(f"data-parallel training runs on cpu (gloo) or cuda (nccl), not {cfg.device}")
    cores = os.cpu_count() or 1
    threads = threads or (torch.get_num_threads() if ranks == 0 else max(1, cores // ranks))
    return Job(cfg, str(out), kind, backend or {"cpu": "gloo", "cuda": "nccl"}[kind], threads)


def main(cfg: TrainConfig, out: Path, args) -> int:
    """The command (args: the command line's --threads, --backend, --nproc, --port): as a
    torchrun rank when launched so, else `--nproc` ranks through the launcher."""
    from .distributed import launched
    if launched():
        run_rank(job_from(cfg, out, args.threads, args.backend, ranks=0))
        return 0
    job = job_from(cfg, out, args.threads, args.backend, ranks=args.nproc)
    check_job(job, args.nproc)
    launch(job, args.nproc, args.port)
    print(f"wrote {out / 'history.json'} and {out / 'model.pt'} ({args.nproc} ranks)", file=sys.stdout)
    return 0
