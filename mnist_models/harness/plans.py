"""The built-in operations' plans: which cases each holds, how each trains, and its timer.

    from mnist_models.harness.cases import PLANS
    PLANS["tta"].cases(BenchOptions(), "cnn", device_class("cpu"))   # [Case("tta", "cnn", "cpu", 256, "bf16")]

An operation is added with one plan here (or anywhere: register_plan), one Operation in
reporting/fields.py and one timer in operations.py. No torch at import time.
"""

from __future__ import annotations

from ..core.config import NOTEBOOK, TrainConfig
from ..machine.devices import DeviceClass
from .cases import COMPILED_BATCH, DDP_BATCH, SCALING, BenchOptions, Case, CasePlan, register_plan
from .recipes import TTA, recipe_precision


class Matrix(CasePlan):
    """Every batch size and precision of the run; training adds the notebook's loop and a
    plain eager loop beside the tuned one, and both the compiled variant at COMPILED_BATCH."""

    def __init__(self, name: str, timer: str, trains: bool):
        self.name, self.timer, self.trains, self.casts_weights = name, timer, trains, not trains

    def cases(self, opts: BenchOptions, model: str, dc: DeviceClass) -> list[Case]:
        out, device, precisions = [], dc.device, opts.precisions_for(dc)
        for bs in opts.batch_sizes:
            out += [
                Case(self.name, model, device, bs, p, variant=v)
                for p in precisions
                for v in self.variants(dc, self.trains)
            ]
            if self.trains and bs == 64:  # the notebook's loop, for comparison
                out.append(Case(self.name, model, device, bs, loader=NOTEBOOK, variant="plain"))
            if self.trains and bs == 256:  # a plain eager loop on resident data
                out.append(Case(self.name, model, device, bs, variant="plain"))
            if bs == COMPILED_BATCH:  # not where the tuned case compiles already
                out += [
                    Case(self.name, model, device, bs, p, variant="compiled")
                    for p in precisions
                    if not Case(self.name, model, device, bs, p).tuned_compiles(dc)
                ]
        return out


class TimeToAccuracy(CasePlan):
    """One case per model with a recipe (recipes.TTA), at its batch, in its precision where the run has it."""

    name, timer, quick = "tta", "mnist_models.harness.operations:TimeToAccuracyTimer", False

    def cases(self, opts: BenchOptions, model: str, dc: DeviceClass) -> list[Case]:
        if model not in TTA:
            return []
        recipe = TTA[model].config
        precision = recipe_precision(recipe, opts.precisions_for(dc))
        return [Case("tta", model, dc.device, recipe.batch_size, precision, variant=v) for v in self.variants(dc, True)]

    def base_config(self, case: Case) -> TrainConfig:
        return TTA[case.model].config

    def notes(self, opts: BenchOptions) -> list[str]:
        return [
            f"the {m} has no time-to-accuracy recipe (harness/recipes.py), so no tta case"
            for m in opts.models
            if m not in TTA
        ]


class DataParallel(CasePlan):
    """Every world size, strong and weak beyond one rank, and on the cpu one rank with two
    threads beside them (what two ranks cost against two threads). Quick runs keep the MLP's,
    so CI exercises the path."""

    name, timer, resident = "ddp", "mnist_models.harness.ddp_timer:DdpTimer", False

    def cases(self, opts: BenchOptions, model: str, dc: DeviceClass) -> list[Case]:
        if opts.quick and model != "mlp":
            return []
        device = dc.device
        out = [
            Case("ddp", model, device, DDP_BATCH, world_size=w, scaling=s)
            for w in opts.world_sizes_for(device)
            for s in (SCALING if w > 1 else SCALING[:1])
        ]
        if device == "cpu" and not opts.quick:
            out.append(Case("ddp", model, device, DDP_BATCH, world_size=1, scaling="strong", threads=2))
        return out

    def base_config(self, case: Case) -> TrainConfig:
        batch = case.batch_size * (case.world_size if case.scaling == "weak" else 1)  # the global batch
        return TrainConfig(model=case.model, batch_size=batch, loader=case.loader)

    def why_not(self, case: Case, cfg: TrainConfig) -> str | None:
        from ..distributed.launch import room  # noqa: PLC0415 (torch: the matrix is built without it)
        from ..distributed.training import per_rank  # noqa: PLC0415 (torch: the matrix is built without it)

        per_rank(cfg, case.world_size)  # the global batch splits evenly across the ranks
        return room(case.device, case.world_size, case.threads or 1)


register_plan(Matrix("train", "mnist_models.harness.operations:TrainTimer", trains=True))
register_plan(Matrix("infer", "mnist_models.harness.operations:InferTimer", trains=False))
register_plan(TimeToAccuracy())
register_plan(DataParallel())
