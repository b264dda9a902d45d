"""The benchmark matrix: what a case is, which cases a run holds, which of them can run here.

    from mnist_models.harness.cases import BenchOptions, cases
    [c.id for c in cases(BenchOptions(quick=True), "train")]   # "train-cnn-cpu-bs64", ...

A case's variant is a set of TrainConfig overrides (`Case.config`), applied with
dataclasses.replace to a plain eager config; the `relu_first` knob picks the model's
registered variant. No torch at import time.
"""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass
from typing import Iterable, NamedTuple

from ..core.config import MODEL_VARIANTS, MODELS, NOTEBOOK, PRECISIONS, TrainConfig
from ..errors import UsageError
from ..machine.devices import (
    ACCEL,
    CHOICES,
    absent,
    compile_unavailable,
    fused_optimizer,
    matrix_engine,
    native_bf16,
    resolve,
)
from ..reporting.schema import OPERATIONS

SCALING = ("strong", "weak")  # ddp: the global batch fixed (split across ranks), or the per-rank batch
DDP_BATCH = 256  # ddp cases' batch: the global batch (strong) or the per-rank one (weak)
BENCH_DEVICES = CHOICES  # what --devices accepts: cpu, accel (the accelerator here), cuda, mps, xpu
QUICK_TRAIN, QUICK_TEST = 4096, 2048  # images per split with --quick
# What each knob of a variant sets; relu_first picks the model's registered variant.
KNOBS = {
    "channels_last": {"channels_last": True},
    "fused": {"fused": True},
    "compile": {"compile": True},
    "cuda_graphs": {"cuda_graphs": True},
    "relu_first": {},
    "bf16_weights": {"bf16_weights": True},
}
# Variants by name: tuned is what measured fastest (results/fast/), plain is torch's defaults,
# compiled is tuned under torch.compile (what it buys on each machine, its compile in the cold round).
# fused acts on training, bf16_weights on inference in bf16 (Case.config).
TUNED = ("channels_last", "fused", "bf16_weights")
NAMED = {"plain": (), "tuned": TUNED, "graphs": (*TUNED, "cuda_graphs"), "compiled": (*TUNED, "compile")}
COMPILED_BATCH = 256  # the one batch size the compiled variant runs at: each case pays a compile
# (operation, model) whose tuned path compiles on a cpu with a matrix engine, where it measured
# faster compiled in both precisions at every batch size (results/fast/xeon-amx-2core-b/)
COMPILED_TUNED = {("infer", "cnn")}


class Recipe(NamedTuple):
    config: TrainConfig  # how to train
    target: float  # the test accuracy that stops the clock


RECIPE_FIELDS = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "schedule",
    "cycle_epochs",
    "label_smoothing",
    "dropout",
    "precision",
    "eval_from",
    "eval_every",
)


def recipe_fields(cfg: TrainConfig) -> dict:
    """What a time-to-accuracy result records of its recipe (reporting.schema.recipe_name
    names it in one line)."""
    return {k: getattr(cfg, k) for k in RECIPE_FIELDS}


# Time to accuracy (DAWNBench): the fastest recipe found per model, and its target. The
# learning rate makes one cycle that has annealed by cycle_epochs and then holds; label
# smoothing, and for the CNN no dropout, bring a seed to the target within about an epoch
# and a third, and evaluations every tenth of an epoch from about where seeds first reach it
# stop the run there (experiments/tta.py; results/fast/<machine>/tta.md). The MLP's recipe is
# fp32: on the cpus with bf16 measured, the MLP trains slower in bf16 at batch 64 and 256.
TTA = {
    "mlp": Recipe(
        TrainConfig(
            model="mlp",
            epochs=2,
            batch_size=128,
            lr=1e-2,
            schedule="onecycle",
            cycle_epochs=1.6,
            label_smoothing=0.1,
            precision="fp32",
            eval_from=1.2,
            eval_every=0.1,
        ),
        0.975,
    ),
    "cnn": Recipe(
        TrainConfig(
            model="cnn",
            epochs=2,
            batch_size=256,
            lr=4e-2,
            schedule="onecycle",
            cycle_epochs=1.4,
            label_smoothing=0.1,
            dropout=0.0,
            precision="bf16",
            eval_from=1.1,
            eval_every=0.1,
        ),
        0.990,
    ),
}


def recipe_precision(recipe: TrainConfig, precisions: Iterable[str]) -> str:
    """The precision a time-to-accuracy recipe runs in: its own where the run has it, else fp32."""
    return recipe.precision if recipe.precision in precisions else "fp32"


def default_precisions(device: str, flags: Iterable[str] | None = None) -> tuple[str, ...]:
    """The precisions a default run uses on `device`: fp32, and bf16 where it is native.

    `flags`: the CPU flags to decide from (default: this machine's), for device "cpu".
    """
    return PRECISIONS if native_bf16(device, flags) else ("fp32",)


@dataclass(frozen=True)
class BenchOptions:
    devices: tuple[str, ...] = ("cpu", ACCEL)  # devices to run; an absent accelerator's cases skip
    models: tuple[str, ...] = MODELS  # registry names
    batch_sizes: tuple[int, ...] = (64, 256, 1024)  # training and inference batch sizes
    precisions: tuple[str, ...] | None = None  # fp32 and/or bf16 autocast (None: fp32, plus
    #                                              bf16 on each device that runs it natively)
    rounds: int = 5  # timed rounds per case, after one uncounted cold round (5: enough for
    #                  compare's Mann-Whitney test to reach p < 0.05)
    quick: bool = False  # a few thousand images and one round per case
    label: str = dataclasses.field(default_factory=socket.gethostname)  # machine label
    root: str | None = None  # MNIST root (None: $MNIST_ROOT or ./datasets)
    world_sizes: tuple[int, ...] | None = None  # ddp ranks (None: 1, 2 on the cpu; 1..GPUs, powers of 2)

    def world_sizes_for(self, device: str) -> tuple[int, ...]:
        """The ddp world sizes this run times on `device`."""
        if self.world_sizes:
            return self.world_sizes
        if device != "cuda":
            return (1, 2)
        import torch

        return tuple(2**k for k in range(8) if 2**k <= max(1, torch.cuda.device_count()))

    def precisions_for(self, device: str) -> tuple[str, ...]:
        """The precisions this run times on `device`."""
        return self.precisions or default_precisions(device)

    def probe_plan(self) -> dict[str, tuple[str, ...]]:
        """The matmul probe's work: each device present, in the precisions this run uses there."""
        devices = dict.fromkeys(resolve(d) for d in self.devices)
        return {d: self.precisions_for(d) for d in devices if not absent(d)}

    @property
    def train_samples(self) -> int | None:
        return QUICK_TRAIN if self.quick else None

    @property
    def test_samples(self) -> int | None:
        return QUICK_TEST if self.quick else None


@dataclass(frozen=True)
class Case:
    operation: str  # train | infer | tta | ddp
    model: str  # registry name
    device: str  # cpu, or an accelerator's type (cuda, mps, xpu); accel where there is none
    batch_size: int  # images per step
    precision: str = "fp32"  # fp32 | bf16 autocast
    loader: str = "resident"  # resident tensors | seed (NOTEBOOK: DataLoader + ToTensor)
    variant: str = "tuned"  # a name in NAMED, or KNOBS joined by "+"
    world_size: int = 1  # ddp: ranks
    scaling: str = ""  # ddp: strong | weak (SCALING)
    threads: int | None = None  # ddp: torch threads per rank (None: 1)

    @property
    def id(self) -> str:
        parts = [self.operation, self.model, self.device, f"bs{self.batch_size}"]
        if self.operation == "ddp":
            threads = [f"t{self.threads}"] if self.threads else []
            return "-".join([*parts, f"w{self.world_size}", self.scaling, *threads])
        parts += [self.precision] if self.precision != "fp32" else []
        parts += [NOTEBOOK] if self.loader == NOTEBOOK else [] if self.variant == "tuned" else [self.variant]
        return "-".join(parts)

    @property
    def group(self) -> str:
        return f"{self.operation} {self.model} {self.device}"

    @property
    def knobs(self) -> tuple[str, ...]:
        return NAMED[self.variant] if self.variant in NAMED else tuple(self.variant.split("+"))

    def overrides(self) -> dict:
        """The TrainConfig fields this case's variant sets, over a plain eager config."""
        unknown = [k for k in self.knobs if k not in KNOBS]
        if unknown:
            raise UsageError(f"unknown variant knobs {unknown}; choose from {', '.join(KNOBS)}")
        fields = {field: value for knob in self.knobs for field, value in KNOBS[knob].items()}
        if "relu_first" in self.knobs:
            name = f"{self.model}_relu_first"
            if name not in MODEL_VARIANTS:
                raise UsageError(f"relu_first is a variant of the cnn only, not of {self.model}")
            fields["model"] = name
        return fields

    def config(self, opts: BenchOptions | None = None) -> TrainConfig:
        """How this case trains: its recipe (tta) or its axes, with its variant's overrides."""
        opts = opts or BenchOptions()
        axes = dict(
            device=self.device,
            precision=self.precision,
            root=opts.root,
            train_samples=opts.train_samples,
            test_samples=opts.test_samples,
        )
        batch = self.batch_size * (self.world_size if self.scaling == "weak" else 1)  # the global batch
        base = (
            TTA[self.model].config
            if self.operation == "tta"
            else TrainConfig(model=self.model, batch_size=batch, loader=self.loader)
        )
        plain = dataclasses.replace(base, channels_last=False, fused=False, **axes)
        knobs = self.overrides()
        # fused optimizer kernels exist for some devices only: elsewhere the tuned variant runs
        # unfused; bf16 weights are inference's (training steps fp32 weights under autocast)
        knobs.update(
            fused=knobs.get("fused", False) and fused_optimizer(self.device),
            bf16_weights=knobs.get("bf16_weights", False) and self.operation == "infer" and self.precision == "bf16",
            compile=knobs.get("compile", False) or self.tuned_compiles and not compile_unavailable(self.device),
        )
        return dataclasses.replace(plain, **knobs)

    @property
    def compiles(self) -> bool:
        """Does this case ask for torch.compile, by its knob or the tuned path's rule? No torch
        here; config() runs a tuned case eager where inductor cannot build."""
        return "compile" in self.knobs or self.tuned_compiles

    @property
    def tuned_compiles(self) -> bool:
        """Is this a tuned case the rule compiles (COMPILED_TUNED, on a matrix engine)? No torch here."""
        return self.variant == "tuned" and (self.operation, self.model) in COMPILED_TUNED and matrix_engine(self.device)


def cases(opts: BenchOptions, operation: str) -> list[Case]:
    """Every case of one operation for these options, in a stable order."""
    out = []
    devices = list(dict.fromkeys(resolve(d) for d in opts.devices))  # accel: the accelerator's name
    for model in opts.models:
        for device in devices:
            variants = ("tuned", "graphs") if device == "cuda" and operation != "infer" else ("tuned",)
            precisions = opts.precisions_for(device)
            if operation == "ddp":
                out += _ddp_cases(opts, model, device)
                continue
            if operation == "tta":
                recipe = TTA[model].config
                out += [
                    Case("tta", model, device, recipe.batch_size, recipe_precision(recipe, precisions), variant=v)
                    for v in variants
                ]
                continue
            for bs in opts.batch_sizes:
                out += [Case(operation, model, device, bs, p, variant=v) for p in precisions for v in variants]
                if operation == "train" and bs == 64:  # the notebook's loop, for comparison
                    out.append(Case("train", model, device, bs, loader=NOTEBOOK, variant="plain"))
                if operation == "train" and bs == 256:  # a plain eager loop on resident data
                    out.append(Case("train", model, device, bs, variant="plain"))
                if bs == COMPILED_BATCH:  # not where the tuned case compiles already
                    out += [
                        Case(operation, model, device, bs, p, variant="compiled")
                        for p in precisions
                        if not Case(operation, model, device, bs, p).tuned_compiles
                    ]
    return out


def _ddp_cases(opts: BenchOptions, model: str, device: str) -> list[Case]:
    """A model's data-parallel cases on a device: every world size, strong and weak beyond
    one rank, and on the cpu one rank with two threads beside them (what two ranks cost
    against two threads). Quick runs keep the MLP's, so CI exercises the path."""
    if opts.quick and model != "mlp":
        return []
    out = [
        Case("ddp", model, device, DDP_BATCH, world_size=w, scaling=s)
        for w in opts.world_sizes_for(device)
        for s in (SCALING if w > 1 else SCALING[:1])
    ]
    if device == "cpu" and not opts.quick:
        out.append(Case("ddp", model, device, DDP_BATCH, world_size=1, scaling="strong", threads=2))
    return out


def skip_reason(case: Case, opts: BenchOptions) -> str | None:
    """Why a case cannot run here, or None: checked before a case (or a rank) starts."""
    import torch

    from ..core.train import check_memory

    if absent(case.device):  # an accelerator that is not here
        return absent(case.device)
    if "cuda_graphs" in case.knobs and case.device != "cuda":
        return "CUDA graphs need a CUDA device"
    if "compile" in case.knobs and (why := compile_unavailable(case.device)):
        return why
    if case.operation == "tta" and opts.quick:
        return "time to accuracy needs the full dataset; run without --quick"
    try:
        cfg = case.config(opts)
        if case.operation == "ddp":
            from ..distributed.launch import room
            from ..distributed.training import per_rank

            per_rank(cfg, case.world_size)  # the global batch splits evenly across the ranks
            return room(case.device, case.world_size, case.threads or 1)
        if case.operation != "infer":
            check_memory(cfg, torch.device(case.device))
    except UsageError as exc:
        return str(exc)
    return None


def expected_ids(opts: BenchOptions, device: str) -> list[str]:
    """Ids of every case a run with these options records on `device` (tta only in full runs)."""
    ops = ("train", "infer", "ddp") if opts.quick else OPERATIONS
    return [c.id for op in ops for c in cases(opts, op) if c.device == device]


def missing_cases(result: dict, opts: BenchOptions, device: str = "cpu") -> list[str]:
    """Expected case ids absent from a pytest-benchmark JSON dict (CI's completeness check)."""
    present = {b["param"] for b in result.get("benchmarks", [])}
    return [i for i in expected_ids(opts, device) if i not in present]
