"""Command line: python -m mnist_models COMMAND ..., or mnist-bench COMMAND ...

    python -m mnist_models models
    python -m mnist_models train --model cnn --epochs 10 --out runs/cnn

One module per subcommand: each parses its arguments into the package's own typed options
and calls the layer below. Nothing heavier than argparse is imported before the arguments
are parsed, and `report`, `compare`, `--help` and `--version` never import torch.

Exit codes: 0 done (compare, ab: nothing regressed); 1 compare or ab found a slower case; 2 bad
input or usage (one line naming it and the fix), or training that diverged; 3 anything
else, e.g. a full disk or a bug (one line; --debug shows the traceback); 130 interrupted (Ctrl-C);
143 terminated (SIGTERM, as CI cancels a job), finished work kept as for Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from .. import __version__
from ..errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    RunError,
    Terminated,
    UsageError,
    sigterm_as_interrupt,
)
from . import ab, ablate, compare, ddp, docs, export, history, models, profile, report, run, score, study, train
from .common import EXIT_CODES

COMMANDS = (
    run,
    models,
    train,
    ddp,
    report,
    score,
    compare,
    ab,
    history,
    export,
    docs,
    study,
    ablate,
    profile,
)  # in --help's order


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mnist-bench", description=__doc__.split("\n")[0], epilog=EXIT_CODES)
    p.add_argument("--version", action="version", version=__version__)
    p.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = argv[:1] == ["--debug"]
    if argv[debug : debug + 1] == ["run"] and not {"-h", "--help"} & set(argv):  # pytest's options pass through
        args = run.split(argv[debug + 1 :])
        args.debug = debug
    else:
        args = p.parse_args(argv)
        args.argv = argv  # to write the command beside its output
    sigterm_as_interrupt()  # CI cancels with SIGTERM: finished work is kept as for Ctrl-C
    try:
        return args.func(args)
    except Terminated as exc:
        print(f"{p.prog}: terminated (SIGTERM){f'; {exc}' if str(exc) else ''}", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt as exc:
        print(f"{p.prog}: interrupted{f'; {exc}' if str(exc) else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:  # and ResultError, DatasetError, a bad config: named by the raiser
        if args.debug:
            traceback.print_exc()  # and the same exit code: never 1, which reads as "regressed"
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunError as exc:
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
            return EXIT_ERROR
        print(
            f"{p.prog}: error: {type(exc).__name__}: {exc} (an unexpected error; --debug shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR
