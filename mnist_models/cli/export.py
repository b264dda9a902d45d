"""`export`: result files in github-action-benchmark's or Bencher's format. No torch."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import EXIT_OK, UsageError
from ..files import check_not_inputs, check_writable, write_files
from .common import EXIT_CODES, add_include_quick, warn


def add(sub) -> None:
    e = sub.add_parser("export", help="result files -> github-action-benchmark or Bencher JSON", epilog=EXIT_CODES)
    e.add_argument("files", nargs="+", help="pytest-benchmark JSON files from pytest bench")
    e.add_argument("--format", required=True, choices=["github-action-benchmark", "bencher"])
    e.add_argument("--out", required=True, help="the file to write")
    e.add_argument("--force", action="store_true", help="replace --out if it exists")
    add_include_quick(e)
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..reporting.export import export  # noqa: PLC0415 (cli: start-up)
    from ..reporting.results import load_results  # noqa: PLC0415 (cli: start-up)

    out = Path(args.out)
    check_not_inputs([out], args.files)
    check_writable(out.parent, [out.name], args.force)
    results = load_results(args.files, include_quick=args.include_quick)
    warn(results.problems + results.notes)
    if results.frame.empty:
        raise UsageError("no usable result file among the inputs; pass JSON files from pytest bench")
    write_files({out: export(results.frame, args.format)})
    print(f"wrote {out} ({len(results.frame)} cases, {args.format})")
    return EXIT_OK
