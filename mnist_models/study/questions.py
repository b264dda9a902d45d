"""The notebook's questions Q1-Q7 answered in one run, with figures and one page of answers.

    python -m mnist_models study --epochs 10 --out results/study
    python -m mnist_models study --epochs 1 --train-samples 4096 --out /tmp/study   # quick

Both models train with the same recipe on the CPU (and, when an accelerator is present,
again on it for Q7); every number in study.md comes from this run. Each question's answer is
a function in answers.py, which notebooks/mnist.ipynb calls too, so the two agree.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..core.models import create_model
from ..errors import EXIT_OK
from ..files import write_files
from ..machine.process import tune_malloc
from ..reporting.plots import png
from .answers import (
    StudyConfig,
    activation_figures,
    bench_epochs,
    confusion_figure,
    epoch_line,
    epoch_times,
    layer_shapes,
    layer_summary,
    load_splits,
    mistakes,
    per_class,
    predictions,
    train_models,
)
from .figures import curves
from .page import render

FILES = [
    "curves.png",
    "history.csv",
    "confusion_mlp.png",
    "confusion_cnn.png",
    "misclassified_mlp.png",
    "misclassified_cnn.png",
    "activations_cnn.png",
    "activations_mlp.png",
    "study.md",
]


@dataclass(frozen=True)
class StudyOptions:
    """The study command's choices, beside the study itself."""

    cfg: StudyConfig
    out: Path  # the folder for study.md and the figures
    bench: tuple[str, ...] = ()  # result files to quote accelerator epochs from, where this machine has none
    tensorboard: str | None = None  # a log folder for TensorBoard, or None
    command: str = "python -m mnist_models study"  # what made the run, quoted in study.md


def _tensorboard(logdir: str | None, on_epoch):
    """A SummaryWriter (or None) and an on_epoch that also logs the epoch's scalars to it."""
    if logdir is None:
        return None, on_epoch
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 (tensorboard: an optional extra)

    writer = SummaryWriter(logdir)

    def log(model: str, r: dict) -> None:
        for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds"):
            writer.add_scalar(f"{model}/{key}", r[key], r["epoch"])
        if on_epoch:
            on_epoch(model, r)

    return writer, log


def run(
    cfg: StudyConfig,
    bench_accel: pd.DataFrame | None = None,
    progress: bool = False,
    on_epoch: Callable[[str, dict], None] | None = None,
    tensorboard: str | None = None,
    command: str = "python -m mnist_models study",
) -> tuple[dict, dict[str, bytes]]:
    """Train, inspect and draw: the numbers, and every study file's contents by name (FILES),
    for the caller to write together. With `tensorboard`, the per-epoch scalars and the
    figures also go to that log folder. `command`: what made the run, quoted in study.md."""
    writer, on_epoch = _tensorboard(tensorboard, on_epoch)
    splits = load_splits(cfg)
    models, histories = train_models(cfg, "cpu", splits, progress, on_epoch)
    q7 = epoch_times(cfg, splits, {"cpu": histories}, progress)
    test = splits[1]
    preds = predictions(models, test)
    figures = {"curves.png": curves(histories)}
    wrong_shown = {}
    for name, p in preds.items():
        figures[f"confusion_{name}.png"] = confusion_figure(p, name)
        wrong_shown[name], figures[f"misclassified_{name}.png"] = mistakes(p, test, name, cfg.wrong)
    for name, fig in activation_figures(models, test, cfg.digits).items():
        figures[f"activations_{name}.png"] = fig
    files = {}
    for name, fig in figures.items():
        if writer:
            writer.add_figure(name.removesuffix(".png"), fig, close=False)
        files[name] = png(fig, dpi=100)
    if writer:
        writer.close()
    history = pd.concat([pd.DataFrame(h).assign(model=m) for m, h in histories.items()])
    files["history.csv"] = history.to_csv(index=False).encode()
    numbers = {
        "summaries": {name: layer_summary(create_model(name)) for name in ("mlp", "cnn")},
        "histories": histories,
        "per_class": per_class(preds),
        "q7": q7,
        "bench_accel": bench_accel,
        "shapes": layer_shapes(models, test.x),
        "misclassified": wrong_shown,
        "cfg": cfg,
        "command": command,
        "wrong_counts": {n: int((p.predicted != p.labels).sum()) for n, p in preds.items()},
    }
    files["study.md"] = render(numbers).encode()
    return numbers, files


def study_and_save(opts: StudyOptions, say: Callable[[str], None] = print) -> int:
    """The study's run, every file written together at the end."""
    tune_malloc()  # before any tensor: freed memory kept for the next step
    bench = bench_epochs(opts.bench) if opts.bench else None  # before the training: a file quoted is read whole
    _, files = run(
        opts.cfg,
        bench,
        progress=sys.stderr.isatty(),
        on_epoch=lambda model, r: say(epoch_line(model, r)),
        tensorboard=opts.tensorboard,
        command=opts.command,
    )
    write_files({opts.out / name: data for name, data in files.items()})
    say(f"wrote {opts.out / 'study.md'} and its figures")
    return EXIT_OK
