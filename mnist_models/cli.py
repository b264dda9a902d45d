"""Command line: python -m mnist_models {models,train,report,compare,study,ablate,profile} ...

    python -m mnist_models models
    python -m mnist_models train --model cnn --epochs 10 --out runs/cnn

Each subcommand turns its arguments into the package's own types and calls it;
errors in what the user asked for print one line and exit 2.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, fields
from pathlib import Path

from . import __version__
from .data import DatasetError
from .files import UsageError, check_writable, save_model, write_json, write_text
from .models import create_model, list_models, summarize
from .timing import tune_malloc
from .train import LOADERS, PRECISIONS, TrainConfig, fit


def _models(args: argparse.Namespace) -> int:
    for name in list_models():
        rows = summarize(create_model(name))
        print(f"{name}: {sum(r.params for r in rows):,} parameters, "
              f"{sum(r.macs for r in rows):,} MACs per image")
        print(f"  {'layer':<10}{'kind':<10}{'output':<16}{'params':>10}{'MACs':>12}")
        for r in rows:
            shape = "x".join(map(str, r.output_shape))
            print(f"  {r.name:<10}{r.kind:<10}{shape:<16}{r.params:>10,}{r.macs:>12,}")
    return 0


def _train_config(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names and v is not None})


def _train(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_writable(out, ["history.json", "model.pt"], args.force)
    cfg = _train_config(args)

    def report(r: dict) -> None:
        print(f"epoch {r['epoch']:>3}  train loss {r['train_loss']:.4f}  "
              f"test loss {r['test_loss']:.4f}  test acc {r['test_accuracy']:.2%}  "
              f"{r['seconds']:.1f} s", flush=True)

    model, history = fit(cfg, progress=sys.stderr.isatty(), on_epoch=report)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "history.json", history)
    save_model(out / "model.pt", {"config": asdict(cfg), "state_dict": model.state_dict()})
    print(f"wrote {out / 'history.json'} and {out / 'model.pt'}")
    return 0


def _warn(problems: list[str]) -> None:
    for problem in problems:
        print(f"mnist-bench: warning: {problem}", file=sys.stderr)


def _report(args: argparse.Namespace) -> int:
    from .report import load_results, write_report
    results = load_results(args.files, include_quick=args.include_quick)
    _warn(results.problems)
    if results.frame.empty:
        raise UsageError("no usable result file among the inputs; pass JSON files from pytest bench")
    for path in write_report(results, Path(args.out), args.baseline):
        print(f"wrote {path}")
    return 0


def _threshold(text: str) -> float:
    value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"threshold must be positive, e.g. 10% (got {text!r})")
    return value


def _compare(args: argparse.Namespace) -> int:
    from .compare import compare, render_comparison
    from .report import load_results
    frames = []
    for side in (args.base, args.new):
        paths = sorted(Path(side).glob("*.json")) if Path(side).is_dir() else [side]
        if not paths:
            raise UsageError(f"{side}: a folder without result JSON files")
        results = load_results(paths, include_quick=True)  # workloads are matched, not mixed
        if results.problems:  # a comparison with a file missing would mislead: stop at the first
            raise UsageError(results.problems[0])
        frames.append(results.frame)
    table = compare(*frames, threshold=args.threshold)
    print(render_comparison(table, args.format), end="")
    return 1 if (table["verdict"] == "slower").any() else 0


def _study(args: argparse.Namespace) -> int:
    from .report import cuda_epochs, load_results
    from .study import FILES, StudyConfig, run
    out = Path(args.out)
    check_writable(out, FILES, args.force)
    if args.tensorboard:
        _tensorboard_available()
    bench = None
    if args.bench:
        results = load_results(args.bench)
        _warn(results.problems)
        bench = cuda_epochs(results.frame)
    cfg = StudyConfig(epochs=args.epochs, train_samples=args.train_samples, root=args.root)

    def report(model: str, r: dict) -> None:
        print(f"{model} epoch {r['epoch']:>3}  train loss {r['train_loss']:.4f}  "
              f"test acc {r['test_accuracy']:.2%}  {r['seconds']:.1f} s", flush=True)

    run(cfg, out, bench, progress=sys.stderr.isatty(), on_epoch=report, tensorboard=args.tensorboard)
    print(f"wrote {out / 'study.md'} and its figures")
    return 0


def _tensorboard_available() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UsageError("--tensorboard needs the tensorboard package; "
                         "pip install -e '.[tensorboard]'") from None


def _ablate(args: argparse.Namespace) -> int:
    from .ablation import ablate
    from .bench import BenchOptions
    from .report import load_results, render_fast
    out = Path(args.out)
    check_writable(out, ["ablation.json", "fast.md"], args.force)
    bench = load_results(args.bench) if args.bench else None
    if bench is not None and bench.problems:
        raise UsageError("; ".join(bench.problems))
    opts = BenchOptions(quick=args.quick, label=args.machine_label or BenchOptions().label, root=args.root)

    def progress(comparison: str, rnd: int, variant: str) -> None:
        print(f"{comparison}: round {rnd}{' (cold)' if rnd == 0 else ''}: {variant}", flush=True)

    doc = ablate(opts, args.rounds, progress)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "ablation.json", doc)
    command = " ".join(["python -m mnist_models", *args.argv])
    write_text(out / "fast.md", render_fast(doc, bench, command))
    print(f"wrote {out / 'ablation.json'} and {out / 'fast.md'}")
    return 0


def _profile(args: argparse.Namespace) -> int:
    from .ablation import profile_table
    from .bench import BenchOptions, Case
    case = Case("train", args.model, "cpu", args.batch_size, args.precision, variant=args.variant)
    case.config()  # raises on unknown variant knobs
    table = profile_table(case, BenchOptions(root=args.root), args.steps)
    print(f"# python -m mnist_models {' '.join(args.argv)}\n# case {case.id}, "
          f"{args.steps} training steps, torch.profiler, sorted by self CPU time\n{table}")
    return 0


def _add_train_args(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--model", choices=list_models(), default=d.model)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", dest="batch_size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default=d.optimizer)
    p.add_argument("--schedule", choices=["constant", "onecycle"], default=d.schedule)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=d.device)
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision)
    p.add_argument("--loader", choices=LOADERS, default=d.loader)
    p.add_argument("--cuda-graphs", dest="cuda_graphs", action="store_true",
                   help="cuda only: replay one captured training step per batch")
    p.add_argument("--train-samples", dest="train_samples", type=int)
    p.add_argument("--val-samples", dest="val_samples", type=int, default=d.val_samples)
    p.add_argument("--root", help="MNIST root (default: $MNIST_ROOT, else ./datasets)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mnist-bench", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="per-layer shapes, parameters and MACs of every model"
                   ).set_defaults(func=_models)
    t = sub.add_parser("train", help="train one model, write history.json and model.pt")
    _add_train_args(t)
    t.add_argument("--out", required=True, help="folder for history.json and model.pt")
    t.add_argument("--force", action="store_true", help="overwrite files already in --out")
    t.set_defaults(func=_train)
    r = sub.add_parser("report", help="result JSON files -> report.md, results.csv and plots")
    r.add_argument("files", nargs="+", help="pytest-benchmark JSON files from pytest bench")
    r.add_argument("--out", required=True, help="folder for the report")
    r.add_argument("--baseline", help="machine label the others are compared with (default: the first)")
    r.add_argument("--include-quick", dest="include_quick", action="store_true",
                   help="report --quick runs beside full ones (left out by default; each case is "
                        "still compared only with runs of the same workload)")
    r.set_defaults(func=_report)
    c = sub.add_parser("compare", help="compare two result files; exit 1 when a case regressed")
    c.add_argument("base", help="the reference result JSON (e.g. main's), or a folder of runs to pool")
    c.add_argument("new", help="the result JSON to check, or a folder of runs to pool")
    c.add_argument("--threshold", type=_threshold, default=0.10,
                   help="slowdown that counts, as 10%% or 0.1 (default 10%%)")
    c.add_argument("--format", choices=["text", "markdown"], default="text")
    c.set_defaults(func=_compare)
    s = sub.add_parser("study", help="answer the notebook's Q1-Q7 with figures and study.md")
    s.add_argument("--epochs", type=int, default=10)
    s.add_argument("--train-samples", dest="train_samples", type=int)
    s.add_argument("--root", help="MNIST root (default: $MNIST_ROOT, else ./datasets)")
    s.add_argument("--out", required=True, help="folder for study.md and the figures")
    s.add_argument("--bench", nargs="+", metavar="FILE", help="result JSON to quote cuda times from")
    s.add_argument("--tensorboard", metavar="DIR", help="also log scalars and images for TensorBoard")
    s.add_argument("--force", action="store_true", help="overwrite files already in --out")
    s.set_defaults(func=_study)
    a = sub.add_parser("ablate", help="time training variants side by side, interleaved")
    a.add_argument("--out", required=True, help="folder for ablation.json and fast.md")
    a.add_argument("--rounds", type=int, default=5, help="interleaved rounds per variant (default 5)")
    a.add_argument("--quick", action="store_true", help="4,096 training images")
    a.add_argument("--bench", nargs="+", metavar="FILE", help="benchmark JSON for the tta and overhead targets")
    a.add_argument("--machine-label", dest="machine_label")
    a.add_argument("--root", help="MNIST root (default: $MNIST_ROOT, else ./datasets)")
    a.add_argument("--force", action="store_true", help="overwrite files already in --out")
    a.set_defaults(func=_ablate)
    pr = sub.add_parser("profile", help="torch.profiler table of a few training steps on the cpu")
    pr.add_argument("--model", choices=list_models(), default="cnn")
    pr.add_argument("--batch-size", dest="batch_size", type=int, default=256)
    pr.add_argument("--precision", choices=PRECISIONS, default="fp32")
    pr.add_argument("--variant", default="tuned", help="tuned, plain, or knobs joined by +")
    pr.add_argument("--steps", type=int, default=50)
    pr.add_argument("--root", help="MNIST root (default: $MNIST_ROOT, else ./datasets)")
    pr.set_defaults(func=_profile)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    tune_malloc()  # keep freed memory for the next step's tensors (timing.tune_malloc)
    args.argv = sys.argv[1:] if argv is None else argv  # to write the command beside its output
    try:
        return args.func(args)
    except (UsageError, DatasetError, ValueError) as exc:  # ResultError is a ValueError
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return 2
