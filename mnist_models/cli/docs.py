"""`docs`: the docs' generated blocks made again: README.md's leaderboard from results/*.json,
and results/FORMAT.md's field tables from the field spec; `--check` writes nothing and
exits 1 when a block is stale (CI runs it). No torch."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import EXIT_OK, EXIT_REGRESSION, UsageError
from ..files import write_files
from .common import EXIT_CODES, warn

DOCS = ("README.md", "results/FORMAT.md")  # the documents with generated blocks, from the checkout's root


def add(sub) -> None:
    d = sub.add_parser(
        "docs",
        help="README's leaderboard and FORMAT.md's field tables, made again",
        epilog=EXIT_CODES + "; docs --check: 1 when a generated block is stale",
    )
    d.add_argument("--root", default=".", help="the checkout's root, holding README.md and results/ (default .)")
    d.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each stale block")
    d.set_defaults(func=run)


def contents(root: Path) -> dict[str, str]:
    """Every generated block's text now."""
    from ..reporting.fields import field_table  # noqa: PLC0415 (cli: start-up)
    from ..reporting.report import leaderboard_md  # noqa: PLC0415 (cli: start-up)
    from ..reporting.results import load_results  # noqa: PLC0415 (cli: start-up)
    from ..reporting.score import scores  # noqa: PLC0415 (cli: start-up)

    paths = sorted((root / "results").glob("*.json"))
    results = load_results(paths)
    warn(results.problems + results.notes)
    board = leaderboard_md(scores(results.frame)) if len(results.frame) else "(no result file in results/)"
    return {"leaderboard": board, "fields": field_table()}


def run(args: argparse.Namespace) -> int:
    from ..reporting.docs import replaced, stale  # noqa: PLC0415 (cli: start-up)

    root = Path(args.root)
    docs = [root / d for d in DOCS]
    missing = [str(d) for d in docs if not d.is_file()]
    if missing:
        raise UsageError(f"{', '.join(missing)} not found; pass the checkout's root as --root")
    blocks = contents(root)
    if args.check:
        found = stale(docs, blocks)
        for line in found:
            print(f"stale: {line} (mnist-bench docs makes it again)")
        return EXIT_REGRESSION if found else EXIT_OK
    write_files({d: replaced(d, blocks).encode() for d in docs})
    for d in docs:
        print(f"wrote {d}")
    return EXIT_OK
