"""The notebook's questions Q1-Q7 answered in one run, with figures and one page of answers.

    python -m mnist_models study --epochs 10 --out results/study
    python -m mnist_models study --epochs 1 --train-samples 4096 --out /tmp/study   # quick

Both models train with the same recipe on the CPU (and, when an accelerator is present,
again on it for Q7); every number in study.md comes from this run.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core.config import TrainConfig
from ..core.data import MEAN, STD, Split, load_split
from ..core.inspection import activations, confusion_matrix, conv_layers, misclassified, predict
from ..core.registry import list_models
from ..core.train import fit
from ..errors import EXIT_OK, UsageError
from ..files import write_files
from ..machine.devices import accelerator
from ..machine.process import tune_malloc
from ..reporting.plots import png
from ..reporting.results import load_results
from ..reporting.tables import accelerator_epochs
from .figures import confusion, curves, feature_maps, hidden_units, misclassified_grid
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
class StudyConfig:
    epochs: int = 10  # the notebook's Q3: 10 epochs
    batch_size: int = 64  # the notebook's batch size
    lr: float = 1e-3  # Adam, constant
    seed: int = 0  # the same seed for both models
    train_samples: int | None = None  # first N training images (None: all)
    root: str | None = None  # dataset root (None: $MNIST_ROOT or ./datasets)
    digits: int = 4  # test digits shown in the activation figures
    wrong: int = 24  # misclassified images shown per model

    def __post_init__(self) -> None:
        if self.train_samples is not None and self.train_samples < self.batch_size:
            raise UsageError(
                f"train samples must be at least {self.batch_size}, the notebook's batch size; "
                f"raise --train-samples (got {self.train_samples})"
            )
        for model in list_models():  # each model's TrainConfig checks itself: UsageError naming the setting
            self.train_config(model, "cpu")

    def train_config(self, model: str, device: str) -> TrainConfig:
        return TrainConfig(
            model=model,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            device=device,
            train_samples=self.train_samples,
            root=self.root,
        )


@dataclass(frozen=True)
class StudyOptions:
    """The study command's choices, beside the study itself."""

    cfg: StudyConfig
    out: Path  # the folder for study.md and the figures
    bench: tuple[str, ...] = ()  # result files to quote accelerator epochs from, where this machine has none
    tensorboard: str | None = None  # a log folder for TensorBoard, or None
    command: str = "python -m mnist_models study"  # what made the run, quoted in study.md


def _pixels(x: torch.Tensor) -> np.ndarray:
    """Normalized (N,1,28,28) back to (N,28,28) pixels in [0, 1]."""
    return (x[:, 0].float().cpu() * STD + MEAN).clamp(0, 1).numpy()


def _epoch_seconds(histories: dict[str, list[dict]], device: str) -> list[dict]:
    return [
        {
            "model": m,
            "device": device,
            "epochs": len(h),
            "median epoch s": statistics.median(r["seconds"] for r in h),
            "total train s": sum(r["seconds"] for r in h),
        }
        for m, h in histories.items()
    ]


def train_models(cfg: StudyConfig, device: str, splits: tuple[Split, Split], progress: bool = False, on_epoch=None):
    """Both models trained with cfg's recipe on `device`: ({name: model}, {name: history})."""
    models, histories = {}, {}
    for name in list_models():
        models[name], histories[name] = fit(
            cfg.train_config(name, device), progress, on_epoch and (lambda r, n=name: on_epoch(n, r)), splits
        )
    return models, histories


def per_class(preds_by_model: dict) -> pd.DataFrame:
    """Q4: overall and per-digit test accuracy for each model."""
    rows = {}
    for name, p in preds_by_model.items():
        right = p.predicted == p.labels
        acc = {str(d): right[p.labels == d].float().mean().item() for d in range(10)}
        rows[name] = {"overall": right.float().mean().item(), **acc}
    return pd.DataFrame(rows).T


def layer_shapes(models: dict, x: torch.Tensor) -> pd.DataFrame:
    """Q6: every named layer's output shape, captured with forward hooks."""
    rows = [
        {"model": name, "layer": layer, "output shape": "x".join(map(str, out.shape[1:]))}
        for name, model in models.items()
        for layer, out in activations(model, x[:1]).items()
    ]
    return pd.DataFrame(rows)


def pick_digits(labels: torch.Tensor, n: int) -> list[int]:
    """Indices of the first test image of digits 0..n-1 (distinct classes)."""
    return [int((labels == d).nonzero()[0]) for d in range(n)]


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
    on_epoch=None,
    tensorboard: str | None = None,
    command: str = "python -m mnist_models study",
) -> tuple[dict, dict[str, bytes]]:
    """Train, inspect and draw: the numbers, and every study file's contents by name (FILES),
    for the caller to write together. With `tensorboard`, the per-epoch scalars and the
    figures also go to that log folder. `command`: what made the run, quoted in study.md."""
    writer, on_epoch = _tensorboard(tensorboard, on_epoch)
    splits = load_split(cfg.root, train=True), load_split(cfg.root, train=False)
    models, histories = train_models(cfg, "cpu", splits, progress, on_epoch)
    q7 = _epoch_seconds(histories, "cpu")
    accel = accelerator()
    if accel is not None:
        q7 += _epoch_seconds(train_models(cfg, accel, splits, progress)[1], accel)
    test = splits[1]
    preds = {name: predict(m, test) for name, m in models.items()}
    figures = {"curves.png": curves(histories)}
    wrong_shown: dict[str, list[tuple[int, int, float]]] = {}  # per model: (true, predicted, confidence)
    for name, p in preds.items():
        figures[f"confusion_{name}.png"] = confusion(confusion_matrix(p).numpy(), name)
        idx = misclassified(p, cfg.wrong)
        wrong_shown[name] = [(int(p.labels[i]), int(p.predicted[i]), float(p.confidence[i])) for i in idx]
        shown = wrong_shown[name]
        true, pred, conf = [t for t, _, _ in shown], [q for _, q, _ in shown], [c for _, _, c in shown]
        figures[f"misclassified_{name}.png"] = misclassified_grid(_pixels(test.x[idx]), true, pred, conf, name)
    digits = test.x[pick_digits(test.y, cfg.digits)]
    convs = conv_layers(models["cnn"])
    acts = activations(models["cnn"], digits, convs)  # full resolution; the ReLU is elementwise
    figures["activations_cnn.png"] = feature_maps(
        _pixels(digits), {conv: acts[conv].relu().numpy() for conv in convs}, "cnn"
    )
    mlp_hidden = activations(models["mlp"], digits, ["act1"])["act1"].numpy()
    figures["activations_mlp.png"] = hidden_units(_pixels(digits), mlp_hidden, "mlp", "fc1")
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
        "histories": histories,
        "per_class": per_class(preds),
        "q7": pd.DataFrame(q7),
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
    bench = None
    if opts.bench:
        results = load_results(opts.bench)
        if results.problems:  # before the training, as ablate --bench: a file quoted must be read whole
            raise UsageError("; ".join(results.problems))
        bench = accelerator_epochs(results.frame)

    def report(model: str, r: dict) -> None:
        say(
            f"{model} epoch {r['epoch']:>3}  train loss {r['train_loss']:.4f}  "
            f"test acc {r['test_accuracy']:.2%}  {r['seconds']:.1f} s"
        )

    _, files = run(
        opts.cfg,
        bench,
        progress=sys.stderr.isatty(),
        on_epoch=report,
        tensorboard=opts.tensorboard,
        command=opts.command,
    )
    write_files({opts.out / name: data for name, data in files.items()})
    say(f"wrote {opts.out / 'study.md'} and its figures")
    return EXIT_OK
