"""`ddp`: data-parallel training, under torchrun or as --nproc ranks on this machine."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from ..errors import UsageError
from ..files import one_writer
from ..parsing import port, positive
from .common import EXIT_CODES, add_train_args, say, training


def add(sub) -> None:
    p = sub.add_parser(
        "ddp", help="data-parallel training (DDP): under torchrun, or --nproc ranks here", epilog=EXIT_CODES
    )
    add_train_args(p, "folder for history.json and model.pt (written by rank 0)")
    p.add_argument(
        "--nproc",
        type=positive("--nproc"),
        default=1,
        help="ranks to start on this machine through torch's launcher (not under torchrun)",
    )
    p.add_argument(
        "--threads",
        type=positive("--threads"),
        help="torch threads per rank (default: the cores split among the ranks; under torchrun, OMP_NUM_THREADS)",
    )
    p.add_argument("--backend", choices=["gloo", "nccl"], help="default gloo on the cpu, nccl on cuda")
    p.add_argument("--port", type=port, default=0, help="the rendezvous port for --nproc (default: a free one)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.cuda_graphs:
        raise UsageError(
            "--cuda-graphs does not combine with ddp: a captured step cannot hold "
            "DistributedDataParallel's all-reduce here; drop --cuda-graphs"
        )
    from ..distributed.training import launched, place_problem  # noqa: PLC0415 (cli: start-up)

    why = place_problem(args.nproc)
    if why:
        raise UsageError(why)
    # one run at a time per --out; under torchrun every rank runs this, and rank 0 alone writes
    with contextlib.nullcontext() if launched() else one_writer(Path(args.out)):
        cfg, out = training(args)
        from ..distributed.job import DdpOptions, run_ddp  # noqa: PLC0415 (cli: start-up)

        return run_ddp(DdpOptions(cfg, out, args.nproc, args.threads, args.backend, args.port), say=say)
