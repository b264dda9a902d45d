"""One class per operation, each following run.Run's template; `make_run` picks it.

run = make_run(Case("train", "cnn", "cpu", 256), BenchOptions(), Data.load(opts, "cpu"))
"""

from __future__ import annotations

import dataclasses
import itertools

import torch

from ..core.config import TEST_SIZE
from ..core.models import macs_per_sample, training_macs_per_sample
from ..core.train import Trainer, build_model, infer, loaders, train_to_accuracy
from ..machine.devices import sync
from .cases import TTA, BenchOptions, Case, recipe_fields
from .ddp_run import DdpRun
from .run import Data, Run


class ResidentRun(Run):
    """A case on the resident splits (or the notebook's loader) of the session's Data."""

    def prepare(self, data: Data) -> None:
        self.batches = loaders(self.cfg, self.device, (data.train, data.test))
        self.trainer: Trainer | None = None


class TrainRun(ResidentRun):
    """One training epoch from a fresh model and optimizer; a CUDA graph is captured in setup."""

    def setup(self) -> None:
        self.trainer = Trainer(self.cfg, len(self.batches["train"]), self.device)
        self.trainer.capture()  # untimed, like building the model
        sync(self.device)

    def step(self) -> None:
        self.result = self.trainer.epoch(self.batches["train"])

    def finish(self) -> dict:
        return {"test_accuracy": self.trainer.evaluate(self.batches["test"])["accuracy"]}

    def figures(self, model: torch.nn.Module, median: float, finished: dict) -> dict:
        return {
            **self.throughput(2 * training_macs_per_sample(model), median),
            "final_loss": round(self.result["loss"], 5),
            "test_accuracy": finished["test_accuracy"],
        }


class InferRun(ResidentRun):
    """A forward pass over the test images under inference_mode, from a fresh model."""

    @property
    def samples(self) -> int:
        return self.cfg.test_samples or TEST_SIZE

    def setup(self) -> None:
        self.model = build_model(self.cfg, self.device)
        sync(self.device)

    def step(self) -> None:
        infer(self.model, self.batches["test"].split.x, self.case.batch_size, self.case.precision)

    def figures(self, model: torch.nn.Module, median: float, finished: dict) -> dict:
        return self.throughput(2 * macs_per_sample(model), median)


class TimeToAccuracyRun(ResidentRun):
    """DAWNBench's time to accuracy: a fresh model, a seed of its own each round, trained
    until the first evaluation at the recipe's target (its capture counted)."""

    def prepare(self, data: Data) -> None:
        super().prepare(data)
        self.reset()

    def reset(self) -> None:
        self.seeds, self.results = itertools.count(), []

    def setup(self) -> None:
        seed = next(self.seeds)
        self.batches["train"].generator.manual_seed(seed)  # each seed its own batch order too
        self.trainer = Trainer(dataclasses.replace(self.cfg, seed=seed), len(self.batches["train"]), self.device)
        sync(self.device)

    def step(self) -> None:
        target = TTA[self.case.model].target
        self.results.append(train_to_accuracy(self.trainer, self.batches["train"], self.batches["test"], target))

    def figures(self, model: torch.nn.Module, median: float, finished: dict) -> dict:
        return {
            "target_accuracy": TTA[self.case.model].target,
            "seeds": len(self.results),
            "reached": [r["reached"] for r in self.results],
            "epochs_to_target": [r["epochs"] for r in self.results],
            "accuracy_at_stop": [r["accuracy"] for r in self.results],
            "recipe": recipe_fields(self.cfg),
        }


RUNS: dict[str, type[Run]] = {"train": TrainRun, "infer": InferRun, "tta": TimeToAccuracyRun, "ddp": DdpRun}


def make_run(case: Case, opts: BenchOptions, data: Data | None) -> Run:
    """The Run for the case's operation (a data-parallel case starts its worker group)."""
    return RUNS[case.operation](case, opts, data)
