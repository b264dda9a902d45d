"""Looking inside trained models: layer activations (forward hooks) and wrong predictions.

acts = activations(model, test.x[:8])          # {"conv1": tensor, "act1": ..., ...}
wrong = misclassified(model, test, device)      # most confident mistakes first
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import EVAL_BATCH
from .data import Split
from .models import capture_outputs, leaf_layers
from .train import infer


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the model's Conv2d layers, in definition order."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def activations(model: nn.Module, x: torch.Tensor, layers: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Each named layer's output for input x (all leaf layers by default), eval mode."""
    wanted = layers or leaf_layers(model)
    unknown = sorted(set(wanted) - set(dict(model.named_modules())))
    if unknown:
        raise ValueError(f"unknown layers {unknown}; the model has {leaf_layers(model)}")
    return capture_outputs(model, x, wanted)


@dataclass(frozen=True)
class Predictions:
    """Predictions over a split, on the CPU."""

    labels: torch.Tensor  # (N,) true labels
    predicted: torch.Tensor  # (N,) argmax class
    confidence: torch.Tensor  # (N,) softmax probability of the predicted class


@torch.inference_mode()
def predict(model: nn.Module, split: Split, batch_size: int = EVAL_BATCH, precision: str = "fp32") -> Predictions:
    """Class and confidence for every sample of `split`."""
    conf, pred = infer(model, split.x, batch_size, precision).softmax(1).max(1)
    return Predictions(split.y.cpu(), pred.cpu(), conf.cpu())


def misclassified(preds: Predictions, limit: int | None = None) -> torch.Tensor:
    """Indices of wrong predictions, the most confident first."""
    wrong = (preds.predicted != preds.labels).nonzero().flatten()
    order = preds.confidence[wrong].argsort(descending=True)
    return wrong[order][:limit]


def confusion_matrix(preds: Predictions, classes: int = 10) -> torch.Tensor:
    """(true, predicted) counts."""
    index = preds.labels * classes + preds.predicted
    return torch.bincount(index, minlength=classes * classes).reshape(classes, classes)
