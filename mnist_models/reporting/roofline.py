"""The roofline: what a case could reach on a machine, layer by layer, from the two probes.

    from mnist_models.reporting.roofline import bound, layers_of
    bound(layers_of(doc["mnist_bench"]["models"]["cnn"]), "train", 256, "fp32", peak_gflops=131.0, bandwidth_gbs=26.0)
    # Bound(images_per_second=..., layer="conv2", kind="compute", layers=(...))

Each layer of one image's training step (or inference pass) costs FLOPs (conv and linear
layers only, as torch.utils.flop_counter counts them) and bytes moved (below). Its
attainable time is max(FLOPs / peak, bytes / bandwidth); the case's is their sum, since
the layers run one after another, and the layer that takes most of it bounds the case.

Bytes are counted as if every tensor a layer reads or writes crosses the memory bus once
per use: activations in the precision's width (bf16: 2 bytes, fp32: 4), the fp32 images
(and in bf16 their cast), weights once per batch (autocast adds the bf16 copy it makes
each step; inference over bf16 weights reads 2 bytes a weight),
the max-pool's int64 indices and dropout's noise (in the activations' width: the CPU
kernel keeps a tensor of it) in training, a max-pool backward's zero fill of the input
gradient, and Adam's state once per step (parameter, gradient, two moments read;
parameter and moments written). A cache that keeps a small batch's
activations between layers moves less than this, so "of attainable" can pass 100% there.

The layers come from the result file: each run records its models' leaf layers as torch
measured them (core.models.layer_table), so the report needs no torch and no copy of them;
a layer kind this model does not count (a BatchNorm) is named, never costed as another.
No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

ADAM_BYTES = 7 * 4  # per fp32 parameter and step: read weight, gradient and two moments; write three
INDEX_BYTES = 8  # max-pool indices (int64), per output element
WEIGHTED = ("Conv2d", "Linear")


@dataclass(frozen=True)
class Layer:
    """One leaf layer, in the order the forward pass runs it, for a single 1x28x28 image."""

    name: str
    kind: str  # module class: Conv2d, Linear, MaxPool2d, ReLU, Dropout
    inputs: int  # input elements
    outputs: int  # output elements
    params: int  # trainable parameters
    macs: int  # multiply-accumulates


ELEMENTWISE = ("ReLU",)  # layers costed as one read and one write a value (and their backward)
KNOWN = (*WEIGHTED, "MaxPool2d", "Dropout", *ELEMENTWISE)  # the kinds this cost model counts


class UncostedLayer(ValueError):
    """A layer kind the cost model does not count (a BatchNorm): no roofline, rather than a wrong one."""


def layers_of(rows: list[dict]) -> tuple[Layer, ...]:
    """Layers from a result file's `models` record (core.models.layer_table's rows)."""
    return tuple(Layer(**{k: r[k] for k in ("name", "kind", "inputs", "outputs", "params", "macs")}) for r in rows)


@dataclass(frozen=True)
class Cost:
    """What one layer (or the optimizer step) costs per image."""

    name: str
    flops: float
    bytes: float


@dataclass(frozen=True)
class Bound:
    """A case's roofline on one machine."""

    images_per_second: float  # attainable
    layer: str  # the layer that takes most of the attainable time
    kind: str  # what bounds that layer: compute or memory
    layers: tuple[tuple[str, float, str], ...]  # (layer, attainable seconds per image, compute | memory)


def costs(
    layers: tuple[Layer, ...], operation: str, batch: int, precision: str = "fp32", bf16_weights: bool = False
) -> list[Cost]:
    """FLOPs and bytes per image of each layer of one training step (operation "train",
    with the optimizer step as a last entry) or one inference pass ("infer"; `bf16_weights`:
    over weights held in bf16, not autocast). UncostedLayer for a kind it does not count."""
    uncosted = sorted({layer.kind for layer in layers if layer.kind not in KNOWN})
    if uncosted:
        raise UncostedLayer(f"no cost model for {', '.join(uncosted)}")
    train, act = operation == "train", 2 if precision == "bf16" else 4
    # bytes per parameter read: autocast writes and reads a bf16 copy of each fp32 weight
    weight = 2 if bf16_weights else 8 if precision == "bf16" else 4
    out = []
    for i, layer in enumerate(layers):
        first = i == 0
        x, y, p = layer.inputs, layer.outputs, layer.params / batch
        read = 4 * x + (4 * x if precision == "bf16" else 0) if first else act * x  # the fp32 images, cast
        flops, moved = 0.0, 0.0
        if layer.kind in WEIGHTED:
            flops = 2 * layer.macs
            moved = read + act * y + weight * p
            if train:  # weight gradient: read the output gradient and the saved input, write the
                #        gradient; input gradient: read the output gradient again and the weights
                #        (or autocast's bf16 copy), write the input's gradient
                flops += 2 * layer.macs * (1 if first else 2)
                moved += act * y + act * x + 4 * p + (0 if first else act * y + act * x + act * p)
        elif layer.kind == "MaxPool2d":
            moved = read + act * y + (INDEX_BYTES * y if train else 0)
            if train:  # read gradient and indices, zero-fill the input gradient, scatter into it
                moved += act * y + INDEX_BYTES * y + 2 * act * x
        elif layer.kind == "Dropout":
            if train:  # in eval, the identity: nothing moves
                moved = read + act * y + act * y + act * y + act * y + act * x  # noise kept, read again
        else:  # elementwise (ELEMENTWISE): its backward reads the gradient and the saved output
            moved = read + act * y + (2 * act * y + act * x if train else 0)
        out.append(Cost(layer.name, flops, moved))
    if train:
        out.append(Cost("optimizer", 0.0, ADAM_BYTES * sum(layer.params for layer in layers) / batch))
    return out


def bound(
    layers: tuple[Layer, ...],
    operation: str,
    batch: int,
    precision: str,
    peak_gflops: float,
    bandwidth_gbs: float,
    bf16_weights: bool = False,
) -> Bound:
    """The attainable images/s of a case, and the layer that bounds it."""
    times = []
    for c in costs(layers, operation, batch, precision, bf16_weights):
        compute, memory = c.flops / (peak_gflops * 1e9), c.bytes / (bandwidth_gbs * 1e9)
        times.append((c.name, max(compute, memory), "compute" if compute >= memory else "memory"))
    name, _, kind = max(times, key=lambda row: row[1])
    return Bound(1 / sum(row[1] for row in times), name, kind, tuple(times))
