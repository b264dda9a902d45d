"""`run`: the main job, as `bash bench.sh` runs it: the benchmark matrix into
results/LABEL.json (runs/quick/ with --quick), then the report. Extra options go to pytest."""

from __future__ import annotations

import argparse
import os

from .common import EXIT_CODES, say


def add(sub) -> None:
    r = sub.add_parser(
        "run",
        help="the main job: the benchmark matrix -> results/LABEL.json, then the report",
        epilog=EXIT_CODES,
        description="mnist-bench run [LABEL] [--force] [pytest options...]: "
        "LABEL defaults to the hostname; --quick, --devices, --models, --batch-sizes, --precisions, "
        "--rounds, -k and other pytest options go to the cases' run.",
    )
    r.add_argument("label", nargs="?", help="names results/LABEL.json (default: the hostname)")
    r.add_argument("--force", action="store_true", help="replace an existing result file (bash bench.sh: FORCE=1)")
    r.set_defaults(func=run)


def split(argv: list[str]) -> argparse.Namespace:
    """run's own arguments apart from pytest's: LABEL first if it is not an option, --force anywhere."""
    rest = list(argv)
    if rest and rest[0].startswith("--label="):  # bash bench.sh's first argument, whatever it looks like
        label = rest.pop(0).removeprefix("--label=")
    else:
        label = rest.pop(0) if rest and not rest[0].startswith("-") else None
    force = "--force" in rest or bool(os.environ.get("FORCE"))
    return argparse.Namespace(
        label=label,
        force=force,
        pytest_args=tuple(a for a in rest if a != "--force"),
        func=run,
        debug=False,
        argv=["run", *argv],
    )


def run(args: argparse.Namespace) -> int:
    from ..harness.main_job import MainJob, main_job

    job = MainJob(
        pytest_args=tuple(getattr(args, "pytest_args", ())),
        force=args.force,
        **({"label": args.label} if args.label is not None else {}),
    )
    return main_job(job, say=say)
