"""Adding a model or an operation touches only its own declarations (tests/toys.py): the
cases, the suite's run, the result file, the report and the score follow from them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_models.core.config import TrainConfig
from mnist_models.core.registry import list_models
from mnist_models.harness.cases import PLANS, BenchOptions, all_cases, cases
from mnist_models.harness.workload import FINGERPRINTS, VERSION, fingerprint
from mnist_models.reporting.fields import OPERATIONS
from mnist_models.reporting.report import render_markdown
from mnist_models.reporting.results import load_results
from mnist_models.reporting.score import candidates

TESTS = Path(__file__).parent


@pytest.fixture
def toys():
    import toys

    toys.register()
    yield toys
    toys.unregister()


def test_a_toy_model_joins_the_matrix_but_not_time_to_accuracy(toys):
    assert "toy" in list_models() and TrainConfig(model="toy").model == "toy"
    with pytest.raises(ValueError, match="has no dropout layer"):
        TrainConfig(model="toy", dropout=0.1)
    opts = BenchOptions(devices=("cpu",), models=("toy",))
    assert {c.operation for c in all_cases(opts)} == {"train", "infer", "ddp", "latency"}  # no recipe, no tta
    assert cases(opts, "tta") == []
    assert PLANS["tta"].notes(opts) == ["the toy has no time-to-accuracy recipe (harness/recipes.py), so no tta case"]
    assert fingerprint() != FINGERPRINTS[VERSION]  # another workload: a file from it is not ranked as this version


def test_a_toy_operation_is_planned_for_every_model(toys):
    assert "latency" in OPERATIONS and "latency" in PLANS
    ids = [c.id for c in cases(BenchOptions(devices=("cpu",)), "latency")]
    assert ids == ["latency-cnn-cpu-bs1", "latency-mlp-cpu-bs1", "latency-toy-cpu-bs1"]


@pytest.mark.slow
def test_the_suite_runs_the_toys_and_the_report_reads_them(toys, tmp_path, mnist_root):
    out = tmp_path / "toys.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "mnist_models.harness.suite",
            "-p",
            "toys",
            "-q",
            "-p",
            "no:cacheprovider",
            "--quick",
            "--devices",
            "cpu",
            "--models",
            "toy,mlp",
            "--batch-sizes",
            "256",
            "--precisions",
            "fp32",
            "-k",
            "latency or train-toy-cpu-bs256",
            "--benchmark-json",
            str(out),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(TESTS), "MNIST_ROOT": str(mnist_root)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "the toy has no time-to-accuracy recipe" in run.stdout
    doc = json.loads(out.read_text())
    assert {b["param"] for b in doc["benchmarks"]} >= {
        "latency-toy-cpu-bs1",
        "latency-mlp-cpu-bs1",
        "train-toy-cpu-bs256",
        "train-toy-cpu-bs256-plain",
    }
    assert [row["kind"] for row in doc["mnist_bench"]["models"]["toy"]] == ["BatchNorm1d", "Linear"]  # measured

    results = load_results([out])
    assert results.problems == [] and set(results.frame["operation"]) == {"latency", "train"}
    frame = results.frame.set_index("case")
    assert frame.loc["train-toy-cpu-bs256", "bound_by"] in ("no cost model for BatchNorm1d", "no bandwidth probe")
    md = render_markdown(results)
    assert "## Latency: one image at a time" in md and "latency-toy-cpu-bs1" not in md.split("## Latency")[0]
    assert set(candidates(results.frame)["operation"]) == {"train"}  # the score counts declared operations only
