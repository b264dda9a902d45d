"""The workload, versioned: what every case times, frozen per version as SPEC and Geekbench
freeze theirs, so that results of unlike software are never ranked together.

    from mnist_models.harness.workload import VERSION, case_hash, fingerprint
    case_hash(case, opts, device_class("cpu"))      # "3f9c1e0a7b2d": this case's definition
    fingerprint()                                   # every default case on every device class

A case's definition is its config as the tuned path runs it on a device class (recipe,
batch, precision, loader, knobs), its model (the registered spec and the class's code, its
comments and docstrings aside), the images a round processes and what stops the clock. Each
result entry records its case's hash (`workload`), each file the version and the whole
fingerprint. Change what a case times and fingerprint() changes: a test then fails until
VERSION is raised and the new fingerprint recorded in FINGERPRINTS (and the score's
reference made again for it: `mnist-bench run --score` on the reference machine).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import importlib
import inspect
import json
import textwrap

from ..core.config import TEST_SIZE
from ..core.registry import model_spec
from ..machine.devices import CLASSES, DeviceClass
from .cases import PLANS, BenchOptions, Case, cases
from .recipes import TTA

VERSION = 2  # 1: files made before the workload was versioned
FINGERPRINTS = {2: "37c26d549402"}  # fingerprint() of each version, as it was frozen


def _short(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


@functools.cache
def model_code(name: str) -> str:
    """A hash of the registered model: its spec and its class's code, docstrings and comments aside."""
    spec = model_spec(name)
    module, attribute = spec.factory.split(":")
    source = textwrap.dedent(inspect.getsource(getattr(importlib.import_module(module), attribute)))
    tree = ast.parse(source)
    for node in ast.walk(tree):  # docstrings say, they do not do
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            body[:] = body[1:] or [ast.Pass()]  # node.body, in place
    return _short([dataclasses.asdict(spec), ast.dump(tree)])


def case_definition(case: Case, opts: BenchOptions, dc: DeviceClass) -> dict:
    """Everything a case times on a device of class `dc`."""
    cfg = dataclasses.asdict(case.config(opts, dc))
    cfg.pop("root")  # where MNIST lies is not what is timed
    return {
        "case": case.id,
        "operation": case.operation,
        "config": cfg,
        "model": model_code(cfg["model"]),
        "train_images": case.config(opts, dc).training_images,
        "test_images": opts.test_samples or TEST_SIZE,
        "target": TTA[case.model].target if case.operation == "tta" else None,
        "ranks": [case.world_size, case.scaling, case.threads],
    }


def case_hash(case: Case, opts: BenchOptions, dc: DeviceClass) -> str:
    """The short hash of a case's definition: two entries did the same work only where it agrees."""
    return _short(case_definition(case, opts, dc))


def fingerprint(opts: BenchOptions | None = None) -> str:
    """The whole workload: every case of every plan a default run holds, on every device
    class a version is defined over (machine.devices.CLASSES)."""
    base = opts or BenchOptions(devices=("cpu",), label="fingerprint")
    parts = []
    for name, dc in CLASSES.items():
        run = dataclasses.replace(base, devices=(dc.device,), world_sizes=base.world_sizes or (1, 2))
        for operation in PLANS:
            parts += [(name, c.id, case_hash(c, run, dc)) for c in cases(run, operation, {dc.device: dc})]
    return _short(sorted(parts))
