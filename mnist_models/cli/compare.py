"""`compare`: two result files (or folders of runs) -> a verdict per operation and per case;
exit 1 when one regressed. Never imports torch."""

from __future__ import annotations

import argparse

from ..errors import EXIT_OK, EXIT_REGRESSION
from ..parsing import threshold, values_may_start_with_minus
from .common import EXIT_CODES, warn


def add(sub) -> None:
    c = sub.add_parser("compare", help="compare two result files; exit 1 when a case regressed", epilog=EXIT_CODES)
    c.add_argument("base", help="the reference result JSON (e.g. main's), or a folder of runs to pool")
    c.add_argument("new", help="the result JSON to check, or a folder of runs to pool")
    c.add_argument(
        "--threshold", type=threshold, default=0.10, help="slowdown that counts, as 10%% or 0.1 (default 10%%)"
    )
    c.add_argument(
        "--instruction-threshold",
        dest="instruction_threshold",
        type=threshold,
        default=0.01,
        help="instructions per step (files from mnist-bench ab): slower above this (default 1%%)",
    )
    c.add_argument(
        "--fail-across-machines",
        dest="across",
        action="store_true",
        help="exit 1 on a slower case even when the files come from different machines "
        "(by default that is the hardware's difference, reported, exit 0)",
    )
    c.add_argument("--format", choices=["text", "markdown"], default="text")
    values_may_start_with_minus(c)  # --threshold -2%: refused for what it is
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..reporting import compare as judge  # noqa: PLC0415 (cli: start-up)

    base, new = (judge.load_side(side, lambda line: warn([line])) for side in (args.base, args.new))
    hardware = judge.hardware_difference(base, new)
    table = judge.compare(base, new, threshold=args.threshold, instruction_threshold=args.instruction_threshold)
    summary = judge.overall(base, new, table, args.threshold)
    _, floor_note = judge.drift_floor(base, new)
    if hardware:
        print(
            f"{'> **' if args.format == 'markdown' else ''}{hardware}"
            f"{'; exit 1 only with --fail-across-machines' if not args.across else ''}."
            f"{'**' if args.format == 'markdown' else ''}\n"
        )
    print(judge.render_comparison(table, args.format, summary, floor_note), end="")
    busy = judge.busy_sides(base, new)
    if busy:
        warn([f"not judged: {line}; a change on a loaded machine is not the code's" for line in busy])
    undecided = int((table["verdict"] == "undecided").sum())
    if undecided:
        warn(
            [
                f"{undecided} case{'s' * (undecided > 1)} undecided: the rounds could not have detected a "
                f"{args.threshold:.0%} change (see the detectable column); run more rounds (--rounds) to decide"
            ]
        )
    slower = (table["verdict"] == "slower").any() or (summary["verdict"] == "slower").any()
    regressed = slower and (args.across or not hardware)
    return EXIT_REGRESSION if regressed else EXIT_OK
