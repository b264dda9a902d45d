"""The benchmark matrix behind `pytest bench`: options, cases, and one runner per operation.

    pytest bench --benchmark-json results/$(hostname).json        # the full default matrix
    pytest bench --quick --devices cpu --models mlp               # a small subset, one round

The pytest side (bench/, conftest.py) only parametrizes, times and records; what a
case is, how it is prepared and what it records lives here.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import socket
import statistics
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest
import torch

from .config import EVAL_BATCH, TRAIN_SIZE, TrainConfig
from .data import ResidentLoader, Split, load_split, seed_loader
from .files import write_files
from .hardware import PRECISIONS, default_precisions, machine_info, native_bf16
from .models import (count_params, create_model, list_models, macs_per_sample,
                     training_macs_per_sample)
from .timing import peak_rss_mb, sync, timed
from .train import (build, check_memory, evaluate, graphed, infer, train_epoch,
                    train_to_accuracy)

DEVICES = ("cpu", "cuda")
KNOBS = ("channels_last", "fused", "compile", "relu_first", "cuda_graphs")  # what a variant switches on
TUNED = ("channels_last", "fused")  # the default variant: what measured fastest (results/fast/)
NAMED = {"tuned": TUNED, "plain": (), "graphs": (*TUNED, "cuda_graphs")}  # variants by name
OPERATIONS = ("train", "infer", "tta")
QUICK_TRAIN, QUICK_TEST = 4096, 2048  # images per split with --quick

# Time to accuracy (DAWNBench): the fastest recipe found per model, and its target.
TTA = {
    "mlp": (TrainConfig(model="mlp", epochs=4, batch_size=128, lr=3e-3, schedule="onecycle",
                        precision="bf16"), 0.975),
    "cnn": (TrainConfig(model="cnn", epochs=3, batch_size=256, lr=6e-3, schedule="onecycle",
                        precision="bf16"), 0.990),
}
TTA_SEEDS = 3


@dataclass(frozen=True)
class BenchOptions:
    devices: tuple[str, ...] = DEVICES  # devices to run; cuda cases skip without a GPU
    models: tuple[str, ...] = tuple(list_models())  # registry names
    batch_sizes: tuple[int, ...] = (64, 256, 1024)  # training and inference batch sizes
    precisions: tuple[str, ...] | None = None  # fp32 and/or bf16 autocast (None: fp32, plus
    #                                              bf16 on each device that runs it natively)
    rounds: int = 5  # timed rounds per case, after one uncounted cold round (5: enough for
    #                  compare's Mann-Whitney test to reach p < 0.05)
    quick: bool = False  # a few thousand images and one round per case
    label: str = dataclasses.field(default_factory=socket.gethostname)  # machine label
    root: str | None = None  # MNIST root (None: $MNIST_ROOT or ./datasets)

    def precisions_for(self, device: str) -> tuple[str, ...]:
        """The precisions this run times on `device`."""
        return self.precisions or default_precisions(device)

    @property
    def train_samples(self) -> int | None:
        return QUICK_TRAIN if self.quick else None

    @property
    def test_samples(self) -> int | None:
        return QUICK_TEST if self.quick else None


@dataclass(frozen=True)
class Case:
    operation: str  # train | infer | tta
    model: str  # registry name
    device: str  # cpu | cuda
    batch_size: int  # images per step
    precision: str = "fp32"  # fp32 | bf16 autocast
    loader: str = "resident"  # resident tensors | seed (DataLoader + ToTensor)
    variant: str = "tuned"  # tuned (TUNED's knobs), plain (NCHW, torch's defaults), graphs
    #                         (tuned + cuda_graphs) or KNOBS joined by "+"

    @property
    def id(self) -> str:
        parts = [self.operation, self.model, self.device, f"bs{self.batch_size}"]
        parts += [self.precision] if self.precision != "fp32" else []
        parts += ["seed"] if self.loader == "seed" else [] if self.variant == "tuned" else [self.variant]
        return "-".join(parts)

    @property
    def group(self) -> str:
        return f"{self.operation} {self.model} {self.device}"

    @property
    def knobs(self) -> set[str]:
        return set(NAMED[self.variant] if self.variant in NAMED else self.variant.split("+"))

    def config(self, seed: int = 0) -> TrainConfig:
        knobs = self.knobs
        unknown = knobs - set(KNOBS)
        if unknown:
            raise ValueError(f"unknown variant knobs {sorted(unknown)}; choose from {', '.join(KNOBS)}")
        return TrainConfig(model=self.model, batch_size=self.batch_size, device=self.device,
                           precision=self.precision, loader=self.loader, seed=seed,
                           channels_last="channels_last" in knobs, fused="fused" in knobs,
                           compile="compile" in knobs, relu_first="relu_first" in knobs,
                           cuda_graphs="cuda_graphs" in knobs)


def cases(opts: BenchOptions, operation: str) -> list[Case]:
    """Every case of one operation for these options, in a stable order."""
    out = []
    for model in opts.models:
        for device in opts.devices:
            variants = ("tuned", "graphs") if device == "cuda" and operation != "infer" else ("tuned",)
            precisions = opts.precisions_for(device)
            if operation == "tta":  # the recipe in bf16 where the run has it, else in fp32
                recipe = TTA[model][0]
                precision = recipe.precision if recipe.precision in precisions else "fp32"
                out += [Case("tta", model, device, recipe.batch_size, precision, variant=v)
                        for v in variants]
                continue
            for bs in opts.batch_sizes:
                out += [Case(operation, model, device, bs, p, variant=v)
                        for p in precisions for v in variants]
                if operation == "train" and bs == 64:  # the notebook's loop, for comparison
                    out.append(Case("train", model, device, bs, loader="seed", variant="plain"))
                if operation == "train" and bs == 256:  # a plain eager loop on resident data
                    out.append(Case("train", model, device, bs, variant="plain"))
    return out


def skip_reason(case: Case, opts: BenchOptions) -> str | None:
    """Why a case cannot run here, or None."""
    if case.device == "cuda" and not torch.cuda.is_available():
        return "CUDA not available"
    if "cuda_graphs" in case.knobs and case.device != "cuda":
        return "CUDA graphs need a CUDA device"
    if case.precision == "bf16" and case.device == "cuda" and not torch.cuda.is_bf16_supported():
        return "bf16 not supported on this GPU"
    if case.operation == "tta" and opts.quick:
        return "time to accuracy needs the full dataset; run without --quick"
    if case.operation != "infer":
        try:
            check_memory(case.config(), torch.device(case.device))
        except ValueError as exc:
            return str(exc)
    return None


@dataclass
class Data:
    """Resident splits on one device, loaded once per session."""

    train: Split
    test: Split

    @classmethod
    def load(cls, opts: BenchOptions, device: str) -> "Data":
        return cls(load_split(opts.root, True, device).take(opts.train_samples),
                   load_split(opts.root, False, device).take(opts.test_samples))


class Run:
    """One case: a fresh model per round (setup), the timed target, and what it records."""

    def __init__(self, case: Case, opts: BenchOptions, data: Data):
        self.case, self.opts, self.data = case, opts, data
        self.device = torch.device(case.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # autotune conv kernels; the cold round pays for it
        self.inner: list[float] = []  # the target's own synchronized seconds per round
        self.result: dict = {}  # the last round's train_epoch or train_to_accuracy result
        self.tta: list[dict] = []  # every time-to-accuracy round's result, one per seed
        self.seed = 0

    @cached_property
    def batches(self):
        if self.case.loader == "seed":
            return seed_loader(self.opts.root, True, self.case.batch_size, self.opts.train_samples)
        return ResidentLoader(self.data.train, self.case.batch_size, seed=0)

    @property
    def samples(self) -> int:
        return len(self.data.test if self.case.operation == "infer" else self.data.train)

    def setup(self) -> None:
        cfg = self.case.config(self.seed)
        if self.case.operation == "tta":
            recipe = TTA[self.case.model][0]
            cfg = dataclasses.replace(recipe, device=self.case.device, seed=self.seed,
                                      precision=self.case.precision, cuda_graphs=cfg.cuda_graphs)
            self.batches.generator.manual_seed(self.seed)  # each seed its own batch order too
            self.seed += 1
        self.model, self.opt, self.sched = build(cfg, self.device, len(self.batches))
        self.cfg = cfg
        # train cases capture here, untimed like building the model; tta counts its capture
        train = self.case.operation == "train"
        self.graph = graphed(self.model, self.opt, cfg, len(self.batches)) if train else None
        sync(self.device)

    def target(self) -> None:
        start = time.perf_counter()
        c = self.case
        if c.operation == "train":
            self.result = train_epoch(self.model, self.batches, self.opt, self.device, c.precision,
                                      graph=self.graph)
        elif c.operation == "infer":
            infer(self.model, self.data.test.x, c.batch_size, c.precision)
        else:
            test = ResidentLoader(self.data.test, EVAL_BATCH, shuffle=False)
            self.result = train_to_accuracy(self.model, self.opt, self.sched, self.batches, test,
                                            self.device, self.cfg, TTA[c.model][1])
            self.tta.append(self.result)
        sync(self.device)
        self.inner.append(time.perf_counter() - start)

    def cold_round(self) -> float:
        """Time one round from a fresh model (lazy init, autotune) that is not counted."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        self.setup()
        _, seconds = timed(self.target, self.device)
        self.inner.clear()
        self.seed, self.tta = 0, []
        return seconds

    def extra_info(self, median: float | None, cold: float) -> dict:
        """Every axis and derived figure of this case, for benchmark.extra_info."""
        c, model = self.case, create_model(self.case.model)
        median = median or statistics.median(self.inner)
        macs = macs_per_sample(model)
        info = {"model": c.model, "device": c.device, "operation": c.operation,
                "batch_size": c.batch_size, "loader": c.loader, "variant": c.variant,
                "precision": c.precision, "native": c.precision == "fp32" or native_bf16(c.device),
                "samples": self.samples,
                "params": count_params(model), "macs_per_sample": macs,
                "peak_rss_mb": peak_rss_mb(), "torch_threads": torch.get_num_threads(),
                "dtype": "bfloat16 autocast" if c.precision == "bf16" else "float32",
                "cold_seconds": round(cold, 4)}
        if c.operation != "tta":
            flops = 2 * (training_macs_per_sample(model) if c.operation == "train" else macs)
            info["flops_per_sample"] = flops
            info["samples_per_second"] = round(self.samples / median, 1)
            info["gflops"] = round(flops * self.samples / median / 1e9, 2)
        if self.device.type == "cuda":
            info["cuda_peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        if c.operation == "train":
            test = (seed_loader(self.opts.root, False, EVAL_BATCH, self.opts.test_samples)
                    if c.loader == "seed" else ResidentLoader(self.data.test, EVAL_BATCH, shuffle=False))
            info["final_loss"] = round(self.result["loss"], 5)
            info["test_accuracy"] = evaluate(self.model, test, self.device, c.precision)["accuracy"]
        if c.operation == "tta":
            info.update(_tta_info(self.tta, self.cfg, TTA[c.model][1]))
        info["harness_overhead_fraction"] = round(max(median - statistics.median(self.inner), 0) / median, 6)
        return info


def _tta_info(results: list[dict], cfg: TrainConfig, target: float) -> dict:
    return {"target_accuracy": target, "seeds": len(results),
            "reached": [r["reached"] for r in results],
            "epochs_to_target": [r["epochs"] for r in results],
            "accuracy_at_stop": [r["accuracy"] for r in results],
            "recipe": {k: getattr(cfg, k) for k in ("epochs", "batch_size", "lr", "optimizer",
                                                   "schedule", "precision")}}


def machine_facts(opts: BenchOptions, say=lambda line: None) -> dict:
    """machine_info["mnist_bench"]: label, hardware, versions, and the matmul probe of each
    precision the run used on each device present."""
    probe = {d: opts.precisions_for(d) for d in opts.devices if d == "cpu" or torch.cuda.is_available()}
    return {**machine_info(opts.label, probe, say), "quick": opts.quick, "rounds": opts.rounds}


def _choices(kind: str, known) -> callable:
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(s.strip() for s in text.split(",") if s.strip())
        bad = [i for i in items if i not in known]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {', '.join(bad) or repr(text)}; choose from {', '.join(known)}")
        return items
    return parse


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"batch sizes must be positive integers separated by commas, e.g. 64,256,1024 (got {text!r})")
    return sizes


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"rounds must be a positive integer (got {text!r})")
    return int(text)


def add_options(parser) -> None:
    """The matrix options, for the root conftest's pytest_addoption."""
    d = BenchOptions()
    group = parser.getgroup("mnist-bench")
    group.addoption("--devices", type=_choices("device", DEVICES), default=d.devices,
                    help="comma-separated: cpu,cuda (default both; cuda skips without a GPU)")
    group.addoption("--models", type=_choices("model", list_models()), default=d.models,
                    help=f"comma-separated: {','.join(list_models())}")
    group.addoption("--batch-sizes", type=_batch_sizes, default=d.batch_sizes,
                    help="comma-separated positive integers (default 64,256,1024)")
    group.addoption("--precisions", type=_choices("precision", PRECISIONS), default=d.precisions,
                    help="comma-separated: fp32,bf16 (default: fp32, plus bf16 on each device "
                         "that runs it natively)")
    group.addoption("--rounds", type=_positive, default=None,
                    help="timed rounds per case (default 5, or 1 with --quick)")
    group.addoption("--machine-label", default=None, help="label for this machine (default: hostname)")
    group.addoption("--quick", action="store_true",
                    help=f"{QUICK_TRAIN} training and {QUICK_TEST} test images, one round per case")


def options(config) -> BenchOptions:
    """BenchOptions from a pytest config."""
    quick = config.getoption("--quick")
    rounds = config.getoption("--rounds") or (1 if quick else BenchOptions.rounds)
    images = QUICK_TRAIN if quick else TRAIN_SIZE
    too_big = [b for b in config.getoption("--batch-sizes") if b > images]
    if too_big:
        raise pytest.UsageError(f"--batch-sizes: {too_big[0]:,} is more than the {images:,} training "
                                f"images of a {'quick ' * quick}round; choose at most {images}")
    return BenchOptions(devices=config.getoption("--devices"), models=config.getoption("--models"),
                        batch_sizes=config.getoption("--batch-sizes"),
                        precisions=config.getoption("--precisions"), rounds=rounds, quick=quick,
                        label=config.getoption("--machine-label") or socket.gethostname())


def expected_ids(opts: BenchOptions, device: str) -> list[str]:
    """Ids of every case a run with these options records on `device` (tta only in full runs)."""
    ops = ("train", "infer") if opts.quick else OPERATIONS
    return [c.id for op in ops for c in cases(opts, op) if c.device == device]


def missing_cases(result: dict, opts: BenchOptions, device: str = "cpu") -> list[str]:
    """Expected case ids absent from a pytest-benchmark JSON dict."""
    present = {b["param"] for b in result.get("benchmarks", [])}
    return [i for i in expected_ids(opts, device) if i not in present]


def write_partial(config, path: Path) -> None:
    """The cases finished so far, as pytest-benchmark would write them, to PATH.partial:
    what survives a crash or a kill that leaves pytest-benchmark no time to write PATH.
    Machine facts without the probe; `partial: true` says so."""
    session = getattr(config, "_benchmarksession", None)  # pytest-benchmark's own session
    if session is None or not drop_unstarted(session):
        return
    cache = config.stash.setdefault(_PARTIAL, {})
    if not cache:
        cache["machine_info"] = {"mnist_bench": {**machine_info(options(config).label), "partial": True}}
        cache["commit_info"] = config.hook.pytest_benchmark_generate_commit_info(config=config)
    doc = config.hook.pytest_benchmark_generate_json(
        config=config, benchmarks=session.benchmarks, include_data=True, **cache)
    write_files({path.with_name(path.name + ".partial"): json.dumps(doc, default=str).encode()})


_PARTIAL = pytest.StashKey[dict]()


def drop_unstarted(session) -> list:
    """pytest-benchmark's list without a case stopped (Ctrl-C) before its first round,
    whose empty statistics would crash pytest-benchmark's own JSON writer."""
    session.benchmarks[:] = [b for b in session.benchmarks if b.stats.data]
    return session.benchmarks
