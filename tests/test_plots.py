"""Every figure: drawn to a PNG, its axes labelled, its legend naming what it shows."""

import numpy as np
import pytest

from mnist_models.reporting import plots
from mnist_models.reporting.results import load_results
from mnist_models.reporting.tables import machine_matrix, scaling_table
from mnist_models.study import figures as study_plots


@pytest.fixture(scope="module")
def committed(record):
    return load_results(record).frame


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _is_png(fig) -> bool:
    return plots.png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_throughput_has_a_line_per_machine_device_precision(committed):
    fig = plots.throughput_vs_batch(committed)
    cnn_train = fig.axes[0]
    assert cnn_train.get_title() == "cnn: training throughput" and cnn_train.get_xlabel() == "batch size"
    assert cnn_train.get_ylabel() == "images / s (training epochs of 60,000 images)"
    assert "epyc-avx2-2core cpu fp32" in _legend(cnn_train) and "epyc-zen5-2core cpu bf16" in _legend(cnn_train)
    assert _is_png(fig)


def test_bar_figures_name_their_bars(committed):
    training = plots.training_bars(committed)
    assert training.axes[0].get_title() == "Training throughput, CPU (fp32)" and _legend(training.axes[0]) == ["cpu"]
    assert "epochs of 60,000 images" in training.axes[0].get_ylabel()
    loaders = plots.loader_bars(committed)
    assert set(_legend(loaders.axes[0])) == {"resident tensors", "notebook DataLoader + ToTensor"}
    machines = plots.machine_bars(machine_matrix(committed, "epyc-2core"), "epyc-2core")
    assert _legend(machines.axes[0]) == [m for m in committed["machine"].unique() if m != "epyc-2core"]
    assert machines.axes[0].get_ylabel().startswith("images/s relative to epyc-2core")
    assert all(_is_png(f) for f in (training, loaders, machines))


def test_nothing_to_draw_is_no_figure(committed):
    tta_only = committed[committed["operation"] == "tta"]
    assert plots.throughput_vs_batch(tta_only) is None and plots.training_bars(tta_only) is None
    assert plots.loader_bars(tta_only) is None


def test_study_figures():
    history = [{"epoch": e, "train_loss": 1 / e, "train_accuracy": 0.9, "test_accuracy": 0.95} for e in (1, 2)]
    curves = study_plots.curves({"mlp": history, "cnn": history})
    assert [ax.get_xlabel() for ax in curves.axes] == ["epoch"] * 3 and _legend(curves.axes[0]) == ["mlp", "cnn"]
    confusion = study_plots.confusion(np.eye(10, dtype=int) * 90 + 1, "cnn")
    assert confusion.axes[0].get_xlabel() == "predicted" and confusion.axes[0].get_ylabel() == "true"
    wrong = study_plots.misclassified_grid(np.zeros((3, 28, 28)), [1, 2, 3], [7, 7, 8], [0.9, 0.8, 0.7], "mlp")
    assert wrong.axes[0].get_title() == "true 1, pred 7\n90.0% sure"
    hidden = study_plots.hidden_units(np.zeros((2, 28, 28)), np.random.rand(2, 128), "mlp", "fc1")
    assert "128 hidden units" in hidden.axes[1].get_title()
    assert all(_is_png(f) for f in (curves, confusion, wrong, hidden))


def test_scaling_has_a_line_per_mode_beside_its_ideal(committed):
    table = scaling_table(committed)
    fig = plots.scaling(table)
    cnn = fig.axes[0]
    assert cnn.get_title() == "cnn: data-parallel scaling (dashed: ideal)" and cnn.get_xlabel() == "ranks (world size)"
    assert "epyc-zen5-2core cpu weak 1 thread/rank" in _legend(cnn)
    assert sum(line.get_linestyle() == "--" for line in cnn.get_lines()) == 2  # strong's and weak's ideal
    assert _is_png(fig)
