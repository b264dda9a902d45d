"""What several subcommands share: the training options, their one check with --out, the
exit codes' help text, warnings. Nothing heavier than argparse is imported here."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..core.config import DEVICES, LOADERS, OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig
from ..core.registry import list_models
from ..files import check_writable
from ..parsing import positive, seed

EXIT_CODES = (
    "exit codes: 0 done (compare, ab: nothing regressed), 1 compare or ab found a slower case, "
    "2 bad input or usage, or a diverged run, 3 any other error (--debug: traceback), "
    "130 interrupted, 143 terminated (SIGTERM)"
)
ROOT_HELP = "MNIST root (default: $MNIST_ROOT, else ./datasets)"


def add_train_args(p: argparse.ArgumentParser, out_help: str) -> None:
    """train's and ddp's options: every TrainConfig field a user sets, --out and --force."""
    d = TrainConfig()
    p.add_argument("--model", choices=list_models(), default=d.model)
    p.add_argument("--epochs", type=positive("epochs"), default=d.epochs)
    p.add_argument("--batch-size", dest="batch_size", type=positive("batch size"), default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    p.add_argument(
        "--cycle-epochs",
        dest="cycle_epochs",
        type=float,
        help="onecycle: the epochs its lr rises and falls over, then holds (default: all)",
    )
    p.add_argument(
        "--label-smoothing",
        dest="label_smoothing",
        type=float,
        default=d.label_smoothing,
        help="the training loss's, from 0 (none) to below 1",
    )
    p.add_argument("--dropout", type=float, help="the CNN's dropout probability (default: the model's own)")
    p.add_argument("--seed", type=seed, default=d.seed)
    p.add_argument("--device", choices=DEVICES, default=d.device)
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision)
    p.add_argument("--loader", choices=LOADERS, default=d.loader)
    p.add_argument(
        "--cuda-graphs",
        dest="cuda_graphs",
        action="store_true",
        help="cuda only: replay one captured training step per batch",
    )
    p.add_argument("--train-samples", dest="train_samples", type=positive("train samples"))
    p.add_argument("--val-samples", dest="val_samples", type=int, default=d.val_samples)
    p.add_argument("--root", help=ROOT_HELP)
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--force", action="store_true", help="overwrite files already in --out")


def add_include_quick(p: argparse.ArgumentParser) -> None:
    """--include-quick, wherever load_results may leave a --quick file out and say to pass it."""
    p.add_argument(
        "--include-quick",
        dest="include_quick",
        action="store_true",
        help="use --quick runs beside full ones (left out by default; each case is still "
        "compared only with runs of the same workload)",
    )


def training(args: argparse.Namespace) -> tuple[TrainConfig, Path]:
    """train's and ddp's TrainConfig (checked as it is made) and their --out, checked before
    any work: a bad value or an unwritable folder is refused here."""
    cfg = TrainConfig(
        **{k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    )
    out = Path(args.out)
    check_writable(out, ["history.json", "model.pt"], args.force)
    return cfg, out


def command_line(args: argparse.Namespace) -> str:
    """The command as typed, to write beside what it made (quoted as a shell reads it)."""
    return " ".join(["python -m mnist_models", *map(shlex.quote, args.argv)])


def warn(lines: list[str]) -> None:
    for line in lines:
        print(f"mnist-bench: warning: {line}", file=sys.stderr)


def say(line: str) -> None:
    print(line, flush=True)
