"""Command line: python -m mnist_models {models,train,ddp,report,compare,study,ablate,profile} ...

    python -m mnist_models models
    python -m mnist_models train --model cnn --epochs 10 --out runs/cnn

Each subcommand turns its arguments into the package's own types and calls it. Nothing
heavier than argparse is imported before the arguments are parsed, and `report`,
`compare`, `--help` and `--version` never import torch.

Exit codes: 0 done (compare: nothing regressed); 1 compare found a slower case; 2 bad
input or usage (one line naming it and the fix), or training that diverged; 3 anything
else, e.g. a full disk or a bug (one line; --debug shows the traceback); 130 interrupted.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from . import __version__
from .config import DEVICES, LOADERS, MODELS, OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig
from .files import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, RunError, UsageError
EXIT_CODES = ("exit codes: 0 done (compare: nothing regressed), 1 compare found a slower case, "
              "2 bad input or usage, or a diverged run, 3 any other error (--debug: traceback), "
              "130 interrupted")
ROOT_HELP = "MNIST root (default: $MNIST_ROOT, else ./datasets)"


def _models(args: argparse.Namespace) -> int:
    from .models import create_model, list_models, summarize
    for name in list_models():
        rows = summarize(create_model(name))
        print(f"{name}: {sum(r.params for r in rows):,} parameters, "
              f"{sum(r.macs for r in rows):,} MACs per image")
        print(f"  {'layer':<10}{'kind':<10}{'output':<16}{'params':>10}{'MACs':>12}")
        for r in rows:
            shape = "x".join(map(str, r.output_shape))
            print(f"  {r.name:<10}{r.kind:<10}{shape:<16}{r.params:>10,}{r.macs:>12,}")
    return EXIT_OK


def _checked_run(args: argparse.Namespace) -> tuple[TrainConfig, Path]:
    """train's and ddp's TrainConfig from their arguments, and their --out, both checked
    before any work: a bad value or an unwritable folder is refused here."""
    from .config import check_config
    from .files import check_writable
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__
                         and v is not None})
    check_config(cfg)
    out = Path(args.out)
    check_writable(out, ["history.json", "model.pt"], args.force)
    return cfg, out


def _train(args: argparse.Namespace) -> int:
    from .commands import train_and_save
    cfg, out = _checked_run(args)
    return train_and_save(cfg, out, progress=sys.stderr.isatty())


def _ddp(args: argparse.Namespace) -> int:
    cfg, out = _checked_run(args)
    if args.cuda_graphs:
        raise UsageError("--cuda-graphs does not combine with ddp: a captured step cannot hold "
                         "DistributedDataParallel's all-reduce here; drop --cuda-graphs")
    from .ddp import main as ddp
    return ddp(cfg, out, args)


def _warn(lines: list[str]) -> None:
    for line in lines:
        print(f"mnist-bench: warning: {line}", file=sys.stderr)


def _report(args: argparse.Namespace) -> int:
    from .report import write_report
    from .results import load_results
    results = load_results(args.files, include_quick=args.include_quick)
    _warn(results.problems + results.notes)
    if results.frame.empty:
        raise UsageError("no usable result file among the inputs; pass JSON files from pytest bench")
    for path in write_report(results, Path(args.out), args.baseline, args.force):
        print(f"wrote {path}")
    return EXIT_OK


def _threshold(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"threshold must be a positive number, e.g. 10% or 0.1 (got {text!r})")
    return value


def _positive(what: str):
    def parse(text: str) -> int:
        if not text.strip().isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"{what} must be a positive whole number (got {text!r})")
        return int(text)
    return parse


def _compare(args: argparse.Namespace) -> int:
    from .compare import compare, render_comparison
    from .results import load_results
    frames = []
    for side in (args.base, args.new):
        paths = sorted(Path(side).glob("*.json")) if Path(side).is_dir() else [side]
        if not paths:
            raise UsageError(f"{side}: a folder without result JSON files")
        results = load_results(paths, include_quick=True)  # workloads are matched, not mixed
        if results.problems:  # a comparison with a case left out would mislead
            _warn(results.problems[1:])
            more = f" (and {len(results.problems) - 1} more above)" if len(results.problems) > 1 else ""
            raise UsageError(f"{results.problems[0]}{more}; fix or remove it to compare")
        frames.append(results.frame)
    table = compare(*frames, threshold=args.threshold)
    print(render_comparison(table, args.format), end="")
    return EXIT_REGRESSION if (table["verdict"] == "slower").any() else EXIT_OK


def _study(args: argparse.Namespace) -> int:
    from .files import check_writable
    from .study import FILES, StudyConfig, check_study
    out = Path(args.out)
    cfg = StudyConfig(epochs=args.epochs, train_samples=args.train_samples, root=args.root)
    check_study(cfg)
    check_writable(out, FILES, args.force)
    if args.tensorboard:
        _tensorboard_available()
    from .commands import study_and_save
    return study_and_save(cfg, out, args)


def _tensorboard_available() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UsageError("--tensorboard needs the tensorboard package; "
                         "pip install -e '.[tensorboard]'") from None


def _ablate(args: argparse.Namespace) -> int:
    from .files import check_writable
    from .commands import ablate_and_save
    out = Path(args.out)
    check_writable(out, ["ablation.json", "fast.md"], args.force)
    return ablate_and_save(args, out)


def _profile(args: argparse.Namespace) -> int:
    from .commands import profile
    return profile(args)


def _add_train_args(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--model", choices=MODELS, default=d.model)
    p.add_argument("--epochs", type=_positive("epochs"), default=d.epochs)
    p.add_argument("--batch-size", dest="batch_size", type=_positive("batch size"), default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", choices=DEVICES, default=d.device)
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision)
    p.add_argument("--loader", choices=LOADERS, default=d.loader)
    p.add_argument("--cuda-graphs", dest="cuda_graphs", action="store_true",
                   help="cuda only: replay one captured training step per batch")
    p.add_argument("--train-samples", dest="train_samples", type=_positive("train samples"))
    p.add_argument("--val-samples", dest="val_samples", type=int, default=d.val_samples)
    p.add_argument("--root", help=ROOT_HELP)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mnist-bench", description=__doc__.split("\n")[0], epilog=EXIT_CODES)
    p.add_argument("--version", action="version", version=__version__)
    p.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="per-layer shapes, parameters and MACs of every model"
                   ).set_defaults(func=_models)
    t = sub.add_parser("train", help="train one model, write history.json and model.pt", epilog=EXIT_CODES)
    _add_train_args(t)
    t.add_argument("--out", required=True, help="folder for history.json and model.pt")
    t.add_argument("--force", action="store_true", help="overwrite files already in --out")
    t.set_defaults(func=_train)
    d = sub.add_parser("ddp", help="data-parallel training (DDP): under torchrun, or --nproc ranks here",
                       epilog=EXIT_CODES)
    _add_train_args(d)
    d.add_argument("--out", required=True, help="folder for history.json and model.pt (written by rank 0)")
    d.add_argument("--force", action="store_true", help="overwrite files already in --out")
    d.add_argument("--nproc", type=_positive("--nproc"), default=1,
                   help="ranks to start on this machine through torch's launcher (not under torchrun)")
    d.add_argument("--threads", type=_positive("--threads"), help="torch threads per rank "
                   "(default: the cores split among the ranks; under torchrun, OMP_NUM_THREADS)")
    d.add_argument("--backend", choices=["gloo", "nccl"], help="default gloo on the cpu, nccl on cuda")
    d.add_argument("--port", type=int, default=0, help="the rendezvous port for --nproc (default: a free one)")
    d.set_defaults(func=_ddp)
    r = sub.add_parser("report", help="result JSON files -> report.md, results.csv and plots", epilog=EXIT_CODES)
    r.add_argument("files", nargs="+", help="pytest-benchmark JSON files from pytest bench")
    r.add_argument("--out", required=True, help="folder for the report")
    r.add_argument("--force", action="store_true", help="replace a report already in --out")
    r.add_argument("--baseline", help="machine label the others are compared with (default: the first)")
    r.add_argument("--include-quick", dest="include_quick", action="store_true",
                   help="report --quick runs beside full ones (left out by default; each case is "
                        "still compared only with runs of the same workload)")
    r.set_defaults(func=_report)
    c = sub.add_parser("compare", help="compare two result files; exit 1 when a case regressed", epilog=EXIT_CODES)
    c.add_argument("base", help="the reference result JSON (e.g. main's), or a folder of runs to pool")
    c.add_argument("new", help="the result JSON to check, or a folder of runs to pool")
    c.add_argument("--threshold", type=_threshold, default=0.10,
                   help="slowdown that counts, as 10%% or 0.1 (default 10%%)")
    c.add_argument("--format", choices=["text", "markdown"], default="text")
    c.set_defaults(func=_compare)
    s = sub.add_parser("study", help="answer the notebook's Q1-Q7 with figures and study.md", epilog=EXIT_CODES)
    s.add_argument("--epochs", type=_positive("epochs"), default=10)
    s.add_argument("--train-samples", dest="train_samples", type=_positive("train samples"))
    s.add_argument("--root", help=ROOT_HELP)
    s.add_argument("--out", required=True, help="folder for study.md and the figures")
    s.add_argument("--bench", nargs="+", metavar="FILE", help="result JSON to quote cuda times from")
    s.add_argument("--tensorboard", metavar="DIR", help="also log scalars and images for TensorBoard")
    s.add_argument("--force", action="store_true", help="overwrite files already in --out")
    s.set_defaults(func=_study)
    a = sub.add_parser("ablate", help="time training variants side by side, interleaved", epilog=EXIT_CODES)
    a.add_argument("--out", required=True, help="folder for ablation.json and fast.md")
    a.add_argument("--rounds", type=_positive("rounds"), default=5, help="interleaved rounds per variant (default 5)")
    a.add_argument("--quick", action="store_true", help="4,096 training images")
    a.add_argument("--bench", nargs="+", metavar="FILE", help="benchmark JSON for the tta and overhead targets")
    a.add_argument("--machine-label", dest="machine_label")
    a.add_argument("--root", help=ROOT_HELP)
    a.add_argument("--force", action="store_true", help="overwrite files already in --out")
    a.set_defaults(func=_ablate)
    pr = sub.add_parser("profile", help="torch.profiler table of a few training steps on the cpu", epilog=EXIT_CODES)
    pr.add_argument("--model", choices=MODELS, default="cnn")
    pr.add_argument("--batch-size", dest="batch_size", type=_positive("batch size"), default=256)
    pr.add_argument("--precision", choices=PRECISIONS, default="fp32")
    pr.add_argument("--variant", default="tuned", help="tuned, plain, or knobs joined by +")
    pr.add_argument("--steps", type=_positive("steps"), default=50)
    pr.add_argument("--root", help=ROOT_HELP)
    pr.set_defaults(func=_profile)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv  # to write the command beside its output
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{p.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:  # and ResultError, DatasetError, a bad config: named by the raiser
        if args.debug:
            raise
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunError as exc:
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        if args.debug:
            raise
        print(f"{p.prog}: error: {type(exc).__name__}: {exc} (an unexpected error; --debug shows "
              "the traceback)", file=sys.stderr)
        return EXIT_ERROR
