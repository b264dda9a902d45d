"""What the torch-using subcommands do once cli.py has checked their arguments: run the
work, then write what it made atomically, and keep what finished when it stops early.

    python -m mnist_models train --model cnn --epochs 3 --out runs/cnn   # -> train_and_save
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from .config import TrainConfig
from .files import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError, json_bytes, torch_bytes, write_files
from .timing import tune_malloc


def _say(line: str) -> None:
    print(line, flush=True)


def train_and_save(cfg: TrainConfig, out: Path, progress: bool = False) -> int:
    """Train, then write history.json and model.pt together. A diverging loss or Ctrl-C
    keeps the epochs that finished: their history and the weights after the last of them."""
    tune_malloc()  # before any tensor: freed memory kept for the next step
    from .train import NonFiniteLossError, fit
    kept: dict = {"history": [], "state": None}

    def keep(model, history: list[dict]) -> None:
        kept["history"] = list(history)
        kept["state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    def report(r: dict) -> None:
        _say(f"epoch {r['epoch']:>3}  train loss {r['train_loss']:.4f}  test loss {r['test_loss']:.4f}  "
             f"test acc {r['test_accuracy']:.2%}  {r['seconds']:.1f} s")

    try:
        model, history = fit(cfg, progress=progress, on_epoch=report, checkpoint=keep)
    except KeyboardInterrupt:
        return _keep_finished(cfg, out, kept, "interrupted", EXIT_INTERRUPTED)
    except NonFiniteLossError as exc:
        return _keep_finished(cfg, out, kept, f"training diverged ({exc})", EXIT_USAGE)
    _save_run(cfg, out, history, model.state_dict())
    _say(f"wrote {out / 'history.json'} and {out / 'model.pt'}")
    return EXIT_OK


def _save_run(cfg: TrainConfig, out: Path, history: list[dict], state: dict) -> None:
    write_files({out / "history.json": json_bytes(history),
                 out / "model.pt": torch_bytes({"config": asdict(cfg), "state_dict": state})})


def _keep_finished(cfg: TrainConfig, out: Path, kept: dict, why: str, code: int) -> int:
    done = len(kept["history"])
    if not done:
        print(f"mnist-bench: {why} before the first epoch finished; nothing written", file=sys.stderr)
        return code
    _save_run(cfg, out, kept["history"], kept["state"])
    print(f"mnist-bench: {why} after {done} finished epoch{'s' * (done > 1)}; wrote their history.json "
          f"and the weights after epoch {done} (model.pt) to {out}", file=sys.stderr)
    return code


def study_and_save(cfg, out: Path, args: argparse.Namespace) -> int:
    """The study's run (cfg: a StudyConfig), every file written together at the end; `args`:
    the command line's --bench and --tensorboard, and the command to quote."""
    tune_malloc()  # before any tensor: freed memory kept for the next step
    from .report import accelerator_epochs
    from .results import load_results
    from .study import run
    bench = None
    if args.bench:
        results = load_results(args.bench)
        for line in results.problems:
            print(f"mnist-bench: warning: {line}", file=sys.stderr)
        bench = accelerator_epochs(results.frame)

    def report(model: str, r: dict) -> None:
        _say(f"{model} epoch {r['epoch']:>3}  train loss {r['train_loss']:.4f}  "
             f"test acc {r['test_accuracy']:.2%}  {r['seconds']:.1f} s")

    command = " ".join(["python -m mnist_models", *args.argv])
    _, files = run(cfg, bench, progress=sys.stderr.isatty(), on_epoch=report, tensorboard=args.tensorboard,
                   command=command)
    write_files({out / name: data for name, data in files.items()})
    _say(f"wrote {out / 'study.md'} and its figures")
    return EXIT_OK


def ablate_and_save(args: argparse.Namespace, out: Path) -> int:
    """Every comparison of the ablation, then ablation.json and fast.md together."""
    tune_malloc()  # before any tensor: freed memory kept for the next step
    from .ablation import ablate
    from .ablation_report import render_fast
    from .cases import BenchOptions
    from .results import load_results
    bench = load_results(args.bench) if args.bench else None
    if bench is not None and bench.problems:
        raise UsageError("; ".join(bench.problems))
    opts = BenchOptions(quick=args.quick, label=args.machine_label or BenchOptions().label, root=args.root)

    def progress(comparison: str, rnd: int, variant: str) -> None:
        _say(f"{comparison}: round {rnd}{' (cold)' if rnd == 0 else ''}: {variant}")

    doc = ablate(opts, args.rounds, progress)
    command = " ".join(["python -m mnist_models", *args.argv])
    write_files({out / "ablation.json": json_bytes(doc),
                 out / "fast.md": render_fast(doc, bench, command).encode()})
    _say(f"wrote {out / 'ablation.json'} and {out / 'fast.md'}")
    return EXIT_OK


def profile(args: argparse.Namespace) -> int:
    """torch.profiler's table of a few training steps of one case on the cpu."""
    tune_malloc()  # before any tensor: freed memory kept for the next step
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    from .cases import BenchOptions, Case
    from .config import TRAIN_SIZE
    from .runner import Data, make_run
    images = args.steps * args.batch_size
    if images > TRAIN_SIZE:
        raise UsageError(f"{args.steps} steps of batch {args.batch_size} need {images:,} images, more than "
                         f"MNIST's {TRAIN_SIZE:,}; lower --steps or --batch-size")
    case = Case("train", args.model, "cpu", args.batch_size, args.precision, variant=args.variant)
    case.overrides()  # raises on unknown variant knobs
    data = Data.load(BenchOptions(root=args.root), "cpu")
    run = make_run(case, BenchOptions(root=args.root), Data(data.train.take(images), data.test))
    run.cold_round()
    run.setup()
    with profiler(activities=[ProfilerActivity.CPU]) as prof:
        run.target()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    _say(f"# python -m mnist_models {' '.join(args.argv)}\n# case {case.id}, {args.steps} training "
         f"steps, torch.profiler, sorted by self CPU time\n{table}")
    return EXIT_OK
