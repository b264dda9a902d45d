"""`run`: the main job, as `bash bench.sh` runs it: the benchmark matrix into
results/LABEL.json (runs/quick/ with --quick), then the report. Extra options go to pytest."""

from __future__ import annotations

import argparse
import os

from ..errors import EXIT_OK
from ..harness.cases import BENCH_DEVICES
from ..parsing import choices, seconds, threshold
from .common import EXIT_CODES, ROOT_HELP, say

# pytest's options that take the next word as their value (or may: --benchmark-warmup [KIND]):
# pytest's own, the suite's (harness/plugin.py) and pytest-benchmark's. A bare word after one
# of them is its value; any other bare word is LABEL.
VALUED = frozenset(
    "-k -m -p -c -o -r -W --maxfail --pdbcls --capture --cache-show --lfnf --last-failed-no-failures "
    "--durations --durations-min --verbosity --tb --show-capture --color --code-highlight --pastebin "
    "--junit-xml --junitxml --junit-prefix --junitprefix --pythonwarnings --max-warnings --ignore "
    "--ignore-glob --deselect --confcutdir --import-mode --doctest-report --doctest-glob --config-file "
    "--rootdir --basetemp --debug --override-ini --assert --log-level --log-format --log-date-format "
    "--log-cli-level --log-cli-format --log-cli-date-format --log-file --log-file-mode --log-file-level "
    "--log-file-format --log-file-date-format --log-auto-indent --log-disable "
    "--devices --models --batch-sizes --precisions --rounds --world-sizes --machine-label "
    "--benchmark-min-time --benchmark-max-time --benchmark-min-rounds --benchmark-precision "
    "--benchmark-confidence --benchmark-timer --benchmark-calibration-precision --benchmark-warmup "
    "--benchmark-warmup-iterations --benchmark-save --benchmark-json --benchmark-compare "
    "--benchmark-compare-fail --benchmark-cprofile --benchmark-cprofile-loops --benchmark-cprofile-top "
    "--benchmark-cprofile-dump --benchmark-storage --benchmark-netrc --benchmark-sort --benchmark-group-by "
    "--benchmark-columns --benchmark-name --benchmark-time-unit --benchmark-histogram".split()
)


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
    r.add_argument(
        "--score",
        action="store_true",
        help="just the score's cases, in interleaved passes, until "
        "the score's 95%% interval is +-3%% or the budget ends -> results/LABEL.json",
    )
    r.add_argument("--budget", metavar="SECONDS", help="with --score: the whole run's time (default 180)")
    r.set_defaults(func=run)


def score_parser() -> argparse.ArgumentParser:
    """`run --score`'s own options (no pytest behind it)."""
    from ..harness.score_run import BUDGET, GOAL  # noqa: PLC0415 (cli: start-up)

    p = argparse.ArgumentParser(prog="mnist-bench run --score", epilog=EXIT_CODES)
    p.add_argument("label", nargs="?", help="names results/LABEL.json (default: the hostname)")
    p.add_argument("--score", action="store_true", required=True)
    p.add_argument(
        "--budget",
        type=seconds("--budget", 3600),
        default=BUDGET,
        help=f"seconds the whole run may take (default {BUDGET:.0f})",
    )
    p.add_argument(
        "--goal",
        type=threshold,
        default=GOAL,
        help=f"stop adding passes once the interval's half-width is at most this (default {GOAL * 100:.0f}%%)",
    )
    p.add_argument("--devices", type=choices("device", BENCH_DEVICES), default=("cpu", "accel"))
    p.add_argument("--root", help=ROOT_HELP)
    p.add_argument("--force", action="store_true", help="replace an existing result file")
    return p


def run_score(args: argparse.Namespace) -> int:
    import psutil  # noqa: PLC0415 (cli: start-up)

    from ..harness.score_run import ScoreRun, score_run  # noqa: PLC0415 (cli: start-up)

    run = ScoreRun(
        started=psutil.Process().create_time(),  # the budget counts python's and torch's start-up
        budget=args.budget,
        goal=args.goal,
        root=args.root,
        force=args.force or bool(os.environ.get("FORCE")),
        devices=args.devices,
        **({"label": args.label} if args.label is not None else {}),
    )
    score_run(run, say=say)
    return EXIT_OK


def split(argv: list[str]) -> argparse.Namespace:
    """run's own arguments apart from pytest's: LABEL wherever it stands among them (the bare
    word that is no option's value), --force anywhere; `--score` has options of its own."""
    if "--score" in argv:  # its own options, no pytest
        args = score_parser().parse_args([a.removeprefix("--label=") for a in argv])
        return argparse.Namespace(**vars(args), func=run_score, debug=False, argv=["run", *argv])
    rest = list(argv)
    label: str | None
    if rest and rest[0].startswith("--label="):  # bash bench.sh's first argument, whatever it looks like
        label = rest.pop(0).removeprefix("--label=")
    else:
        at = _label_at(rest)
        label = rest.pop(at) if at is not None else None
    force = "--force" in rest or bool(os.environ.get("FORCE"))
    return argparse.Namespace(
        label=label,
        force=force,
        pytest_args=tuple(a for a in rest if a != "--force"),
        func=run,
        debug=False,
        argv=["run", *argv],
    )


def _label_at(args: list[str]) -> int | None:
    """Where LABEL stands: the first word that is neither an option nor the value of one that
    takes the next word (VALUED); None before `--` or where there is none."""
    value = False
    for i, arg in enumerate(args):
        if arg == "--":
            return None
        if value:
            value = False
        elif arg.startswith("-") and arg != "-":
            value = arg in VALUED  # --rounds=3 and -kEXPR are one word each
        else:
            return i
    return None


def run(args: argparse.Namespace) -> int:
    from ..harness.main_job import MainJob, main_job  # noqa: PLC0415 (cli: start-up)

    job = MainJob(
        pytest_args=tuple(getattr(args, "pytest_args", ())),
        force=args.force,
        **({"label": args.label} if args.label is not None else {}),
    )
    return main_job(job, say=say)
