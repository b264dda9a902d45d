"""Running one benchmark case: a fresh Trainer per round (setup), the timed target, and
what the case records. One class per operation; `make_run` picks it.

    run = make_run(case, opts, Data.load(opts, "cpu"))
    cold = run.cold_round()
    benchmark.pedantic(run.target, setup=run.setup, rounds=opts.rounds)
    benchmark.extra_info.update(run.extra_info(median, cold))
"""
from __future__ import annotations

import dataclasses
import itertools
import statistics
import time
from dataclasses import dataclass

import torch

from .cases import TTA, BenchOptions, Case
from .config import TEST_SIZE
from .data import Split, load_split
from .devices import absent, peak_memory_mb, reset_peak_memory, resolve
from .hardware import machine_info, native_bf16
from .models import count_params, create_model, macs_per_sample, training_macs_per_sample
from .timing import peak_rss_mb, sync, timed
from .train import Trainer, infer, loaders, train_to_accuracy


@dataclass
class Data:
    """Resident splits on one device, loaded once per session."""

    train: Split
    test: Split

    @classmethod
    def load(cls, opts: BenchOptions, device: str) -> "Data":
        return cls(load_split(opts.root, True, device), load_split(opts.root, False, device))


class Run:
    """One case. setup() builds a fresh Trainer (outside the clock), target() times one
    round of the operation between synchronized clock reads, extra_info() records."""

    def __init__(self, case: Case, opts: BenchOptions, data: Data):
        self.case, self.opts = case, opts
        self.device = torch.device(case.device)
        if self.device.type == "cuda":  # cuDNN (and MIOpen on ROCm): autotune conv kernels; the cold round pays
            torch.backends.cudnn.benchmark = True
        self.cfg = case.config(opts)
        self.batches = loaders(self.cfg, self.device, (data.train, data.test))
        self.trainer: Trainer | None = None
        self.inner: list[float] = []  # the target's own synchronized seconds per round

    @property
    def samples(self) -> int:
        """Images one round processes: the training images (the test images for infer)."""
        return self.cfg.training_images

    def setup(self) -> None:
        self.trainer = Trainer(self.cfg, len(self.batches["train"]), self.device)
        sync(self.device)

    def target(self) -> None:
        start = time.perf_counter()
        self.step()
        sync(self.device)
        self.inner.append(time.perf_counter() - start)

    def step(self) -> None:
        raise NotImplementedError

    def cold_round(self) -> float:
        """Time one round from a fresh model (lazy init, autotune) that is not counted."""
        reset_peak_memory(self.device)
        self.setup()
        _, seconds = timed(self.target, self.device)
        self.inner.clear()
        self.reset()
        return seconds

    def reset(self) -> None:
        """Forget what the cold round recorded."""

    def close(self) -> None:
        """Free what the case holds beyond the session (a data-parallel case: its group)."""

    def extra_info(self, median: float | None, cold: float) -> dict:
        """Every axis and derived figure of this case, for benchmark.extra_info."""
        c, model = self.case, create_model(self.case.model)
        median = median or statistics.median(self.inner)
        info = {"model": c.model, "device": c.device, "operation": c.operation,
                "batch_size": c.batch_size, "loader": c.loader, "variant": c.variant,
                "precision": c.precision, "native": c.precision == "fp32" or native_bf16(c.device),
                "samples": self.samples, "params": count_params(model),
                "macs_per_sample": macs_per_sample(model), "peak_rss_mb": peak_rss_mb(),
                "torch_threads": torch.get_num_threads(), "channels_last": self.cfg.channels_last,
                "fused": self.cfg.fused, "dtype": "bfloat16 autocast" if c.precision == "bf16" else "float32",
                "cold_seconds": round(cold, 4), **self.figures(model, median)}
        if self.device.type != "cpu" and "device_peak_memory_mb" not in info:
            info["device_peak_memory_mb"], note = peak_memory_mb(self.device)
            info.update({"device_peak_memory_note": note} if note else {})
        info["harness_overhead_fraction"] = round(max(median - statistics.median(self.inner), 0) / median, 6)
        return info

    def figures(self, model: torch.nn.Module, median: float) -> dict:
        """The operation's own figures."""
        return {}

    def throughput(self, flops_per_sample: int, median: float) -> dict:
        return {"flops_per_sample": flops_per_sample, "samples_per_second": round(self.samples / median, 1),
                "gflops": round(flops_per_sample * self.samples / median / 1e9, 2)}


class TrainRun(Run):
    """One training epoch from a fresh model and optimizer; a CUDA graph is captured in setup."""

    def setup(self) -> None:
        super().setup()
        self.trainer.capture()  # untimed, like building the model
        sync(self.device)

    def step(self) -> None:
        self.result = self.trainer.epoch(self.batches["train"])

    def figures(self, model: torch.nn.Module, median: float) -> dict:
        return {**self.throughput(2 * training_macs_per_sample(model), median),
                "final_loss": round(self.result["loss"], 5),
                "test_accuracy": self.trainer.evaluate(self.batches["test"])["accuracy"]}


class InferRun(Run):
    """A forward pass over the test images under inference_mode."""

    @property
    def samples(self) -> int:
        return self.cfg.test_samples or TEST_SIZE

    def step(self) -> None:
        infer(self.trainer.model, self.batches["test"].split.x, self.case.batch_size, self.case.precision)

    def figures(self, model: torch.nn.Module, median: float) -> dict:
        return self.throughput(2 * macs_per_sample(model), median)


class TimeToAccuracyRun(Run):
    """DAWNBench's time to accuracy: a fresh model, a seed of its own each round, trained
    until the first evaluation at the recipe's target (its capture counted)."""

    def __init__(self, case: Case, opts: BenchOptions, data: Data):
        super().__init__(case, opts, data)
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

    def figures(self, model: torch.nn.Module, median: float) -> dict:
        return {"target_accuracy": TTA[self.case.model].target, "seeds": len(self.results),
                "reached": [r["reached"] for r in self.results],
                "epochs_to_target": [r["epochs"] for r in self.results],
                "accuracy_at_stop": [r["accuracy"] for r in self.results],
                "recipe": {k: getattr(self.cfg, k) for k in ("epochs", "batch_size", "lr", "optimizer",
                                                            "schedule", "precision")}}


RUNS = {"train": TrainRun, "infer": InferRun, "tta": TimeToAccuracyRun}


def make_run(case: Case, opts: BenchOptions, data: Data | None) -> Run:
    """The Run for the case's operation (a data-parallel case starts its worker group)."""
    if case.operation == "ddp":
        from .ddp_bench import DdpRun
        return DdpRun(case, opts)
    return RUNS[case.operation](case, opts, data)


def machine_facts(opts: BenchOptions, say=lambda line: None) -> dict:
    """machine_info["mnist_bench"]: label, hardware, versions, and the matmul probe of each
    precision the run used on each device present."""
    devices = dict.fromkeys(resolve(d) for d in opts.devices)
    probe = {d: opts.precisions_for(d) for d in devices if not absent(d)}
    return {**machine_info(opts.label, probe, say), "quick": opts.quick, "rounds": opts.rounds}
