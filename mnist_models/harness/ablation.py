"""Side by side: variants of one training (or inference) case timed in interleaved rounds.

    python -m mnist_models ablate --out results/fast
    python -m mnist_models ablate --quick --out /tmp/fast        # a smoke run

Every round runs each variant once, in a shuffled order, from a fresh model
(interleave.py), and ratios are taken between medians of rounds that saw the same moments.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from ..core.config import NOTEBOOK, PRECISIONS
from .cases import BenchOptions, Case
from .interleave import interleaved

TRAIN, INFER = "train", "infer"


@dataclass(frozen=True)
class Variant:
    name: str  # what the table calls it
    case: Case  # the training or inference case (loader, variant knobs, precision)
    threads: int | None = None  # torch threads for this variant (None: the default)


@dataclass(frozen=True)
class Comparison:
    name: str  # e.g. "mlp bs64"
    baseline: str  # the variant the others are divided by
    variants: tuple[Variant, ...] = field(default=())


def _v(
    name: str, model: str, bs: int, variant: str = "plain", threads: int | None = None, operation: str = TRAIN, **axes
) -> Variant:
    """A training (or inference) variant on the cpu; `axes`: the Case's precision or loader."""
    return Variant(name, Case(operation, model, "cpu", bs, variant=variant, **axes), threads)


SEED_LOOP = _v("seed loop", "mlp", 64, loader=NOTEBOOK)
MLP64_FUSED = _v("+ fused adam", "mlp", 64, "fused")
MLP64_BF16 = _v("+ fused, bf16", "mlp", 64, "fused", precision="bf16")
MLP_BS64 = Comparison(
    "mlp bs64",
    SEED_LOOP.name,
    (
        SEED_LOOP,
        _v("resident, plain", "mlp", 64),
        MLP64_FUSED,
        _v("+ fused, 1 thread", "mlp", 64, "fused", threads=1),
        _v("+ fused, compile", "mlp", 64, "fused+compile"),
        MLP64_BF16,
    ),
)
NCHW_RELU_FIRST = _v("plain NCHW, ReLU then pool", "cnn", 256, "relu_first")
CNN_FP32 = Comparison(
    "cnn bs256 fp32",
    NCHW_RELU_FIRST.name,
    (
        NCHW_RELU_FIRST,
        _v("+ cl, fused, ReLU then pool", "cnn", 256, "channels_last+fused+relu_first"),
        _v("plain NCHW", "cnn", 256),
        _v("+ channels_last", "cnn", 256, "channels_last"),
        _v("+ fused adam", "cnn", 256, "fused"),
        _v("+ channels_last, fused", "cnn", 256, "channels_last+fused"),
        _v("+ cl, fused, 1 thread", "cnn", 256, "channels_last+fused", threads=1),
        _v("+ cl, fused, compile", "cnn", 256, "channels_last+fused+compile"),
    ),
)
FP32_TUNED = _v("fp32 cl, fused", "cnn", 256, "channels_last+fused")
BF16_TUNED = _v("bf16 cl, fused", "cnn", 256, "channels_last+fused", precision="bf16")
CNN_BF16 = Comparison(
    "cnn bs256 bf16",
    FP32_TUNED.name,
    (
        FP32_TUNED,
        _v("bf16 NCHW, fused", "cnn", 256, "fused", precision="bf16"),
        BF16_TUNED,
        _v("bf16 cl, fused, compile", "cnn", 256, "channels_last+fused+compile", precision="bf16"),
    ),
)
CNN_BF16_1024 = Comparison(
    "cnn bs1024 bf16",
    FP32_TUNED.name,
    (
        _v("fp32 cl, fused", "cnn", 1024, "channels_last+fused"),
        _v("bf16 cl, fused", "cnn", 1024, "channels_last+fused", precision="bf16"),
    ),
)


def _mlp_bf16(bs: int) -> Comparison:
    return Comparison(
        f"mlp bs{bs} bf16",
        "fp32 fused",
        (_v("fp32 fused", "mlp", bs, "fused"), _v("bf16 fused", "mlp", bs, "fused", precision="bf16")),
    )


MLP_BF16 = (_mlp_bf16(256), _mlp_bf16(1024))


def _infer(name: str, model: str, bs: int, knobs: str, precision: str = "fp32") -> Variant:
    return _v(name, model, bs, knobs, operation=INFER, precision=precision)


# Inference over the test images: bf16 under autocast (the tuned path before) against bf16
# weights compiled (the tuned path on a matrix engine), beside fp32 eager and compiled
INFER_BF16_TUNED = "bf16 autocast, cl"


def _cnn_infer(bs: int, every: bool = False) -> Comparison:
    """The CNN's inference paths at batch `bs`; `every`: also the two between them (bf16
    under autocast compiled, bf16 weights eager)."""
    between = (
        (
            _infer("bf16 autocast, cl, compile", "cnn", bs, "channels_last+compile", "bf16"),
            _infer("bf16 weights, cl", "cnn", bs, "channels_last+bf16_weights", "bf16"),
        )
        if every
        else ()
    )
    return Comparison(
        f"cnn bs{bs} infer",
        INFER_BF16_TUNED,
        (
            _infer("fp32 cl", "cnn", bs, "channels_last"),
            _infer("fp32 cl, compile", "cnn", bs, "channels_last+compile"),
            _infer(INFER_BF16_TUNED, "cnn", bs, "channels_last", "bf16"),
            *between,
            _infer("bf16 weights, cl, compile", "cnn", bs, "channels_last+bf16_weights+compile", "bf16"),
        ),
    )


CNN_INFER = _cnn_infer(256, every=True)
MLP_INFER = Comparison(
    "mlp bs64 infer",
    "bf16 autocast",
    (
        _infer("fp32", "mlp", 64, "plain"),
        _infer("bf16 autocast", "mlp", 64, "plain", "bf16"),
        _infer("bf16 weights", "mlp", 64, "bf16_weights", "bf16"),
        _infer("bf16 weights, compile", "mlp", 64, "bf16_weights+compile", "bf16"),
    ),
)
# The MLP's fp32 and bf16 at each default batch size: (comparison, fp32 variant, bf16 variant)
MLP_PRECISION_PAIRS: tuple[tuple[Comparison, Variant, Variant], ...] = (
    (MLP_BS64, MLP64_FUSED, MLP64_BF16),
    *((c, c.variants[0], c.variants[1]) for c in MLP_BF16),  # each holds its fp32 and bf16 variant
)
COMPARISONS = (
    MLP_BS64,
    CNN_FP32,
    CNN_BF16,
    CNN_BF16_1024,
    *MLP_BF16,
    _cnn_infer(64),
    CNN_INFER,
    _cnn_infer(1024),
    MLP_INFER,
)


def run_comparison(comp: Comparison, opts: BenchOptions, data, rounds: int, progress=None) -> list[dict]:
    """Every variant: one cold round, then `rounds` interleaved rounds (shuffled, seeded);
    one record each. `data`: run.Data, the resident splits on the cpu."""
    import torch  # noqa: PLC0415 (cli start-up imports this)

    from .operations import make_timer  # noqa: PLC0415 (cli start-up imports this)

    default_threads = torch.get_num_threads()
    variants = {v.name: v for v in comp.variants}
    runs = {name: make_timer(v.case, opts, data) for name, v in variants.items()}
    cold = {}
    # every cold round of a compiled variant resets torch.compile's graphs (CaseTimer._first_compile),
    # those of the variants before it too: each builds them again in an untimed round
    unwarmed = {name for name, run in runs.items() if run.cfg.compile}

    def time_one(name: str, r: int) -> float:
        torch.set_num_threads(variants[name].threads or default_threads)
        try:
            if r == 0:
                cold[name] = runs[name].cold_round()
                return cold[name]
            if name in unwarmed:  # builds the graphs again, untimed
                unwarmed.discard(name)
                runs[name].setup()
                runs[name].target()
                runs[name].inner.pop()
            runs[name].setup()
            runs[name].target()
            return runs[name].inner[-1]
        finally:
            torch.set_num_threads(default_threads)

    try:
        interleaved(variants, rounds, time_one, progress and (lambda r, name: progress(comp.name, r, name)))
        return [_record(comp, v, runs[v.name], cold[v.name], v.threads or default_threads) for v in comp.variants]
    finally:
        for run in runs.values():
            run.close()


def _record(comp: Comparison, v: Variant, run, cold: float, threads: int) -> dict:
    info = run.extra_info(None, cold)  # inference has no test accuracy or loss: None
    return {
        "comparison": comp.name,
        "baseline": comp.baseline,
        "variant": v.name,
        "case": v.case.id,
        "operation": v.case.operation,
        "threads": threads,
        "median": statistics.median(run.inner),
        "data": run.inner,
        **{
            k: info.get(k)
            for k in (
                "samples_per_second",
                "gflops",
                "test_accuracy",
                "final_loss",
                "cold_seconds",
                "precision",
                "samples",
            )
        },
    }


def ablate(opts: BenchOptions, rounds: int, progress=None, names: tuple[str, ...] = ()) -> dict:
    """Every comparison on the cpu (or those named): {"machine": facts, "records": [...]}."""
    from ..machine.facts import build_machine_facts  # noqa: PLC0415 (cli start-up imports this)
    from .timer import Data  # noqa: PLC0415 (cli start-up imports this)

    data = Data.load(opts, "cpu")
    records = [
        r
        for comp in COMPARISONS
        if not names or comp.name in names
        for r in run_comparison(comp, opts, data, rounds, progress=progress)
    ]
    return {
        "machine": build_machine_facts(opts.label, probe={"cpu": PRECISIONS}),
        "rounds": rounds,
        "quick": opts.quick,
        "records": records,
    }
