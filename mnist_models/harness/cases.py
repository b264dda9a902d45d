"""The benchmark matrix: what a case is, which cases a run holds, which of them can run here.

    from mnist_models.harness.cases import BenchOptions, cases
    [c.id for c in cases(BenchOptions(quick=True), "train")]   # "train-cnn-cpu-bs64", ...

Each operation's cases come from its plan (PLANS: which cases, how each trains, the timer
that times a round; the built-in ones in plans.py), under the operation's name that
reporting/fields.py declares. A
case's variant is a set of TrainConfig overrides applied with dataclasses.replace to a plain
eager config; the `relu_first` knob picks the model's registered variant. What the tuned
path does depends on the device's class (machine.devices.DeviceClass), passed in or this
machine's. No torch at import time.
"""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass

from ..core.config import NOTEBOOK, PRECISIONS, TrainConfig
from ..core.registry import list_models, model_spec
from ..errors import UsageError
from ..machine.devices import ACCEL, CHOICES, DeviceClass, absent, compile_unavailable, device_class, resolve

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
# fused acts on training, bf16_weights on inference in bf16 (config()).
TUNED = ("channels_last", "fused", "bf16_weights")
NAMED = {"plain": (), "tuned": TUNED, "graphs": (*TUNED, "cuda_graphs"), "compiled": (*TUNED, "compile")}
COMPILED_BATCH = 256  # the one batch size the compiled variant runs at: each case pays a compile
# (operation, model) whose tuned path compiles on a cpu with a matrix engine, where it measured
# faster compiled in both precisions at every batch size (results/fast/xeon-amx-2core-b/)
COMPILED_TUNED = {("infer", "cnn")}


def default_precisions(dc: DeviceClass) -> tuple[str, ...]:
    """The precisions a default run uses on a device of this class: fp32, and bf16 where it is native."""
    return PRECISIONS if dc.bf16 else ("fp32",)


@dataclass(frozen=True)
class BenchOptions:
    devices: tuple[str, ...] = ("cpu", ACCEL)  # devices to run; an absent accelerator's cases skip
    models: tuple[str, ...] = dataclasses.field(default_factory=list_models)  # registry names
    batch_sizes: tuple[int, ...] = (64, 256, 1024)  # training and inference batch sizes
    precisions: tuple[str, ...] | None = None  # fp32 and/or bf16 autocast (None: fp32, plus
    #                                              bf16 on each device that runs it natively)
    rounds: int = 5  # timed rounds per case, after one uncounted cold round
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
        import torch  # noqa: PLC0415 (torch: the matrix is built without it)

        return tuple(2**k for k in range(8) if 2**k <= max(1, torch.cuda.device_count()))

    def precisions_for(self, dc: DeviceClass) -> tuple[str, ...]:
        """The precisions this run times on a device of class `dc`."""
        return self.precisions or default_precisions(dc)

    def probe_plan(self) -> dict[str, tuple[str, ...]]:
        """The matmul probe's work: each device present, in the precisions this run uses there."""
        devices = dict.fromkeys(resolve(d) for d in self.devices)
        return {d: self.precisions_for(device_class(d)) for d in devices if not absent(d)}

    @property
    def train_samples(self) -> int | None:
        return QUICK_TRAIN if self.quick else None

    @property
    def test_samples(self) -> int | None:
        return QUICK_TEST if self.quick else None


@dataclass(frozen=True)
class Case:
    operation: str  # a name in PLANS (train | infer | tta | ddp)
    model: str  # registry name
    device: str  # cpu, or an accelerator's type (cuda, mps, xpu); accel where there is none
    batch_size: int  # images per step
    precision: str = "fp32"  # fp32 | bf16 autocast
    loader: str = "resident"  # resident tensors | notebook (NOTEBOOK: DataLoader + ToTensor)
    variant: str = "tuned"  # a name in NAMED, or KNOBS joined by "+"
    world_size: int = 1  # ddp: ranks
    scaling: str = ""  # ddp: strong | weak (SCALING)
    threads: int | None = None  # ddp: torch threads per rank (None: 1)

    @property
    def id(self) -> str:
        parts = [self.operation, self.model, self.device, f"bs{self.batch_size}"]
        if self.scaling:
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
        fields: dict[str, bool | str] = {field: value for knob in self.knobs for field, value in KNOBS[knob].items()}
        if "relu_first" in self.knobs:
            name = f"{self.model}_relu_first"
            if model_spec(self.model).variant_of is not None or name not in list_models(variants=True):
                raise UsageError(f"relu_first is a variant of the cnn only, not of {self.model}")
            fields["model"] = name
        return fields

    def config(self, opts: BenchOptions | None = None, dc: DeviceClass | None = None) -> TrainConfig:
        """How this case trains: its operation's base config, its axes and its variant's
        overrides, as the tuned path runs on a device of class `dc` (default: this machine's)."""
        opts, dc = opts or BenchOptions(), dc or device_class(self.device)
        plan = PLANS[self.operation]
        plain = dataclasses.replace(  # its axes, over a plain eager config
            plan.base_config(self),
            channels_last=False,
            fused=False,
            device=self.device,
            precision=self.precision,
            root=opts.root,
            train_samples=opts.train_samples,
            test_samples=opts.test_samples,
        )
        knobs = self.overrides()
        # fused optimizer kernels exist for some devices only: elsewhere the tuned variant runs
        # unfused; bf16 weights are inference's (training steps fp32 weights under autocast)
        knobs.update(
            fused=knobs.get("fused", False) and plan.trains and dc.fused(),
            bf16_weights=knobs.get("bf16_weights", False) and plan.casts_weights and self.precision == "bf16",
            compile=knobs.get("compile", False) or self.tuned_compiles(dc) and dc.compiles(),
        )
        return dataclasses.replace(plain, **knobs)

    @property
    def compiles(self) -> bool:
        """Does this case ask for torch.compile here, by its knob or the tuned path's rule? No
        torch here; config() runs a tuned case eager where inductor cannot build."""
        return "compile" in self.knobs or self.tuned_compiles(device_class(self.device))

    def tuned_compiles(self, dc: DeviceClass) -> bool:
        """Is this a tuned case the rule compiles on class `dc` (COMPILED_TUNED, on a matrix engine)?"""
        return self.variant == "tuned" and (self.operation, self.model) in COMPILED_TUNED and dc.matrix_engine


class CasePlan:
    """One operation's cases on a device, how each trains, and the timer that times a round."""

    name = ""  # the operation, as reporting.fields.OPERATIONS declares it
    timer = ""  # "module:Class" of its timer (harness/operations.py), imported when a case runs
    quick = True  # it runs in --quick runs
    trains = True  # a round trains: the memory check first, and fused optimizer kernels apply
    casts_weights = False  # its bf16 cases cast the weights to bf16 instead of autocasting
    resident = True  # its timer uses the process's resident splits (a data-parallel one's ranks load their own)

    def cases(self, opts: BenchOptions, model: str, dc: DeviceClass) -> list[Case]:
        raise NotImplementedError

    def base_config(self, case: Case) -> TrainConfig:
        """The case's config before its axes and variant: the model at the case's batch."""
        return TrainConfig(model=case.model, batch_size=case.batch_size, loader=case.loader)

    def notes(self, opts: BenchOptions) -> list[str]:
        """What a run with these options leaves out of this operation, and why (said once)."""
        return []

    def why_not(self, case: Case, cfg: TrainConfig) -> str | None:
        """Why this case cannot run here beyond the shared checks, or None (UsageError: why)."""
        if self.trains:  # a case is about to run: torch is here anyway
            import torch  # noqa: PLC0415 (torch: the matrix is built without it)

            from ..core.train import check_memory  # noqa: PLC0415 (torch: the matrix is built without it)

            check_memory(cfg, torch.device(case.device))
        return None

    @staticmethod
    def variants(dc: DeviceClass, training: bool) -> tuple[str, ...]:
        """The variants a case runs in: tuned, and on cuda a training's CUDA graph too."""
        return ("tuned", "graphs") if dc.device == "cuda" and training else ("tuned",)


PLANS: dict[str, CasePlan] = {}


def register_plan(plan: CasePlan) -> CasePlan:
    """Add an operation's plan (its name must be declared in reporting.fields.OPERATIONS too)."""
    PLANS[plan.name] = plan
    return plan


def unregister_plan(name: str) -> None:
    """Forget an operation's plan (a test's toy one)."""
    PLANS.pop(name, None)


def cases(opts: BenchOptions, operation: str, classes: dict[str, DeviceClass] | None = None) -> list[Case]:
    """Every case of one operation for these options, in a stable order; `classes`: the
    device classes to plan for, by device (default: this machine's)."""
    plan, out = PLANS[operation], []
    devices = list(dict.fromkeys(resolve(d) for d in opts.devices))  # accel: the accelerator's name
    for model in opts.models:
        for device in devices:
            out += plan.cases(opts, model, (classes or {}).get(device) or device_class(device))
    return out


def all_cases(opts: BenchOptions) -> list[Case]:
    """Every case of every operation a run with these options holds (--quick: the quick ones)."""
    return [c for name, plan in PLANS.items() if plan.quick or not opts.quick for c in cases(opts, name)]


def skip_reason(case: Case, opts: BenchOptions) -> str | None:
    """Why a case cannot run here, or None: checked before a case (or a rank) starts."""
    plan = PLANS[case.operation]
    if absent(case.device):  # an accelerator that is not here
        return absent(case.device)
    if "cuda_graphs" in case.knobs and case.device != "cuda":
        return "CUDA graphs need a CUDA device"
    if "compile" in case.knobs and not device_class(case.device).compiles():
        return compile_unavailable(case.device)
    if opts.quick and not plan.quick:
        return f"{case.operation} needs the full dataset; run without --quick"
    try:
        return plan.why_not(case, case.config(opts))
    except UsageError as exc:
        return str(exc)


def expected_ids(opts: BenchOptions, device: str) -> list[str]:
    """Ids of every case a run with these options records on `device` (tta only in full runs)."""
    return [c.id for c in all_cases(opts) if c.device == device]


def missing_cases(result: dict, opts: BenchOptions, device: str = "cpu") -> list[str]:
    """Expected case ids absent from a pytest-benchmark JSON dict (CI's completeness check)."""
    present = {b["param"] for b in result.get("benchmarks", [])}
    return [i for i in expected_ids(opts, device) if i not in present]
