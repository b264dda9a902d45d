"""The notebook's two models (Q1 MLP, Q2 CNN), built by registry name, and a per-layer cost summary.

    from mnist_models.core.models import create_model, list_models, summarize
    model = create_model("cnn")
    for row in summarize(model): print(row)

The names live in registry.py (no torch there, so the command line can offer them); a
registered variant (`cnn_relu_first`: the CNN with its ReLUs before the pools) builds the
same network with a model-specific switch set; list_models() leaves variants out, so the
benchmark matrix and the CLI's choices hold the two models.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from .registry import list_models, model_spec

__all__ = ["CNN", "MLP", "create_model", "layer_table", "list_models", "summarize"]


def create_model(name: str, **kwargs) -> nn.Module:
    """A fresh model by registry name (registry.py); unknown names raise with the known ones."""
    spec = model_spec(name)
    module, attribute = spec.factory.split(":")
    return getattr(importlib.import_module(module), attribute)(**{**dict(spec.switches), **kwargs})


def capture_outputs(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """Each named module's output for input x (eval mode, no autograd), by forward hooks."""
    modules = dict(model.named_modules())
    captured: dict[str, torch.Tensor] = {}
    handles = [
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: captured.__setitem__(name, out.detach()))
        for name in names
    ]
    was_training = model.training
    try:
        with torch.inference_mode():
            model.eval()(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return {name: captured[name] for name in names}


def leaf_layers(model: nn.Module) -> list[str]:
    """Names of the model's leaf layers, in definition order."""
    return [n for n, m in model.named_modules() if n and not list(m.children())]


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

    The 16/32-channel default costs a tenth of pytorch/examples' 32/64 net per image.
    Pooling before the ReLU gives the same numbers as after it (max and ReLU commute)
    and runs the ReLU and its backward on a quarter of the values (what that saves is
    measured in results/fast/).
    """

    def __init__(
        self, channels: tuple[int, int] = (16, 32), hidden: int = 128, dropout: float = 0.25, pool_first: bool = True
    ):
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
    """Output shape, parameters and MACs of each named leaf layer, for one image."""
    p = next(model.parameters())
    names, modules = leaf_layers(model), dict(model.named_modules())
    outputs = capture_outputs(model, torch.zeros(1, 1, 28, 28, device=p.device, dtype=p.dtype), names)
    return [
        LayerCost(
            name,
            type(modules[name]).__name__,
            tuple(out.shape[1:]),
            sum(q.numel() for q in modules[name].parameters() if q.requires_grad),
            _macs(modules[name], out),
        )
        for name, out in outputs.items()
    ]


def layer_table(model: nn.Module) -> list[dict]:
    """Each leaf layer in the order the forward pass runs it, for one image: name, kind, input
    and output elements, parameters and MACs (what reporting.roofline.LAYERS spells out)."""
    modules = dict(model.named_modules())
    seen: list[tuple[str, int]] = []
    handles = [
        modules[name].register_forward_hook(lambda _m, args, _out, name=name: seen.append((name, args[0][0].numel())))
        for name in leaf_layers(model)
    ]
    try:
        costs = {row.name: row for row in summarize(model)}
    finally:
        for handle in handles:
            handle.remove()
    return [
        {
            "name": name,
            "kind": costs[name].kind,
            "inputs": inputs,
            "outputs": math.prod(costs[name].output_shape),
            "params": costs[name].params,
            "macs": costs[name].macs,
        }
        for name, inputs in seen
    ]


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
