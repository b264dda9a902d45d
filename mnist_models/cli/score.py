"""`score`: each machine's score and 95% interval against its workload version's reference
machine, and the hardware classes with the spread between their VMs. No torch."""

from __future__ import annotations

import argparse

from ..errors import EXIT_OK, UsageError
from .common import EXIT_CODES, add_include_quick, warn


def add(sub) -> None:
    s = sub.add_parser(
        "score",
        help="a score per machine and device, with its 95%% interval (reference = 1000)",
        epilog=EXIT_CODES,
    )
    s.add_argument("files", nargs="+", help="pytest-benchmark JSON files from pytest bench")
    add_include_quick(s)
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..reporting.classes import class_verdicts, classes  # noqa: PLC0415 (cli: start-up)
    from ..reporting.results import load_results  # noqa: PLC0415 (cli: start-up)
    from ..reporting.score import leaderboard, reference_path, scores  # noqa: PLC0415 (cli: start-up)

    results = load_results(args.files, include_quick=args.include_quick)
    warn(results.problems + results.notes)
    if results.frame.empty:
        raise UsageError("no usable result file among the inputs; pass JSON files from pytest bench")
    table = scores(results.frame)
    if not table["ranked"].any():
        why = "; ".join(dict.fromkeys(n for n in table["note"] if n)) or (
            "no file holds a case of the reference set (a full run's resident train, infer or tta cases)"
        )
        raise UsageError(f"nothing to score: {why}; run bash bench.sh or mnist-bench run --score without --quick")
    for version in dict.fromkeys(table["version"]):
        ref = reference_path(version)
        print(
            f"workload v{version}: reference {ref.stem if ref else '(none)'} = 1000; 95% intervals that cover "
            "the machine's drift during the run"
        )
    print()
    print(leaderboard(table).to_markdown(index=False, tablefmt="simple"))
    found = classes(table, results.machines)
    if len(found):
        print("\nhardware classes (every ranked file of a class; its spread is between its VMs):\n")
        print(class_verdicts(found).to_markdown(index=False, tablefmt="simple"))
    for _, r in table.iterrows():
        for why in r["left_out"] if isinstance(r["left_out"], list) else []:
            print(f"left out: {r['machine']} {r['device']}: {why}")
        for note in r["notes"] if isinstance(r["notes"], list) else [r["note"]]:
            print(f"note: {r['machine']} {r['device']}: {note}")
    return EXIT_OK
