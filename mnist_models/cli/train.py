"""`train`: one model trained, history.json and model.pt written together."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..files import one_writer
from .common import EXIT_CODES, add_train_args, say, training


def add(sub) -> None:
    p = sub.add_parser("train", help="train one model, write history.json and model.pt", epilog=EXIT_CODES)
    add_train_args(p, "folder for history.json and model.pt")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with one_writer(Path(args.out)):  # what --out holds is checked with the lock held
        cfg, out = training(args)
        from ..core.save import train_and_save  # noqa: PLC0415 (cli: start-up)

        return train_and_save(cfg, out, progress=sys.stderr.isatty(), say=say)
