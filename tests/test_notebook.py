"""notebooks/mnist.ipynb: the committed file is a full run, and the notebook runs headless
(nbclient, the python3 kernel of this environment) in a small setting: every cell without an
error, both models trained to real accuracies on real MNIST, every figure drawn.

    MNIST_ROOT=... pytest -q tests/test_notebook.py     # the slow one: about a minute on 2 vCPUs
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import nbformat
import pytest

from mnist_models.machine.devices import accelerator
from mnist_models.study.notebook import INJECTED, execute, with_parameters

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "mnist.ipynb"
DATA = Path(__file__).parent / "data"
SMALL = {"epochs": 1, "train_samples": 4096}  # a minute on 2 vCPUs
FIGURES = {"data": 1, "q3": 1, "q4-confusion": 2, "q5": 2, "q6": 2}  # cell id: PNGs it shows


def cell(nb, cell_id: str):
    return next(c for c in nb.cells if c.get("id") == cell_id)


def text(nb, cell_id: str) -> str:
    """A cell's printed output and the plain text of what it displayed."""
    outs = cell(nb, cell_id).outputs
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outs)


def pngs(nb, cell_id: str) -> list[bytes]:
    return [
        base64.b64decode(o.data["image/png"]) for o in cell(nb, cell_id).outputs if "image/png" in o.get("data", {})
    ]


def accuracies(nb) -> dict[str, float]:
    """Q4's printed overall test accuracy of each model, as a fraction."""
    found = re.findall(r"^(\w+): ([\d.]+)% of the test set right", text(nb, "q4"), re.MULTILINE)
    return {model: float(pct) / 100 for model, pct in found}


@pytest.fixture(scope="module")
def small_run(mnist_root):
    """The notebook executed small; a frozen result file with cuda rows stands for results/."""
    params = {**SMALL, "root": str(mnist_root), "bench_files": str(DATA / "fixture-gpu.json")}
    return execute(NOTEBOOK, params, timeout=600)


@pytest.fixture(scope="module")
def committed():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_parameters_go_right_after_the_tagged_cell(committed):
    nb = with_parameters(committed, {"epochs": 1, "train_samples": 4096})
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    assert nb.cells[i + 1].metadata["tags"] == [INJECTED]
    assert nb.cells[i + 1].source == "epochs = 1\ntrain_samples = 4096"
    assert len(nb.cells) == len(committed.cells) + 1 and INJECTED not in [c.get("id") for c in committed.cells]


def test_a_misspelt_parameter_is_refused(committed):
    with pytest.raises(ValueError, match="assigns no epoch;"):
        with_parameters(committed, {"epoch": 1})


def test_the_committed_notebook_is_a_full_run_with_its_figures(committed):
    """What GitHub shows without running it: 10 epochs of each model on all 60,000 images."""
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert "Q3 trains on the first 60,000 training images" in text(committed, "data")
    for model in ("cnn", "mlp"):
        assert f"{model} epoch  10 " in text(committed, "q3")
    for cell_id, count in FIGURES.items():
        assert len(pngs(committed, cell_id)) == count, cell_id
    assert all(o.output_type != "error" and o.get("name") != "stderr" for c in code for o in c.outputs)
    assert all("execution" not in c.metadata for c in code)  # no per-cell timestamps


@pytest.mark.slow
def test_every_cell_runs_without_error_or_warning(small_run):
    code = [c for c in small_run.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)  # nbclient raised had any failed
    stderr = [o.text for c in code for o in c.outputs if o.get("name") == "stderr"]
    assert not stderr


@pytest.mark.slow
def test_both_models_train_to_real_accuracies(small_run):
    lines = text(small_run, "q3")
    assert "cnn epoch   1 " in lines and "mlp epoch   1 " in lines and "epoch   2" not in lines
    assert "Q3 trains on the first 4,096 training images" in text(small_run, "data")
    # one epoch of 4,096 images: measured 90.4% (CNN) and 88.4% (MLP), as tests/test_study.py
    acc = accuracies(small_run)
    assert acc.keys() == {"cnn", "mlp"}
    assert acc["cnn"] >= 0.87 and acc["mlp"] >= 0.85


@pytest.mark.slow
def test_every_figure_is_drawn(small_run):
    for cell_id, count in FIGURES.items():
        images = pngs(small_run, cell_id)
        assert len(images) == count, cell_id
        assert all(png.startswith(b"\x89PNG") and len(png) > 10_000 for png in images), cell_id


@pytest.mark.slow
def test_q7_times_every_device_here_and_quotes_result_files_without_one(small_run):
    times = text(small_run, "q7")
    assert re.search(r"cnn\s+cpu\s+1 ", times) and re.search(r"mlp\s+cpu\s+1 ", times)
    here = accelerator()
    said = text(small_run, "q7-accelerator")
    if here:
        assert re.search(rf"cnn\s+{here}\s+1 ", times) and f"s on {here}:" in said
    else:
        assert "No accelerator here" in said
        assert "fixture-gpu" in said and "cuda" in said  # the frozen file's accelerator rows
