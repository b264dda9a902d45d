"""The notebook's two models (Q1 MLP, Q2 CNN), a registry, and a per-layer cost summary.

    from mnist_models.models import create_model, list_models, summarize
    model = create_model("cnn")
    for row in summarize(model): print(row)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model factory under its function name."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """The names `create_model` knows, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> nn.Module:
    """A fresh model by registry name; unknown names raise with the known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(list_models())}")
    return _REGISTRY[name](**kwargs)


class MLP(nn.Module):
    """Q1: a 2-layer network, 784 -> hidden -> 10."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, hidden)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act1(self.fc1(x.flatten(1))))


class CNN(nn.Module):
    """Q2: exactly 2 conv and 2 linear layers; 3x3 convs, each followed by 2x2 max-pool and ReLU.

    The 16/32-channel default costs about 1.2M multiply-accumulates per image, a tenth
    of pytorch/examples' 32/64 net, and still passes 99% test accuracy in 10 epochs.
    Pooling before the ReLU gives the same numbers as after it (max and ReLU commute)
    and runs the ReLU and its backward on a quarter of the values: the full-size ReLU
    and its backward were 12% of a CPU training step's profile (results/fast/).
    """

    def __init__(self, channels: tuple[int, int] = (16, 32), hidden: int = 128,
                 dropout: float = 0.25, pool_first: bool = True):
        super().__init__()
        self.pool_first = pool_first  # False: ReLU then pool, as the net is usually first written
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.pool2 = nn.MaxPool2d(2)
        self.act2 = nn.ReLU()
        self.fc1 = nn.Linear(c2 * 7 * 7, hidden)
        self.act3 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_first:
            x = self.act1(self.pool1(self.conv1(x)))
            x = self.act2(self.pool2(self.conv2(x)))
        else:
            x = self.pool1(self.act1(self.conv1(x)))
            x = self.pool2(self.act2(self.conv2(x)))
        return self.fc2(self.dropout(self.act3(self.fc1(x.flatten(1)))))


@register_model
def mlp(**kwargs) -> nn.Module:
    return MLP(**kwargs)


@register_model
def cnn(**kwargs) -> nn.Module:
    return CNN(**kwargs)


@dataclass(frozen=True)
class LayerCost:
    """One named leaf layer for a single 1x28x28 input."""

    name: str  # attribute name, e.g. "conv1"
    kind: str  # module class, e.g. "Conv2d"
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int  # trainable parameters
    macs: int  # multiply-accumulates per image


def _macs(module: nn.Module, out: torch.Tensor) -> int:
    per_output = 0
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        per_output = module.in_channels // module.groups * kh * kw
    elif isinstance(module, nn.Linear):
        per_output = module.in_features
    return per_output * out[0].numel()


def summarize(model: nn.Module) -> list[LayerCost]:
    """Output shape, parameters and MACs of each named leaf layer, found with forward hooks."""
    rows: list[LayerCost] = []

    def hook(name: str):
        def record(module: nn.Module, _inputs, out: torch.Tensor) -> None:
            params = sum(p.numel() for p in module.parameters() if p.requires_grad)
            rows.append(LayerCost(name, type(module).__name__, tuple(out.shape[1:]), params,
                                  _macs(module, out)))
        return record

    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    p, was_training = next(model.parameters()), model.training
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, 1, 28, 28, device=p.device, dtype=p.dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def macs_per_sample(model: nn.Module) -> int:
    return sum(row.macs for row in summarize(model))


def training_macs_per_sample(model: nn.Module) -> int:
    """MACs of one training step per image: the forward pass, every layer's weight gradient,
    and every layer's input gradient but the first's (the images need none)."""
    layers = [row.macs for row in summarize(model) if row.macs]
    return 3 * sum(layers) - layers[0]


def training_bytes_per_sample(model: nn.Module) -> int:
    """Rough memory of one image in a training step: every layer's output, kept for the
    backward pass, and its gradient, in fp32."""
    return 2 * 4 * sum(math.prod(row.output_shape) for row in summarize(model))
