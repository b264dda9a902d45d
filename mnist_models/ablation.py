"""Side by side: variants of one training case timed in interleaved rounds.

    python -m mnist_models ablate --out results/fast
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

from .cases import BenchOptions, Case
from .config import NOTEBOOK, PRECISIONS

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


def _v(name: str, model: str, bs: int, variant: str = "plain", threads: int | None = None, **axes) -> Variant:
    """A training variant on the cpu; `axes`: the Case's precision or loader."""
    return Variant(name, Case(TRAIN, model, "cpu", bs, variant=variant, **axes), threads)


SEED_LOOP = _v("seed loop", "mlp", 64, loader=NOTEBOOK)
MLP_BS64 = Comparison("mlp bs64", SEED_LOOP.name, (
    SEED_LOOP,
    _v("resident, plain", "mlp", 64),
    _v("+ fused adam", "mlp", 64, "fused"),
    _v("+ fused, 1 thread", "mlp", 64, "fused", threads=1),
    _v("+ fused, compile", "mlp", 64, "fused+compile"),
    _v("+ fused, bf16", "mlp", 64, "fused", precision="bf16"),
))
NCHW_RELU_FIRST = _v("plain NCHW, ReLU then pool", "cnn", 256, "relu_first")
CNN_FP32 = Comparison("cnn bs256 fp32", NCHW_RELU_FIRST.name, (
    NCHW_RELU_FIRST,
    _v("+ cl, fused, ReLU then pool", "cnn", 256, "channels_last+fused+relu_first"),
    _v("plain NCHW", "cnn", 256),
    _v("+ channels_last", "cnn", 256, "channels_last"),
    _v("+ fused adam", "cnn", 256, "fused"),
    _v("+ channels_last, fused", "cnn", 256, "channels_last+fused"),
    _v("+ cl, fused, 1 thread", "cnn", 256, "channels_last+fused", threads=1),
    _v("+ cl, fused, compile", "cnn", 256, "channels_last+fused+compile"),
))
FP32_TUNED = _v("fp32 cl, fused", "cnn", 256, "channels_last+fused")
BF16_TUNED = _v("bf16 cl, fused", "cnn", 256, "channels_last+fused", precision="bf16")
CNN_BF16 = Comparison("cnn bs256 bf16", FP32_TUNED.name, (
    FP32_TUNED, _v("bf16 NCHW, fused", "cnn", 256, "fused", precision="bf16"), BF16_TUNED))
CNN_BF16_1024 = Comparison("cnn bs1024 bf16", FP32_TUNED.name, (
    _v("fp32 cl, fused", "cnn", 1024, "channels_last+fused"),
    _v("bf16 cl, fused", "cnn", 1024, "channels_last+fused", precision="bf16"),
))
COMPARISONS = (MLP_BS64, CNN_FP32, CNN_BF16, CNN_BF16_1024)


def run_comparison(comp: Comparison, opts: BenchOptions, data, rounds: int, progress=None) -> list[dict]:
    """Every variant: one cold round, then `rounds` interleaved rounds (shuffled, seeded);
    one record each. `data`: runner.Data, the resident splits on the cpu."""
    import torch

    from .runner import make_run
    default_threads = torch.get_num_threads()
    runs = {v.name: make_run(v.case, opts, data) for v in comp.variants}
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

    shuffle = random.Random(0)
    for r in range(rounds + 1):
        shuffle.shuffle(order)
        for v in order:
            one(v, first=r == 0)
            if progress:
                progress(comp.name, r, v.name)
    return [_record(comp, v, runs[v.name], cold[v.name], v.threads or default_threads)
            for v in comp.variants]


def _record(comp: Comparison, v: Variant, run, cold: float, threads: int) -> dict:
    info = run.extra_info(None, cold)
    return {"comparison": comp.name, "baseline": comp.baseline, "variant": v.name,
            "case": v.case.id, "threads": threads,
            "median": statistics.median(run.inner), "data": run.inner,
            **{k: info[k] for k in ("samples_per_second", "gflops", "test_accuracy",
                                    "final_loss", "cold_seconds", "precision", "samples")}}


def ablate(opts: BenchOptions, rounds: int, progress=None) -> dict:
    """Every comparison on the cpu: {"machine": facts, "records": [...]}."""
    from .hardware import machine_info
    from .runner import Data
    data = Data.load(opts, "cpu")
    records = [r for comp in COMPARISONS
               for r in run_comparison(comp, opts, data, rounds, progress=progress)]
    return {"machine": machine_info(opts.label, probe={"cpu": PRECISIONS}), "rounds": rounds,
            "quick": opts.quick, "records": records}
