"""A timer per operation, each following timer.CaseTimer's template; `make_timer` picks the
one the case's plan names (cases.PLANS).

    timer = make_timer(Case("train", "cnn", "cpu", 256), BenchOptions(), Data.load(opts, "cpu"))
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools

import torch

from ..core.config import TEST_SIZE
from ..core.data import ResidentLoader
from ..core.models import macs_per_sample, training_macs_per_sample
from ..core.train import Trainer, build_model, infer, loaders, train_to_accuracy
from ..machine.devices import sync
from .cases import PLANS, BenchOptions, Case
from .recipes import TTA, recipe_fields
from .timer import CaseTimer, Data


class ResidentTimer(CaseTimer):
    """A case on the resident splits (or the notebook's loader) of the session's Data."""

    trainer: Trainer  # a training case's: a fresh one each round, built by setup()

    def prepare(self, data: Data | None) -> None:
        if data is None:
            raise ValueError(f"{self.case.id} runs on the session's splits: its timer needs them (Data)")
        self.batches = loaders(self.cfg, self.device, (data.train, data.test))

    def resident(self, name: str) -> ResidentLoader:
        """The resident batches of `name` (train, test): every case's but the notebook loader's training."""
        batches = self.batches[name]
        if not isinstance(batches, ResidentLoader):
            raise TypeError(f"{self.case.id}: the {name} batches come from the notebook's loader, not a resident split")
        return batches


WARM_STEPS = 8  # training steps that warm a training case as much as a whole epoch (lazy init, allocator)


class TrainTimer(ResidentTimer):
    """One training epoch from a fresh model and optimizer; a CUDA graph is captured in setup."""

    result: dict  # the last epoch's loss and accuracy, which the figures report

    def setup(self) -> None:
        self.trainer = Trainer(self.cfg, len(self.batches["train"]), self.device)
        self.trainer.capture()  # untimed, like building the model
        sync(self.device)

    def step(self) -> None:
        self.result = self.trainer.epoch(self.batches["train"])

    def warm_step(self) -> None:
        self.trainer.train(list(itertools.islice(iter(self.batches["train"]), WARM_STEPS)))

    def finish(self) -> dict:
        return {"test_accuracy": self.trainer.evaluate(self.batches["test"])["accuracy"]}

    def figures(self, model: torch.nn.Module, median: float, finished: dict) -> dict:
        return {
            **self.throughput(2 * training_macs_per_sample(model), median),
            "final_loss": round(self.result["loss"], 5),
            "test_accuracy": finished["test_accuracy"],
        }


class InferTimer(ResidentTimer):
    """A forward pass over the test images under inference_mode, from a fresh model."""

    @property
    def samples(self) -> int:
        return self.cfg.test_samples or TEST_SIZE

    def setup(self) -> None:
        self.model = build_model(self.cfg, self.device)
        sync(self.device)

    def step(self) -> None:
        infer(self.model, self.resident("test").split.x, self.case.batch_size, self.case.precision)

    def figures(self, model: torch.nn.Module, median: float, finished: dict) -> dict:
        return self.throughput(2 * macs_per_sample(model), median)


class TimeToAccuracyTimer(ResidentTimer):
    """DAWNBench's time to accuracy: a fresh model, a seed of its own each round, trained
    until the first evaluation at the recipe's target (its capture counted)."""

    def prepare(self, data: Data | None) -> None:
        super().prepare(data)
        self.reset()

    def reset(self) -> None:
        self.seeds = itertools.count(self.cfg.seed)  # the recipe's first seed, then on
        self.results: list[dict] = []

    def setup(self) -> None:
        seed = next(self.seeds)
        self.resident("train").generator.manual_seed(seed)  # each seed its own batch order too
        self.trainer = Trainer(dataclasses.replace(self.cfg, seed=seed), len(self.batches["train"]), self.device)
        sync(self.device)

    def warm_step(self) -> None:
        self.trainer.train(list(itertools.islice(iter(self.batches["train"]), WARM_STEPS)))
        self.trainer.evaluate(self.batches["test"])

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

    def failure(self, info: dict) -> str | None:
        if all(info["reached"]):
            return None
        return (
            f"seeds reached {info['target_accuracy']:.1%} {info['reached']}, "
            f"accuracy at stop {info['accuracy_at_stop']}"
        )


def make_timer(case: Case, opts: BenchOptions, data: Data | None) -> CaseTimer:
    """The timer the case's plan names (a data-parallel case's starts its worker group)."""
    module, name = PLANS[case.operation].timer.split(":")
    return getattr(importlib.import_module(module), name)(case, opts, data)
