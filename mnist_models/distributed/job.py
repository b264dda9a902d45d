"""The ddp command's work: one data-parallel training run, as a torchrun rank or through
torch's launcher API on one machine.

    torchrun --nproc-per-node 2 -m mnist_models ddp --model mlp --epochs 1 --out /tmp/x
    torchrun --nnodes 2 --node-rank R --nproc-per-node 1 --rdzv-endpoint HOST:PORT \\
        -m mnist_models ddp --model cnn --epochs 1 --out runs/ddp   # on each of two nodes
    python -m mnist_models ddp --nproc 2 --model mlp --epochs 1 --out /tmp/x

Rank 0 evaluates, writes history.json and model.pt after every epoch (all or nothing) and
prints its line; a rank that fails, Ctrl-C or SIGTERM ends the run (torch's agent stops the
others), and the epochs that finished are what --out holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..core.config import TrainConfig
from ..core.data import ResidentLoader
from ..core.save import save_run
from ..core.train import evaluate
from ..errors import EXIT_OK, UsageError
from .launch import launch, room
from .training import BACKENDS, join, launched, per_rank, timed_epoch


@dataclass(frozen=True)
class DdpOptions:
    """The ddp command's choices, beside the training itself."""

    cfg: TrainConfig  # the training; cfg.batch_size is the global batch
    out: Path  # the folder for history.json and model.pt (rank 0 writes)
    nproc: int = 1  # ranks to start here through the launcher (ignored under torchrun)
    threads: int | None = None  # torch threads per rank (None: the cores split among the ranks)
    backend: str | None = None  # gloo | nccl (None: gloo on the cpu, nccl on cuda)
    port: int = 0  # the rendezvous port for nproc ranks (0: a free one)


@dataclass(frozen=True)
class Job:
    """What every rank is told: the training, where rank 0 writes, and how to run."""

    cfg: TrainConfig  # the global batch in cfg.batch_size
    out: str  # the folder for history.json and model.pt
    kind: str  # cpu | cuda
    backend: str  # gloo | nccl
    threads: int  # torch threads per rank


def _epoch_line(r: dict) -> str:
    return (
        f"epoch {r['epoch']:>3}  train loss {r['train_loss']:.4f}  test acc {r['test_accuracy']:.2%}  "
        f"{r['seconds']:.1f} s  ({r['world_size']} ranks)"
    )


def run_rank(job: Job) -> list[dict] | None:
    """This process's rank of the job: train, and on rank 0 write; rank 0's history."""
    rank = join(job.cfg, job.kind, job.threads, job.backend)
    try:
        trainer, history = rank.trainer(), []
        model = cast(DistributedDataParallel, trainer.model).module  # the model ddp_trainer wrapped
        test = ResidentLoader(rank.test, rank.cfg.eval_batch_size, shuffle=False)
        while trainer.epochs < rank.cfg.epochs:
            totals = timed_epoch(trainer, rank.batches, rank.device)
            if rank.place.rank == 0:
                result = evaluate(model, test, rank.device, rank.cfg.precision)
                history.append(
                    {
                        "epoch": trainer.epochs,
                        "train_loss": totals["loss"],
                        "train_accuracy": totals["accuracy"],
                        "test_loss": result["loss"],
                        "test_accuracy": result["accuracy"],
                        "seconds": totals["seconds"],
                        "world_size": rank.place.world,
                    }
                )
                state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
                # kept before it is reported: a stopped run keeps its finished epochs, as train does
                save_run(job.cfg, Path(job.out), history, state, world_size=rank.place.world)
                print(_epoch_line(history[-1]), flush=True)
        dist.barrier()  # every rank is done before any leaves
        return history if rank.place.rank == 0 else None
    finally:
        dist.destroy_process_group()


def check_job(job: Job, nproc: int) -> None:
    """UsageError for a job this machine cannot run: before any process starts."""
    if job.backend == "nccl" and not torch.cuda.is_available():
        raise UsageError(
            "the nccl backend needs CUDA GPUs and torch finds none; use --backend gloo "
            "(or leave it out: gloo on the cpu)"
        )
    per_rank(job.cfg, nproc)  # the global batch splits evenly, or no rank starts
    why = room(job.kind, nproc, job.threads)
    if why:
        raise UsageError(f"--nproc {nproc}: {why}; lower --nproc or --threads")


def job_from(opts: DdpOptions, ranks: int) -> Job:
    """The job's device, backend and threads per rank, from the command's choices
    (ranks 0: under torchrun, whose OMP_NUM_THREADS torch already read)."""
    device = opts.cfg.device
    if device not in ("auto", "cpu", "cuda", "accel"):
        raise UsageError(f"data-parallel training runs on cpu (gloo) or cuda (nccl), not {device}")
    kind = "cuda" if device in ("cuda", "accel") or (device == "auto" and torch.cuda.is_available()) else "cpu"
    cores = os.cpu_count() or 1
    threads = opts.threads or (torch.get_num_threads() if ranks == 0 else max(1, cores // ranks))
    return Job(opts.cfg, str(opts.out), kind, opts.backend or BACKENDS[kind], threads)


def _kept(out: Path) -> str:
    try:
        done = len(json.loads((out / "history.json").read_text()))
    except (OSError, ValueError, TypeError):
        done = 0
    return (
        f"the ranks were stopped; {out} holds the {done} finished epoch{'s' * (done != 1)} (history.json, model.pt)"
        if done
        else "the ranks were stopped before the first epoch finished; nothing written"
    )


def run_ddp(opts: DdpOptions, say: Callable[[str], None] = print) -> int:
    """The command: as a torchrun rank when launched so, else `nproc` ranks through the
    launcher. Returns the exit code."""
    if launched():
        run_rank(job_from(opts, ranks=0))
        return EXIT_OK
    job = job_from(opts, ranks=opts.nproc)
    check_job(job, opts.nproc)
    try:
        launch(run_rank, (job,), opts.nproc, opts.port)
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM (Terminated): say what was kept
        raise type(stop)(_kept(opts.out)) from None
    say(f"wrote {opts.out / 'history.json'} and {opts.out / 'model.pt'} ({opts.nproc} ranks)")
    return EXIT_OK
