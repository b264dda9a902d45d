"""Time to accuracy: today's recipes against the ones before them, seed by seed in turn,
and the ceiling the roofline puts under each.

    python experiments/tta.py --machine-label NAME --out results/fast/NAME/tta.md

Each seed trains both recipes of a model from a fresh model, in alternating order (old,
new, new, old, ...), with every evaluation on the clock as the suite's case has it. A
recipe runs in its own precision, bf16 only where the cpu has it natively (else fp32),
as the suite's case does. The ceiling: the images the median seed trained, at the roofline's attainable
images/s for its batch and precision (reporting/roofline.py, from this machine's probes
measured here), plus each evaluation's 10,000 test images at the inference bound.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from mnist_models.core.config import EVAL_BATCH, TEST_SIZE, TRAIN_SIZE, TrainConfig
from mnist_models.core.train import Trainer, evaluation_steps, loaders, train_to_accuracy
from mnist_models.files import write_files
from mnist_models.harness.cases import BenchOptions, default_precisions
from mnist_models.harness.recipes import TTA, Recipe, recipe_fields, recipe_precision
from mnist_models.harness.timer import Data
from mnist_models.machine.facts import build_machine_facts
from mnist_models.machine.process import tune_malloc
from mnist_models.reporting.markdown import md_table
from mnist_models.reporting.roofline import bound
from mnist_models.reporting.schema import recipe_name
from mnist_models.reporting.tables import trimmed_mean

SEEDS, CPU = 5, torch.device("cpu")
GOALS = {"cnn": 3.0, "mlp": 0.5}  # the goals, seconds
BEFORE = {  # the recipes before today's: the lr's cycle over every epoch, bf16, plain loss and dropout
    "mlp": Recipe(
        TrainConfig(
            model="mlp",
            epochs=4,
            batch_size=128,
            lr=3e-3,
            schedule="onecycle",
            precision="bf16",
            eval_from=2.0,
            eval_every=0.1,
        ),
        0.975,
    ),
    "cnn": Recipe(
        TrainConfig(
            model="cnn",
            epochs=3,
            batch_size=256,
            lr=6e-3,
            schedule="onecycle",
            precision="bf16",
            eval_from=1.8,
            eval_every=0.2,
        ),
        0.990,
    ),
}


def run(recipe: Recipe, seed: int, data: Data, precision: str) -> dict:
    cfg = dataclasses.replace(recipe.config, seed=seed, device="cpu", precision=precision)
    batches = loaders(cfg, CPU, (data.train, data.test))
    batches["train"].generator.manual_seed(seed)
    start = time.perf_counter()
    trainer = Trainer(cfg, len(batches["train"]), CPU)
    result = train_to_accuracy(trainer, batches["train"], batches["test"], recipe.target)
    seconds = time.perf_counter() - start
    steps = round(result["epochs"] * len(batches["train"]))
    evaluations = sum(1 for p in evaluation_steps(cfg, len(batches["train"])) if p <= steps)
    return {
        **result,
        "seconds": seconds,
        "images": min(steps * cfg.batch_size, round(result["epochs"] * TRAIN_SIZE)),
        "evaluations": evaluations,
    }


def ceiling(recipe: Recipe, runs: list[dict], precision: str, peak: float, bandwidth: float) -> float:
    """Seconds the median seed's training and evaluations take at the roofline."""
    cfg = recipe.config
    middle = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    train = bound(cfg.model, "train", cfg.batch_size, precision, peak, bandwidth).images_per_second
    infer = bound(cfg.model, "infer", EVAL_BATCH, precision, peak, bandwidth).images_per_second
    return middle["images"] / train + middle["evaluations"] * TEST_SIZE / infer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--machine-label", required=True)
    p.add_argument("--seeds", type=int, default=SEEDS)
    p.add_argument("--out", default="results/fast/tta.md", help="the markdown file to write")
    args = p.parse_args()
    tune_malloc()
    native = default_precisions("cpu")
    facts = build_machine_facts(args.machine_label, probe={"cpu": native})
    peaks, bandwidth = facts["peak_gflops"], facts["bandwidth_gbs"]["cpu"]
    data = Data.load(BenchOptions(), "cpu")
    rows, seeds_rows = [], []
    for model in ("mlp", "cnn"):
        recipes = {"before": BEFORE[model], "today": TTA[model]}
        runs: dict[str, list[dict]] = {name: [] for name in recipes}
        for seed in range(args.seeds):
            order = list(recipes) if seed % 2 == 0 else list(reversed(recipes))
            for name in order:
                runs[name].append(run(recipes[name], seed, data, recipe_precision(recipes[name].config, native)))
        for name, recipe in recipes.items():
            done = runs[name]
            times = [r["seconds"] for r in done]
            ran = recipe_precision(recipe.config, native)
            top = ceiling(recipe, done, ran, peaks[f"cpu_{ran}"], bandwidth)
            named = recipe_name({"recipe": recipe_fields(recipe.config)})
            rows.append(
                {
                    "model": model,
                    "recipe": f"{name}: {named}",
                    "precision": ran,
                    "target": f"{recipe.target:.1%}",
                    "reached": f"{sum(r['reached'] for r in done)}/{len(done)}",
                    "median s": round(statistics.median(times), 2),
                    "MLPerf mean s": round(trimmed_mean(times), 2) if len(times) >= 3 else None,
                    "best s": round(min(times), 2),
                    "worst s": round(max(times), 2),
                    "ceiling s": round(top, 2),
                    "goal s": GOALS[model],
                    "goal": "met"
                    if statistics.median(times) <= GOALS[model] and all(r["reached"] for r in done)
                    else "below the ceiling"
                    if top > GOALS[model]
                    else "missed",
                }
            )
            seeds_rows += [
                {
                    "model": model,
                    "recipe": name,
                    "seed": i,
                    "seconds": round(r["seconds"], 2),
                    "epochs": r["epochs"],
                    "evaluations": r["evaluations"],
                    "test acc": f"{r['accuracy']:.2%}",
                    "reached": r["reached"],
                }
                for i, r in enumerate(done)
            ]
    cpu = facts.get("cpu_model", "?")
    probes = ", ".join(f"{peaks[f'cpu_{p}']:,.1f} GFLOP/s {p} matmul" for p in native)
    again = f"python experiments/tta.py --machine-label {args.machine_label} --out {args.out}"
    text = "\n".join(
        [
            "# Time to accuracy: today's recipes against the ones before them",
            "",
            f"Made by `{again}` on "
            f"{args.machine_label} ({cpu}, {facts.get('logical_cores')} vCPUs, {facts.get('cpu_capability')}; "
            f"{facts.get('date') or time.strftime('%Y-%m-%d')}); a recipe runs in its precision, bf16 only where the "
            f"cpu runs it natively. {args.seeds} seeds a recipe, the two recipes of a model alternating seed by seed; "
            "every evaluation on the clock. `MLPerf mean`: the fastest and slowest seeds dropped, the rest averaged. "
            f"`ceiling`: the median seed's training images at the roofline's attainable images/s, and its "
            f"evaluations at the inference bound, from this run's probes: {probes}, {bandwidth:,.1f} GB/s triad. "
            "`below the ceiling`: a goal that even the roofline cannot reach here.",
            "",
            md_table(pd.DataFrame(rows)),
            "",
            "## Every seed",
            "",
            md_table(pd.DataFrame(seeds_rows)),
            "",
        ]
    )
    write_files({Path(args.out): text.encode()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
