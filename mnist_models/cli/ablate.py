"""`ablate`: training variants timed side by side in interleaved rounds -> ablation.json, fast.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..files import check_writable, one_writer
from ..harness.ablation import COMPARISONS
from ..harness.cases import BenchOptions
from ..parsing import phrases, positive
from .common import EXIT_CODES, ROOT_HELP, command_line, say


def add(sub) -> None:
    a = sub.add_parser("ablate", help="time training variants side by side, interleaved", epilog=EXIT_CODES)
    a.add_argument("--out", required=True, help="folder for ablation.json and fast.md")
    a.add_argument("--rounds", type=positive("rounds"), default=5, help="interleaved rounds per variant (default 5)")
    a.add_argument("--quick", action="store_true", help="4,096 training images")
    a.add_argument("--bench", nargs="+", metavar="FILE", help="benchmark JSON for the tta and overhead targets")
    a.add_argument("--machine-label", dest="machine_label")
    a.add_argument("--root", help=ROOT_HELP)
    a.add_argument("--force", action="store_true", help="overwrite files already in --out")
    a.add_argument(
        "--comparisons",
        nargs="+",
        metavar="NAME",
        action=phrases("comparison", [c.name for c in COMPARISONS]),
        help="run only these comparisons (default: all): " + "; ".join(c.name for c in COMPARISONS),
    )
    a.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    with one_writer(out):
        check_writable(out, ["ablation.json", "fast.md"], args.force)
        from ..harness.ablation_report import AblateOptions, ablate_and_save  # noqa: PLC0415 (cli: start-up)

        bench = BenchOptions(quick=args.quick, label=args.machine_label or BenchOptions().label, root=args.root)
        return ablate_and_save(
            AblateOptions(
                out, args.rounds, tuple(args.bench or ()), bench, command_line(args), tuple(args.comparisons or ())
            ),
            say=say,
        )
