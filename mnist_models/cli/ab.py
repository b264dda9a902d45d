"""`ab`: two versions of the code timed round by round in one run, and their instructions
counted -> a verdict per case that says what it could not see; exit 1 when one regressed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import EXIT_OK, EXIT_REGRESSION, UsageError
from ..files import check_apart, check_writable, json_bytes, one_writer, write_files
from ..harness.ab import COUNTED, AbOptions, known_cases, plan, run_ab
from ..parsing import choices, label, positive, seconds, threshold, values_may_start_with_minus
from .common import EXIT_CODES, ROOT_HELP, warn

FILES = ["base.json", "new.json", "comparison.md"]


def add(sub) -> None:
    d, known = AbOptions("", ""), list(known_cases())
    a = sub.add_parser(
        "ab", help="time two versions of the code in paired rounds; exit 1 when one regressed", epilog=EXIT_CODES
    )
    a.add_argument(
        "base",
        help="the reference: a checkout (a folder holding mnist_models/) or an installed "
        "environment (a venv folder or its python)",
    )
    a.add_argument("new", help="the version to check, the same way")
    a.add_argument("--out", required=True, help=f"folder for {', '.join(FILES)}")
    a.add_argument("--json", help="also write each case's verdict, change, interval and detectable change here")
    a.add_argument(
        "--cases",
        type=choices("case", known),
        default=d.cases,
        help=f"comma-separated cases timed on the clock (default {','.join(d.cases)})",
    )
    a.add_argument(
        "--counted",
        type=choices("case", known),
        default=None,
        help=f"comma-separated cases counted in instructions, among those timed and run eager "
        f"(default: those of {','.join(COUNTED)} that are timed and run eager here)",
    )
    a.add_argument(
        "--pairs", type=positive("pairs"), default=d.pairs, help=f"rounds per side and case (default {d.pairs})"
    )
    a.add_argument(
        "--seconds",
        type=seconds("--seconds", 60),
        default=d.seconds,
        help=f"about how long a round lasts; its images are sized to it (default {d.seconds})",
    )
    a.add_argument(
        "--threads",
        type=positive("threads"),
        default=d.threads,
        help=f"torch threads on both sides (default {d.threads})",
    )
    a.add_argument(
        "--workers",
        type=positive("workers"),
        default=d.workers,
        help=f"processes per side, taking turns (default {d.workers})",
    )
    a.add_argument(
        "--threshold",
        type=threshold,
        default=d.threshold,
        help=f"clock: slower when the change is surely above this (default {d.threshold:.0%}%)",
    )
    a.add_argument(
        "--detect",
        type=threshold,
        default=d.detect,
        help=f"clock: the change a case must have been able to see, else it is undecided (default {d.detect:.0%}%)",
    )
    a.add_argument(
        "--instruction-threshold",
        dest="instruction_threshold",
        type=threshold,
        default=d.instruction_threshold,
        help=f"instructions per step: slower above this (default {d.instruction_threshold:.0%}%)",
    )
    a.add_argument(
        "--no-instructions",
        dest="instructions",
        action="store_false",
        help="the clock only, even where valgrind is installed",
    )
    a.add_argument("--format", choices=["text", "markdown"], default="text")
    a.add_argument(
        "--machine-label", dest="label", type=label, default="", help="label for this machine (default: hostname)"
    )
    a.add_argument("--root", help=ROOT_HELP)
    a.add_argument("--force", action="store_true", help="overwrite files already in --out and --json")
    values_may_start_with_minus(a)  # --threshold -2%: refused for what it is
    a.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    opts = AbOptions(**{k: getattr(args, k) for k in AbOptions.__dataclass_fields__ if k != "new"}, new=args.new)
    checked = plan(opts)  # every problem with the options in one line now, before --out is touched
    out, verdicts = Path(args.out), Path(args.json) if args.json else None
    check_apart(  # every output against the others and the sides, links resolved, before any round
        [(out, "--out", False), *((out / n, "--out", True) for n in FILES)]
        + ([(verdicts, "--json", True)] if verdicts is not None else []),
        inputs=[opts.base, opts.new, *(side.python for side in checked.sides if side.pythonpath is None)],
    )
    with one_writer(out):
        check_writable(out, FILES, args.force)
        if verdicts is not None:
            check_writable(verdicts.parent, [verdicts.name], args.force, option="--json")
        return _compare(checked, out, verdicts, args.format)


def _keep(docs: list[dict] | None, out: Path) -> str:
    """A stopped run's finished rounds (each side's result document, marked partial) into
    OUT/partial/; the line that says where, or that nothing was kept."""
    if not docs:
        return "no pair of rounds had finished; nothing kept"
    folder = out / "partial"
    try:
        write_files({folder / "base.json": json_bytes(docs[0]), folder / "new.json": json_bytes(docs[1])})
    except (OSError, UsageError) as exc:
        return f"the rounds that finished could not be kept ({exc})"
    pairs, cases = docs[0]["mnist_bench"]["rounds"], len(docs[0]["benchmarks"])
    return (
        f"the rounds that finished ({pairs} pairs of {cases} case{'s' if cases > 1 else ''}) are in "
        f"{folder}/base.json and new.json, marked partial"
    )


def _compare(checked, out: Path, verdicts: Path | None, fmt: str) -> int:
    from ..reporting.paired import render, verdict_records  # noqa: PLC0415 (cli: start-up)

    opts = checked.opts
    progress = (
        (lambda line: print(f"mnist-bench ab: {line}", file=sys.stderr, flush=True))
        if sys.stderr.isatty()
        else (lambda line: None)
    )
    try:
        result = run_ab(checked, progress)
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: what finished is kept, and where said
        raise type(stop)(_keep(getattr(stop, "docs", None), out)) from None
    title = f"mnist-bench ab: {opts.base} (base) against {opts.new} (new)"
    text = render(result.table, fmt, title=title)
    notes = "".join(f"\n- {n}" for n in result.notes)
    files = {
        out / "base.json": json_bytes(result.docs[0]),
        out / "new.json": json_bytes(result.docs[1]),
        out / "comparison.md": (
            render(result.table, "markdown", title=title) + (f"\nNotes:\n{notes}\n" if notes else "")
        ).encode(),
    }
    if verdicts is not None:
        files[verdicts] = json_bytes(
            {
                "threshold": opts.threshold,
                "detect": opts.detect,
                "instruction_threshold": opts.instruction_threshold,
                "busy": result.busy,
                "notes": result.notes,
                "cases": verdict_records(result.table),
            }
        )
    write_files(files)
    warn(result.notes)
    print(text, end="")
    return EXIT_REGRESSION if (result.table["verdict"] == "slower").any() else EXIT_OK
