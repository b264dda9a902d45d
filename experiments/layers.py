"""Where a tuned training step's time goes, layer by layer, against each layer's roofline bound.

    python experiments/layers.py --machine-label NAME --out results/fast/NAME/layers.md

The report's `of attainable` compares a whole case with its bound; this takes the step
apart. Each case runs the suite's own training step (Trainer.step, the tuned variant, on
resident MNIST batches) under a dispatch mode that times every aten operator, and hooks
on the model's leaf layers (forward and backward) and on the optimizer say which layer
each operator belongs to; the loss and its gradient are "loss". Each layer's time per
batch stands beside its bound from reporting/roofline.py at this machine's probes, made
here. The operators are timed one by one, so their sum is set beside the step timed
without the mode or the hooks; what lies between them (the autograd engine, autocast,
Python) is in the plain step only. Last, per case: the step if one layer ran at its bound and the rest as
measured, for the layer that would save most, which says how far fixing it alone goes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mnist_models.core.models import leaf_layers
from mnist_models.core.train import Trainer, loaders
from mnist_models.files import write_files
from mnist_models.harness.cases import BenchOptions, Case, default_precisions
from mnist_models.harness.timer import Data
from mnist_models.machine.facts import build_machine_facts
from mnist_models.machine.process import tune_malloc
from mnist_models.reporting.markdown import md_table, pct
from mnist_models.reporting.roofline import bound

CPU, WARM, STEPS, ROUNDS = torch.device("cpu"), 10, 30, 5  # warm-up steps; steps per round; rounds
CASES = (("cnn", 256), ("cnn", 1024), ("mlp", 64), ("mlp", 256))


class LayerClock(TorchDispatchMode):
    """Times every aten operator and adds it to the layer `where` names at that moment."""

    def __init__(self):
        super().__init__()
        self.where, self.seconds, self.on = "loss", defaultdict(float), False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        start = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        if self.on:
            self.seconds[self.where] += time.perf_counter() - start
        return out


def attribute(trainer: Trainer, clock: LayerClock) -> list:
    """Hooks that point the clock at each leaf layer, forward and backward, and the
    optimizer; their handles, to take them off again for the plain steps."""
    modules = dict(trainer.model.named_modules())

    def at(name):
        return lambda *_: setattr(clock, "where", name)

    handles = []
    for name in leaf_layers(trainer.model):
        handles += [
            modules[name].register_forward_pre_hook(at(name)),
            modules[name].register_forward_hook(at("loss")),  # what follows the last layer is the loss
            modules[name].register_full_backward_pre_hook(at(name)),
        ]
    return handles + [
        trainer.optimizer.register_step_pre_hook(at("optimizer")),
        trainer.optimizer.register_step_post_hook(at("loss")),
    ]


def measure(model: str, batch: int, precision: str, data: Data) -> tuple[dict, float, float]:
    """(seconds per batch by layer, the instrumented ops' sum per batch, the plain step per
    batch), each the median of the rounds."""
    cfg = Case("train", model, "cpu", batch, precision).config()
    batches = [b for b, _ in zip(loaders(cfg, CPU, (data.train, data.test))["train"], range(WARM + STEPS))]
    trainer, clock = Trainer(cfg, len(batches), CPU), LayerClock()
    trainer.model.train()

    def steps(run) -> float:
        start = time.perf_counter()
        for x, y in run:
            trainer.step(x, y)
        return (time.perf_counter() - start) / len(run)

    steps(batches[:WARM])
    plain, layers = [], []
    for _ in range(ROUNDS):  # plain (no hooks, no mode) and instrumented steps in turn
        plain.append(steps(batches[WARM:]))
        clock.seconds, handles = defaultdict(float), attribute(trainer, clock)
        with clock:
            clock.on = True
            steps(batches[WARM:])
            clock.on = False
        for handle in handles:
            handle.remove()
        layers.append({name: s / STEPS for name, s in clock.seconds.items()})
    summed = statistics.median(sum(r.values()) for r in layers)
    return (
        {name: statistics.median(r.get(name, 0.0) for r in layers) for name in layers[0]},
        summed,
        statistics.median(plain),
    )


def table(model: str, batch: int, precision: str, data: Data, peak: float, bandwidth: float) -> tuple[str, dict]:
    measured, summed, plain = measure(model, batch, precision, data)
    b = bound(model, "train", batch, precision, peak, bandwidth)
    limit = {name: (seconds * batch, kind) for name, seconds, kind in b.layers}
    rows = []
    for name in [*limit, *(n for n in measured if n not in limit)]:
        ms, (at, kind) = measured.get(name, 0.0), limit.get(name, (None, ""))
        rows.append(
            {
                "layer": name,
                "ms per batch": 1e3 * ms,
                "share of ops": pct(ms / summed),
                "bound ms": None if at is None else 1e3 * at,
                "bound by": kind,
                "of bound": pct(at / ms) if at and ms else "",
            }
        )
    gains = {name: measured.get(name, 0.0) - at for name, (at, _) in limit.items()}
    top = max(gains, key=gains.get)
    fixed = summed - gains[top]
    summary = {
        "case": f"{model} bs{batch} {precision}",
        "plain step ms": 1e3 * plain,
        "ops sum ms": 1e3 * summed,
        "bound ms": 1e3 * batch / b.images_per_second,
        "of bound": pct(batch / b.images_per_second / summed),
        "layer to fix": top,
        "step with it at bound ms": 1e3 * fixed,
        "that alone": f"{summed / fixed:.2f}x",
    }
    return md_table(pd.DataFrame(rows), floatfmt=".3f"), summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--machine-label", required=True)
    p.add_argument("--out", required=True, help="the markdown file to write")
    args = p.parse_args()
    tune_malloc()
    precisions = default_precisions("cpu")
    facts = build_machine_facts(args.machine_label, probe={"cpu": precisions})
    bandwidth = facts["bandwidth_gbs"]["cpu"]
    data = Data.load(BenchOptions(), "cpu")
    parts, summaries = [], []
    for model, batch in CASES:
        for precision in precisions:
            peak = facts["peak_gflops"][f"cpu_{precision}"]
            text, summary = table(model, batch, precision, data, peak, bandwidth)
            parts += [f"## {summary['case']}", "", text, ""]
            summaries.append(summary)
    peaks = ", ".join(f"{k.removeprefix('cpu_')} {v:,.1f} GFLOP/s" for k, v in facts["peak_gflops"].items())
    text = "\n".join(
        [
            "# Where the tuned training step's time goes, layer by layer",
            "",
            f"Made by `python experiments/layers.py --machine-label {args.machine_label} --out {args.out}` "
            f"on {args.machine_label} "
            f"({facts.get('cpu_model')}, family {facts.get('cpu_family')} model {facts.get('cpu_model_number')}, "
            f"{facts.get('physical_cores')} cores, torch {torch.__version__}). Probes made here: {peaks}; triad "
            f"{bandwidth:,.1f} GB/s. Per case: {ROUNDS} rounds of {STEPS} steps after {WARM} warm-up steps, plain and "
            "instrumented in turn; a layer's time is its operators' forward and backward, timed one by one "
            "(experiments/layers.py says how). `bound ms`: reporting/roofline.py's attainable time for the layer; "
            "`of bound`: bound over measured.",
            "",
            "## Summary",
            "",
            md_table(pd.DataFrame(summaries), floatfmt=".2f"),
            "",
            *parts,
        ]
    )
    write_files({Path(args.out): text.encode()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
