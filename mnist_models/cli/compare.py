"""`compare`: two result files (or folders of runs) -> a verdict per case; exit 1 when one
regressed. Never imports torch."""
from __future__ import annotations

import argparse

from ..errors import EXIT_OK, EXIT_REGRESSION
from ..parsing import threshold
from .common import EXIT_CODES, warn


def add(sub) -> None:
    c = sub.add_parser("compare", help="compare two result files; exit 1 when a case regressed", epilog=EXIT_CODES)
    c.add_argument("base", help="the reference result JSON (e.g. main's), or a folder of runs to pool")
    c.add_argument("new", help="the result JSON to check, or a folder of runs to pool")
    c.add_argument("--threshold", type=threshold, default=0.10,
                   help="slowdown that counts, as 10%% or 0.1 (default 10%%)")
    c.add_argument("--format", choices=["text", "markdown"], default="text")
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..reporting import compare as judge
    base, new = (judge.load_side(side, lambda line: warn([line])) for side in (args.base, args.new))
    table = judge.compare(base, new, threshold=args.threshold)
    print(judge.render_comparison(table, args.format), end="")
    return EXIT_REGRESSION if (table["verdict"] == "slower").any() else EXIT_OK
