"""A toy model and a toy operation, declared the way a contributor would add real ones; loaded
as a pytest plugin (`-p toys`) in a suite run, or by register() in a test.

The model takes one place: its class and one register_model line. The operation takes three:
its Operation (what the result file and the report call it), its CasePlan (which cases it
holds) and its timer (what a round does). Nothing else in the package is edited.
"""

import torch
from torch import nn

from mnist_models.core.registry import ModelSpec, register_model, unregister_model
from mnist_models.core.train import infer
from mnist_models.harness.cases import BenchOptions, Case, CasePlan, register_plan, unregister_plan
from mnist_models.harness.operations import ResidentTimer
from mnist_models.machine.devices import DeviceClass
from mnist_models.reporting.fields import Operation, register_operation, unregister_operation


class Toy(nn.Module):
    """A linear model with a batch norm in front, which the roofline has no cost model for."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(28 * 28)
        self.fc1 = nn.Linear(28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc1(self.norm(x.flatten(1)))


class Latency(CasePlan):
    """Latency: the first 64 test images one at a time, per model, in fp32."""

    name, timer, trains = "latency", "toys:LatencyTimer", False

    def cases(self, opts: BenchOptions, model: str, dc: DeviceClass) -> list[Case]:
        return [Case("latency", model, dc.device, 1)]


class LatencyTimer(ResidentTimer):
    @property
    def samples(self) -> int:
        return 64

    def setup(self) -> None:
        from mnist_models.core.train import build_model

        self.model = build_model(self.cfg, self.device)

    def step(self) -> None:
        infer(self.model, self.batches["test"].split.x[:64], 1)

    def figures(self, model, median, finished) -> dict:
        return {"samples_per_second": round(self.samples / median, 1)}


def register() -> None:
    register_model("toy", ModelSpec("toys:Toy"))
    register_operation(Operation("latency", "Latency: one image at a time", "64 images s", "64 images at batch 1"))
    register_plan(Latency())


def unregister() -> None:
    unregister_model("toy")
    unregister_operation("latency")
    unregister_plan("latency")


register()  # as a plugin (-p toys), on import
