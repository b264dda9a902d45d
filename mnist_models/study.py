"""The notebook's questions Q1-Q7 answered in one run, with figures and one page of answers.

    python -m mnist_models study --epochs 10 --out results/study
    python -m mnist_models study --epochs 1 --train-samples 4096 --out /tmp/study   # quick

Both models train with the same recipe on the CPU (and, when an accelerator is present,
again on it for Q7); every number in study.md comes from this run.
"""
from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import plots, study_plots
from .data import MEAN, STD, Split, load_split
from .inspection import activations, confusion_matrix, conv_layers, misclassified, predict
from .models import create_model, summarize
from .config import TrainConfig, check_config
from .devices import accelerator
from .train import fit

MODELS = ("mlp", "cnn")
FILES = ["curves.png", "history.csv", "confusion_mlp.png", "confusion_cnn.png",
         "misclassified_mlp.png", "misclassified_cnn.png", "activations_cnn.png",
         "activations_mlp.png", "study.md"]


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

    def train_config(self, model: str, device: str) -> TrainConfig:
        return TrainConfig(model=model, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           seed=self.seed, device=device, train_samples=self.train_samples,
                           root=self.root)


def check_study(cfg: StudyConfig) -> None:
    """Raise ValueError naming a setting out of range, before any work or folder is made."""
    for model in MODELS:
        check_config(cfg.train_config(model, "cpu"))


def _pixels(x: torch.Tensor) -> np.ndarray:
    """Normalized (N,1,28,28) back to (N,28,28) pixels in [0, 1]."""
    return (x[:, 0].float().cpu() * STD + MEAN).clamp(0, 1).numpy()


def _epoch_seconds(histories: dict[str, list[dict]], device: str) -> list[dict]:
    return [{"model": m, "device": device, "epochs": len(h),
             "median epoch s": statistics.median(r["seconds"] for r in h),
             "total train s": sum(r["seconds"] for r in h)} for m, h in histories.items()]


def train_models(cfg: StudyConfig, device: str, splits: tuple[Split, Split], progress: bool = False,
                 on_epoch=None):
    """Both models trained with cfg's recipe on `device`: ({name: model}, {name: history})."""
    models, histories = {}, {}
    for name in MODELS:
        models[name], histories[name] = fit(cfg.train_config(name, device), progress,
                                            on_epoch and (lambda r, n=name: on_epoch(n, r)), splits)
    return models, histories


def per_class(preds_by_model: dict) -> pd.DataFrame:
    """Q4: overall and per-digit test accuracy for each model."""
    rows = {}
    for name, p in preds_by_model.items():
        right = (p.predicted == p.labels)
        acc = {str(d): right[p.labels == d].float().mean().item() for d in range(10)}
        rows[name] = {"overall": right.float().mean().item(), **acc}
    return pd.DataFrame(rows).T


def layer_shapes(models: dict, x: torch.Tensor) -> pd.DataFrame:
    """Q6: every named layer's output shape, captured with forward hooks."""
    rows = [{"model": name, "layer": layer, "output shape": "x".join(map(str, out.shape[1:]))}
            for name, model in models.items() for layer, out in activations(model, x[:1]).items()]
    return pd.DataFrame(rows)


def pick_digits(labels: torch.Tensor, n: int) -> list[int]:
    """Indices of the first test image of digits 0..n-1 (distinct classes)."""
    return [int((labels == d).nonzero()[0]) for d in range(n)]


def _tensorboard(logdir: str | None, on_epoch):
    """A SummaryWriter (or None) and an on_epoch that also logs the epoch's scalars to it."""
    if logdir is None:
        return None, on_epoch
    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(logdir)

    def log(model: str, r: dict) -> None:
        for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds"):
            writer.add_scalar(f"{model}/{key}", r[key], r["epoch"])
        if on_epoch:
            on_epoch(model, r)
    return writer, log


def run(cfg: StudyConfig, bench_accel: pd.DataFrame | None = None, progress: bool = False,
        on_epoch=None, tensorboard: str | None = None,
        command: str = "python -m mnist_models study") -> tuple[dict, dict[str, bytes]]:
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
    figures = {"curves.png": study_plots.curves(histories)}
    wrong_shown = {}
    for name, p in preds.items():
        figures[f"confusion_{name}.png"] = study_plots.confusion(confusion_matrix(p).numpy(), name)
        idx = misclassified(p, cfg.wrong)
        wrong_shown[name] = [(int(p.labels[i]), int(p.predicted[i]), float(p.confidence[i])) for i in idx]
        figures[f"misclassified_{name}.png"] = study_plots.misclassified_grid(
            _pixels(test.x[idx]), *map(list, zip(*wrong_shown[name])) if len(idx) else ([], [], []), name)
    digits = test.x[pick_digits(test.y, cfg.digits)]
    convs = conv_layers(models["cnn"])
    acts = activations(models["cnn"], digits, convs)  # full resolution; the ReLU is elementwise
    figures["activations_cnn.png"] = study_plots.feature_maps(
        _pixels(digits), {conv: acts[conv].relu().numpy() for conv in convs}, "cnn")
    mlp_hidden = activations(models["mlp"], digits, ["act1"])["act1"].numpy()
    figures["activations_mlp.png"] = study_plots.hidden_units(_pixels(digits), mlp_hidden, "mlp", "fc1")
    files = {}
    for name, fig in figures.items():
        if writer:
            writer.add_figure(name.removesuffix(".png"), fig, close=False)
        files[name] = plots.png(fig, dpi=100)
    if writer:
        writer.close()
    history = pd.concat([pd.DataFrame(h).assign(model=m) for m, h in histories.items()])
    files["history.csv"] = history.to_csv(index=False).encode()
    numbers = {"histories": histories, "per_class": per_class(preds), "q7": pd.DataFrame(q7),
               "bench_accel": bench_accel, "shapes": layer_shapes(models, test.x),
               "misclassified": wrong_shown, "cfg": cfg, "command": command,
               "wrong_counts": {n: int((p.predicted != p.labels).sum()) for n, p in preds.items()}}
    files["study.md"] = render(numbers).encode()
    return numbers, files


def _summary_md(name: str) -> str:
    rows = pd.DataFrame([dataclasses.asdict(r) for r in summarize(create_model(name))])
    rows["output_shape"] = rows["output_shape"].map(lambda s: "x".join(map(str, s)))
    return rows.to_markdown(index=False, intfmt=",")


def _epochs(n: int) -> str:
    return f"{n} epoch{'s' * (n != 1)}"


def render(n: dict) -> str:
    """study.md: Q1-Q7 in order, with the figures and this run's numbers."""
    cfg, h = n["cfg"], n["histories"]
    final = {m: hist[-1] for m, hist in h.items()}
    acc = n["per_class"].map(lambda x: f"{x:.2%}").reset_index(names="model")
    q7 = n["q7"].to_markdown(index=False, floatfmt=".2f")
    if not (n["q7"]["device"] != "cpu").any():
        q7 += "\n\nNo accelerator was present in this run, so there is no GPU time from it."
        accel = n["bench_accel"]
        if accel is not None and len(accel):
            q7 += (" From benchmark result files (one training epoch, 60,000 images, median of "
                   "the timed rounds):\n\n" + accel.to_markdown(index=False, floatfmt=".3g"))
        else:
            q7 += " Pass `--bench results/*.json` to quote accelerator figures from benchmark runs."
    wrong = ", ".join(f"{m} {c:,} of 10,000" for m, c in n["wrong_counts"].items())
    return f"""# The MNIST notebook's questions, answered

Made by `{n["command"]}`: both models trained with the same recipe (Adam, lr {cfg.lr},
batch {cfg.batch_size}, {_epochs(cfg.epochs)}, seed {cfg.seed}, fp32, on the CPU).

## Q1: a 2-layer network (MLP)

{_summary_md("mlp")}

## Q2: a CNN with 2 conv and 2 linear layers

{_summary_md("cnn")}

## Q3: training both for {_epochs(cfg.epochs)}

![curves](curves.png)

Final epoch: MLP train loss {final['mlp']['train_loss']:.4f}, CNN {final['cnn']['train_loss']:.4f}.
Per-epoch numbers: [history.csv](history.csv).

## Q4: test accuracy

{acc.to_markdown(index=False)}

The CNN gets {final['cnn']['test_accuracy']:.2%} of the test set right, the MLP {final['mlp']['test_accuracy']:.2%}.

![confusion mlp](confusion_mlp.png) ![confusion cnn](confusion_cnn.png)

## Q5: misclassified test samples

Wrong: {wrong}. The most confident mistakes first:

![misclassified mlp](misclassified_mlp.png)

![misclassified cnn](misclassified_cnn.png)

## Q6: intermediate layers

Every named layer's output shape for one image, captured with forward hooks:

{n["shapes"].to_markdown(index=False)}

![activations cnn](activations_cnn.png)

![activations mlp](activations_mlp.png)

## Q7: training time, CPU and GPU

Time per training epoch in this run (synchronized clocks; evaluation not included):

{q7}
"""
