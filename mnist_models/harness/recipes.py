"""Time to accuracy's recipes (DAWNBench): per model, how to train and the test accuracy
that stops the clock. A model without a recipe has no time-to-accuracy case.

    from mnist_models.harness.recipes import TTA
    TTA["cnn"].config.lr, TTA["cnn"].target            # 0.04, 0.99

No torch here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from ..core.config import TrainConfig


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
    "seed",
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
SEED = 100  # the first seed a case's rounds train from (one a round): none the recipes were tuned on (0-9)
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
            seed=SEED,
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
            seed=SEED,
        ),
        0.990,
    ),
}


def recipe_precision(recipe: TrainConfig, precisions: Iterable[str]) -> str:
    """The precision a time-to-accuracy recipe runs in: its own where the run has it, else fp32."""
    return recipe.precision if recipe.precision in precisions else "fp32"
