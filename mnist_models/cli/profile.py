"""`profile`: torch.profiler's table of a few training steps on the cpu."""

from __future__ import annotations

import argparse

from ..core.config import PRECISIONS
from ..core.registry import list_models
from ..parsing import positive
from .common import EXIT_CODES, ROOT_HELP, command_line, say


def add(sub) -> None:
    p = sub.add_parser("profile", help="torch.profiler table of a few training steps on the cpu", epilog=EXIT_CODES)
    p.add_argument("--model", choices=list_models(), default="cnn")
    p.add_argument("--batch-size", dest="batch_size", type=positive("batch size"), default=256)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--variant", default="tuned", help="tuned, plain, or knobs joined by +")
    p.add_argument("--steps", type=positive("steps"), default=50)
    p.add_argument("--root", help=ROOT_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..harness.profile import ProfileOptions, profile_case  # noqa: PLC0415 (cli: start-up)

    opts = ProfileOptions(
        args.model, args.batch_size, args.precision, args.variant, args.steps, args.root, command_line(args)
    )
    return profile_case(opts, say=say)
