"""`history`: step changes across commits, in result files of one machine label. No torch."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import EXIT_OK, UsageError
from .common import EXIT_CODES, add_include_quick, warn


def add(sub) -> None:
    h = sub.add_parser("history", help="step changes across commits in one machine's result files", epilog=EXIT_CODES)
    h.add_argument("folder", help="a folder of result JSON files (several commits of a machine label)")
    add_include_quick(h)
    h.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..reporting.history import render_steps, steps, undecided  # noqa: PLC0415 (cli: start-up)
    from ..reporting.results import load_results  # noqa: PLC0415 (cli: start-up)

    folder = Path(args.folder)
    paths = sorted(folder.rglob("*.json")) if folder.is_dir() else []
    if not paths:
        raise UsageError(f"{folder}: not a folder of result JSON files")
    results = load_results(paths, include_quick=args.include_quick)
    warn(results.problems + results.notes)
    if results.frame.empty:
        raise UsageError(
            f"{folder}: no usable result file among its {len(paths)} JSON files; "
            "pass a folder of files from pytest bench --benchmark-json"
        )
    frame = results.frame
    print(render_steps(steps(frame), frame, undecided(frame)), end="")
    return EXIT_OK
