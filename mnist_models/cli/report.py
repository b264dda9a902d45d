"""`report`: result files -> report.md, results.csv and the figures. Never imports torch."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import EXIT_OK, UsageError
from ..files import one_writer
from .common import EXIT_CODES, add_include_quick, warn


def add(sub) -> None:
    r = sub.add_parser("report", help="result JSON files -> report.md, results.csv and plots", epilog=EXIT_CODES)
    r.add_argument("files", nargs="+", help="pytest-benchmark JSON files from pytest bench")
    r.add_argument("--out", required=True, help="folder for the report")
    r.add_argument("--force", action="store_true", help="replace a report already in --out")
    r.add_argument("--baseline", help="machine label the others are compared with (default: the first)")
    add_include_quick(r)
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..reporting.report import write_report  # noqa: PLC0415 (cli: start-up)
    from ..reporting.results import load_results  # noqa: PLC0415 (cli: start-up)

    results = load_results(args.files, include_quick=args.include_quick)
    warn(results.problems + results.notes)
    if results.frame.empty:
        raise UsageError("no usable result file among the inputs; pass JSON files from pytest bench")
    with one_writer(Path(args.out)):
        for path in write_report(results, Path(args.out), args.baseline, args.force):
            print(f"wrote {path}")
    return EXIT_OK
