"""`score`: each machine's score and 95% interval against the reference machine. No torch."""

from __future__ import annotations

import argparse

from ..errors import EXIT_OK, UsageError
from .common import EXIT_CODES, add_include_quick, warn


def add(sub) -> None:
    s = sub.add_parser(
        "score", help="a score per machine and device, with its 95%% interval (reference = 1000)", epilog=EXIT_CODES
    )
    s.add_argument("files", nargs="+", help="pytest-benchmark JSON files from pytest bench")
    add_include_quick(s)
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..reporting.results import load_results
    from ..reporting.score import REFERENCE, leaderboard, scores

    results = load_results(args.files, include_quick=args.include_quick)
    warn(results.problems + results.notes)
    if results.frame.empty:
        raise UsageError("no usable result file among the inputs; pass JSON files from pytest bench")
    table = scores(results.frame)
    if table.empty:
        raise UsageError(
            "no file holds a case of the reference set (a full run's resident train, infer or "
            "tta cases); run bash bench.sh without --quick"
        )
    print(f"reference: {REFERENCE.stem} = 1000; 95% intervals from each case's rounds\n")
    print(leaderboard(table).to_markdown(index=False, tablefmt="simple"))
    for _, r in table.iterrows():
        for why in r["left_out"]:
            print(f"left out: {r['machine']} {r['device']}: {why}")
        for note in r["notes"]:
            print(f"note: {r['machine']} {r['device']}: {note}")
    return EXIT_OK
