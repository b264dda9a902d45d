"""`study`: the notebook's Q1-Q7 answered with figures and study.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ..files import check_writable, one_writer
from ..parsing import positive
from .common import EXIT_CODES, ROOT_HELP, command_line, say


def add(sub) -> None:
    s = sub.add_parser("study", help="answer the notebook's Q1-Q7 with figures and study.md", epilog=EXIT_CODES)
    s.add_argument("--epochs", type=positive("epochs"), default=10)
    s.add_argument("--train-samples", dest="train_samples", type=positive("train samples"))
    s.add_argument("--root", help=ROOT_HELP)
    s.add_argument("--out", required=True, help="folder for study.md and the figures")
    s.add_argument("--bench", nargs="+", metavar="FILE", help="result JSON to quote cuda times from")
    s.add_argument("--tensorboard", metavar="DIR", help="also log scalars and images for TensorBoard")
    s.add_argument("--force", action="store_true", help="overwrite files already in --out")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..study.questions import FILES, StudyConfig, StudyOptions, study_and_save  # noqa: PLC0415 (cli: start-up)

    cfg = StudyConfig(epochs=args.epochs, train_samples=args.train_samples, root=args.root)  # checked as made
    out = Path(args.out)
    if args.tensorboard:
        try:
            import tensorboard  # noqa: F401, PLC0415 (tensorboard: an optional extra, checked here)
        except ImportError:
            raise UsageError("--tensorboard needs the tensorboard package; pip install -e '.[tensorboard]'") from None
    with one_writer(out):
        check_writable(out, FILES, args.force)
        return study_and_save(
            StudyOptions(cfg, out, tuple(args.bench or ()), args.tensorboard, command_line(args)), say=say
        )
