"""Side by side: variants of one training case timed in interleaved rounds.

    python -m mnist_models ablate --out results/fast             # about 8 minutes here
    python -m mnist_models ablate --quick --out /tmp/fast        # a smoke run

On a shared machine the speed drifts by tens of percent within minutes, so variants
timed one after the other compare the moments, not the code. Here every round runs
each variant once, in a shuffled order, from a fresh model, and ratios are taken
between medians of rounds that saw the same moments.
"""
from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field

import torch

from .bench import BenchOptions, Case, Data, Run
from .hardware import PRECISIONS, machine_info

TRAIN = "train"


@dataclass(frozen=True)
class Variant:
    name: str  # what the table calls it
    case: Case  # the training case (loader, variant knobs, precision)
    threads: int | None = None  # torch threads for this variant (None: the default)


@dataclass(frozen=True)
class Comparison:
    name: str  # e.g. "mlp bs64"
    baseline: str  # the variant the others are divided by
    variants: tuple[Variant, ...] = field(default=())


def _v(name: str, model: str, bs: int, variant: str = "plain", precision: str = "fp32",
       loader: str = "resident", threads: int | None = None) -> Variant:
    return Variant(name, Case(TRAIN, model, "cpu", bs, precision, loader, variant), threads)


COMPARISONS = (
    Comparison("mlp bs64", "seed loop", (
        _v("seed loop", "mlp", 64, loader="seed"),
        _v("resident, plain", "mlp", 64),
        _v("+ fused adam", "mlp", 64, "fused"),
        _v("+ fused, 1 thread", "mlp", 64, "fused", threads=1),
        _v("+ fused, compile", "mlp", 64, "fused+compile"),
        _v("+ fused, bf16", "mlp", 64, "fused", "bf16"),
    )),
    Comparison("cnn bs256 fp32", "plain NCHW, ReLU then pool", (
        _v("plain NCHW, ReLU then pool", "cnn", 256, "relu_first"),
        _v("+ cl, fused, ReLU then pool", "cnn", 256, "channels_last+fused+relu_first"),
        _v("plain NCHW", "cnn", 256),
        _v("+ channels_last", "cnn", 256, "channels_last"),
        _v("+ fused adam", "cnn", 256, "fused"),
        _v("+ channels_last, fused", "cnn", 256, "channels_last+fused"),
        _v("+ cl, fused, 1 thread", "cnn", 256, "channels_last+fused", threads=1),
        _v("+ cl, fused, compile", "cnn", 256, "channels_last+fused+compile"),
    )),
    Comparison("cnn bs256 bf16", "fp32 cl, fused", (
        _v("fp32 cl, fused", "cnn", 256, "channels_last+fused"),
        _v("bf16 NCHW, fused", "cnn", 256, "fused", "bf16"),
        _v("bf16 cl, fused", "cnn", 256, "channels_last+fused", "bf16"),
    )),
    Comparison("cnn bs1024 bf16", "fp32 cl, fused", (
        _v("fp32 cl, fused", "cnn", 1024, "channels_last+fused"),
        _v("bf16 cl, fused", "cnn", 1024, "channels_last+fused", "bf16"),
    )),
)


def run_comparison(comp: Comparison, opts: BenchOptions, data: Data, rounds: int,
                   seed: int = 0, progress=None) -> list[dict]:
    """Every variant: one cold round, then `rounds` interleaved rounds; one record each."""
    default_threads = torch.get_num_threads()
    runs = {v.name: Run(v.case, opts, data) for v in comp.variants}
    order, cold = list(comp.variants), {}

    def one(v: Variant, first: bool) -> None:
        torch.set_num_threads(v.threads or default_threads)
        try:
            if first:
                cold[v.name] = runs[v.name].cold_round()
            else:
                runs[v.name].setup()
                runs[v.name].target()
        finally:
            torch.set_num_threads(default_threads)

    shuffle = random.Random(seed)
    for r in range(rounds + 1):
        shuffle.shuffle(order)
        for v in order:
            one(v, first=r == 0)
            if progress:
                progress(comp.name, r, v.name)
    return [_record(comp, v, runs[v.name], cold[v.name]) for v in comp.variants]


def _record(comp: Comparison, v: Variant, run: Run, cold: float) -> dict:
    info = run.extra_info(None, cold)
    return {"comparison": comp.name, "baseline": comp.baseline, "variant": v.name,
            "case": v.case.id, "threads": v.threads or torch.get_num_threads(),
            "median": statistics.median(run.inner), "data": run.inner,
            **{k: info[k] for k in ("samples_per_second", "gflops", "test_accuracy",
                                    "final_loss", "cold_seconds", "precision", "samples")}}


def ablate(opts: BenchOptions, rounds: int, progress=None) -> dict:
    """Every comparison on the cpu: {"machine": facts, "records": [...]}."""
    data = Data.load(opts, "cpu")
    records = [r for comp in COMPARISONS
               for r in run_comparison(comp, opts, data, rounds, progress=progress)]
    return {"machine": machine_info(opts.label, probe={"cpu": PRECISIONS}), "rounds": rounds, "quick": opts.quick,
            "records": records}


def profile_table(case: Case, opts: BenchOptions, steps: int = 50, rows: int = 15) -> str:
    """torch.profiler's per-operator table (self CPU time) for `steps` training steps of a case."""
    from torch.profiler import ProfilerActivity, profile
    data = Data.load(opts, case.device)
    run = Run(case, opts, Data(data.train.take(steps * case.batch_size), data.test))
    run.cold_round()
    run.setup()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run.target()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
