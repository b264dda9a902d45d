"""Each of the notebook's questions answered by a small function of the recipe, the splits and
the trained models: the study command (questions.run) and notebooks/mnist.ipynb both call
these, so study.md and the notebook draw the same figures from the same code.

    from mnist_models.study.answers import StudyConfig, load_splits, train_models, per_class, predictions
    cfg = StudyConfig(epochs=1, train_samples=4096)
    splits = load_splits(cfg)
    models, histories = train_models(cfg, "cpu", splits)      # Q3
    per_class(predictions(models, splits[1]))                 # Q4: a DataFrame, model x digit
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core.config import TrainConfig
from ..core.data import MEAN, STD, Split, load_split
from ..core.inspection import Predictions, activations, confusion_matrix, conv_layers, misclassified, predict
from ..core.models import summarize
from ..core.registry import list_models
from ..core.train import fit
from ..errors import UsageError
from ..machine.devices import accelerator
from ..reporting.plots import plt
from ..reporting.results import load_results
from ..reporting.tables import accelerator_epochs
from .figures import confusion, feature_maps, hidden_units, misclassified_grid


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


def load_splits(cfg: StudyConfig) -> tuple[Split, Split]:
    """The (train, test) splits, read once for every model trained; cfg.train_samples is
    applied when training."""
    return load_split(cfg.root, train=True), load_split(cfg.root, train=False)


def pixels(x: torch.Tensor) -> np.ndarray:
    """Normalized (N,1,28,28) back to (N,28,28) pixels in [0, 1]."""
    return (x[:, 0].float().cpu() * STD + MEAN).clamp(0, 1).numpy()


def layer_summary(model: nn.Module) -> pd.DataFrame:
    """Q1/Q2: each named layer's output shape, parameters and MACs for one image."""
    rows = pd.DataFrame([dataclasses.asdict(r) for r in summarize(model)])
    rows["output_shape"] = rows["output_shape"].map(lambda s: "x".join(map(str, s)))
    return rows


def epoch_line(model: str, r: dict) -> str:
    """One line for one epoch's record: what the study prints as it trains."""
    return (
        f"{model} epoch {r['epoch']:>3}  train loss {r['train_loss']:.4f}  "
        f"test acc {r['test_accuracy']:.2%}  {r['seconds']:.1f} s"
    )


def train_models(
    cfg: StudyConfig,
    device: str,
    splits: tuple[Split, Split],
    progress: bool = False,
    on_epoch: Callable[[str, dict], None] | None = None,
) -> tuple[dict[str, nn.Module], dict[str, list[dict]]]:
    """Q3: both models trained with cfg's recipe on `device`: ({name: model}, {name: history}).
    `on_epoch(name, record)` after each epoch."""
    models, histories = {}, {}
    for name in list_models():
        each = None if on_epoch is None else functools.partial(_said, on_epoch, name)
        models[name], histories[name] = fit(cfg.train_config(name, device), progress, each, splits)
    return models, histories


def _said(on_epoch: Callable[[str, dict], None], name: str, record: dict) -> None:
    on_epoch(name, record)


def epoch_seconds(histories: dict[str, list[dict]], device: str) -> list[dict]:
    """Q7: each model's median and total training-epoch seconds (fit's synchronized clock)."""
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


def epoch_times(
    cfg: StudyConfig,
    splits: tuple[Split, Split],
    trained: dict[str, dict[str, list[dict]]],
    progress: bool = False,
    on_epoch: Callable[[str, dict], None] | None = None,
) -> pd.DataFrame:
    """Q7: epoch seconds on the CPU and on the accelerator when one is here. `trained`: the
    histories already made, by device; both models are trained on each device missing from it."""
    rows = []
    for device in ["cpu", *filter(None, [accelerator()])]:
        histories = trained.get(device) or train_models(cfg, device, splits, progress, on_epoch)[1]
        rows += epoch_seconds(histories, device)
    return pd.DataFrame(rows)


def bench_epochs(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Q7 where this machine has no accelerator: the accelerator training epochs in benchmark
    result files (empty when they hold none). A file that cannot be read whole is a UsageError."""
    results = load_results(list(paths))
    if results.problems:
        raise UsageError("; ".join(results.problems))
    return accelerator_epochs(results.frame)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def predictions(models: dict[str, nn.Module], test: Split) -> dict[str, Predictions]:
    """Q4: every model's class and confidence for each test image (on the CPU)."""
    return {name: predict(m, test.to(_device(m))) for name, m in models.items()}


def per_class(preds_by_model: dict[str, Predictions]) -> pd.DataFrame:
    """Q4: overall and per-digit test accuracy for each model."""
    rows = {}
    for name, p in preds_by_model.items():
        right = p.predicted == p.labels
        acc = {str(d): right[p.labels == d].float().mean().item() for d in range(10)}
        rows[name] = {"overall": right.float().mean().item(), **acc}
    return pd.DataFrame(rows).T


def confusion_figure(p: Predictions, model: str) -> plt.Figure:
    """Q4: the model's confusion matrix over the test set."""
    return confusion(confusion_matrix(p).numpy(), model)


def mistakes(p: Predictions, test: Split, model: str, limit: int) -> tuple[list[tuple[int, int, float]], plt.Figure]:
    """Q5: the `limit` most confident mistakes as (true, predicted, confidence), and their figure."""
    idx = misclassified(p, limit)
    shown = [(int(p.labels[i]), int(p.predicted[i]), float(p.confidence[i])) for i in idx]
    true, pred, conf = map(list, zip(*shown, strict=True)) if shown else ([], [], [])
    return shown, misclassified_grid(pixels(test.x[idx]), true, pred, conf, model)


def layer_shapes(models: dict[str, nn.Module], x: torch.Tensor) -> pd.DataFrame:
    """Q6: every named layer's output shape, captured with forward hooks."""
    rows = [
        {"model": name, "layer": layer, "output shape": "x".join(map(str, out.shape[1:]))}
        for name, model in models.items()
        for layer, out in activations(model, x[:1].to(_device(model))).items()
    ]
    return pd.DataFrame(rows)


def pick_digits(labels: torch.Tensor, n: int) -> list[int]:
    """Indices of the first test image of digits 0..n-1 (distinct classes)."""
    return [int((labels == d).nonzero()[0]) for d in range(n)]


def activation_figures(models: dict[str, nn.Module], test: Split, digits: int) -> dict[str, plt.Figure]:
    """Q6 for the first test image of digits 0..digits-1: every channel of the CNN's conv layers
    and the MLP's hidden units, after their ReLU; {model: figure}."""
    x = test.x[pick_digits(test.y, digits)]
    cnn, mlp = models["cnn"], models["mlp"]
    convs = conv_layers(cnn)
    maps = activations(cnn, x.to(_device(cnn)), convs)  # full resolution; the ReLU is elementwise
    hidden = activations(mlp, x.to(_device(mlp)), ["act1"])["act1"]
    return {
        "cnn": feature_maps(pixels(x), {conv: maps[conv].relu().cpu().numpy() for conv in convs}, "cnn"),
        "mlp": hidden_units(pixels(x), hidden.cpu().numpy(), "mlp", "fc1"),
    }
