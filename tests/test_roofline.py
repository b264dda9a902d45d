"""The roofline: its layers are the models', its FLOPs are torch's own count, its bound
moves with the planted peak and bandwidth, and the report shows it or says why not."""

import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mnist_models.core.models import create_model, layer_table, list_models, training_macs_per_sample
from mnist_models.reporting.report import render_markdown
from mnist_models.reporting.results import NO_BANDWIDTH, load_results
from mnist_models.reporting.roofline import ADAM_BYTES, Layer, UncostedLayer, bound, costs, layers_of
from mnist_models.reporting.schema import legacy_models
from mnist_models.reporting.tables import infer_table, machine_table, train_table


def _layers(name: str) -> tuple[Layer, ...]:
    """A model's layers as a run records them: measured from the module."""
    return layers_of(layer_table(create_model(name)))


@pytest.mark.parametrize("name", list_models(variants=True))
def test_files_before_format_4_are_read_with_the_layers_those_versions_ran(name):
    """Their models have not changed since: the frozen record equals what torch measures now."""
    assert layers_of(legacy_models()[name]) == _layers(name)


def test_a_layer_the_cost_model_does_not_count_is_named_not_costed_as_another():
    batchnorm = (*_layers("mlp")[:1], Layer("bn", "BatchNorm1d", 128, 128, 256, 0), *_layers("mlp")[1:])
    with pytest.raises(UncostedLayer, match="no cost model for BatchNorm1d"):
        costs(batchnorm, "train", 64)


def _counted(name: str, train: bool, batch: int = 4) -> float:
    model, x = create_model(name), torch.randn(batch, 1, 28, 28)
    if train:
        with FlopCounterMode(display=False) as counter:
            torch.nn.functional.cross_entropy(model(x), torch.randint(0, 10, (batch,))).backward()
    else:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.eval()(x)
    return counter.get_total_flops() / batch


@pytest.mark.parametrize("name", ["cnn", "mlp"])
@pytest.mark.parametrize("operation", ["train", "infer"])
def test_flops_agree_with_torchs_flop_counter(name, operation):
    counted = _counted(name, operation == "train")
    assert sum(c.flops for c in costs(_layers(name), operation, 4)) == counted > 0
    if operation == "train":  # and with what result files record as flops_per_sample
        assert counted == 2 * training_macs_per_sample(create_model(name))


def test_bytes_as_counted_by_hand():
    params = sum(layer.params for layer in _layers("mlp"))
    train = {c.name: c for c in costs(_layers("mlp"), "train", 64)}
    assert train["optimizer"].bytes == pytest.approx(ADAM_BYTES * params / 64)
    # the ReLU after fc1: read 128, write 128; backward reads gradient and output, writes 128
    assert train["act1"].bytes == 4 * (128 + 128) + 4 * (2 * 128 + 128)
    infer = {c.name: c for c in costs(_layers("mlp"), "infer", 64, "bf16")}
    assert infer["act1"].bytes == 2 * (128 + 128) and "optimizer" not in infer
    # fc2 in training: forward reads 128 in and the weights, writes 10; the weight gradient
    # reads the 10 gradients and the 128 inputs, writes its gradient; the input gradient reads
    # the 10 gradients and the weights again, writes 128
    w = 1290 / 64
    assert train["fc2"].bytes == pytest.approx(4 * (128 + 10 + w) + 4 * (10 + 128 + w) + 4 * (10 + 128 + w))
    # fc1 comes first: the fp32 images in, no input gradient; in bf16 autocast's cast of them
    # and of the weights, activations in 2 bytes, the fp32 weight gradient
    w = 100480 / 64
    assert train["fc1"].bytes == pytest.approx(4 * (784 + 128 + w) + 4 * (128 + 784 + w))
    bf16 = {c.name: c for c in costs(_layers("mlp"), "train", 64, "bf16")}
    assert bf16["fc1"].bytes == pytest.approx(8 * 784 + 2 * 128 + 8 * w + 2 * 128 + 2 * 784 + 4 * w)
    # fc1's weights once per batch: a larger batch moves fewer bytes per image
    assert costs(_layers("mlp"), "train", 1024)[0].bytes < train["fc1"].bytes
    assert {c.name: c.bytes for c in costs(_layers("cnn"), "infer", 256)}["dropout"] == 0  # eval: the identity
    # inference over bf16 weights reads each weight in 2 bytes, where autocast reads 4 and
    # writes and reads its 2-byte copy; nothing else moves otherwise
    served = {c.name: c for c in costs(_layers("mlp"), "infer", 64, "bf16", bf16_weights=True)}
    assert infer["fc1"].bytes - served["fc1"].bytes == pytest.approx(6 * w)
    assert infer["fc2"].bytes - served["fc2"].bytes == pytest.approx(6 * 1290 / 64)
    assert served["act1"].bytes == infer["act1"].bytes


def test_the_bound_follows_the_planted_ceilings():
    flops = sum(c.flops for c in costs(_layers("cnn"), "train", 256))
    compute = bound(_layers("cnn"), "train", 256, "fp32", peak_gflops=100, bandwidth_gbs=1e9)
    # with memory all but free, only the conv and linear layers take time, at the peak
    assert compute.images_per_second == pytest.approx(100e9 / flops, rel=1e-6)
    assert (compute.layer, compute.kind) == ("conv2", "compute")
    memory = bound(_layers("cnn"), "train", 256, "fp32", peak_gflops=1e9, bandwidth_gbs=10)
    moved = sum(c.bytes for c in costs(_layers("cnn"), "train", 256))
    assert memory.images_per_second == pytest.approx(10e9 / moved, rel=1e-6)
    assert memory.kind == "memory" and all(kind == "memory" for _, _, kind in memory.layers)
    # a small batch on slow memory: the optimizer's pass over every parameter bounds the MLP
    small = bound(_layers("mlp"), "train", 8, "fp32", peak_gflops=1000, bandwidth_gbs=10)
    assert (small.layer, small.kind) == ("optimizer", "memory")


def test_the_report_shows_the_roofline_or_says_why_not(cpu_result, edited_result):
    def probed(doc):
        doc["machine_info"]["mnist_bench"].update(label="probed", bandwidth_gbs={"cpu": 20.0})

    results = load_results([cpu_result, edited_result(cpu_result, probed, "probed.json")])
    frame = results.frame.set_index(["machine", "case"])
    row = frame.loc[("probed", "train-cnn-cpu-bs64")]
    expected = bound(_layers("cnn"), "train", 64, "fp32", 100.0, 20.0)
    assert row["attainable"] == pytest.approx(expected.images_per_second)
    assert row["attainable_fraction"] == pytest.approx(6000 / expected.images_per_second)
    assert row["bound_by"] == f"{expected.layer} ({expected.kind})"
    assert frame.loc[("fixture-cpu", "train-cnn-cpu-bs64"), "bound_by"] == NO_BANDWIDTH
    assert pd.isna(frame.loc[("fixture-cpu", "train-cnn-cpu-bs64"), "attainable_fraction"])
    infer = infer_table(results.frame).set_index("machine")
    assert infer.loc["probed", "of attainable"] == pytest.approx(
        20000 / bound(_layers("cnn"), "infer", 256, "fp32", 100.0, 20.0).images_per_second
    )
    machines = machine_table(results).set_index("")
    assert machines.loc["triad bandwidth GB/s", "probed"] == "cpu 20.0"
    assert "not probed" in machines.loc["triad bandwidth GB/s", "fixture-cpu"]
    md = render_markdown(results)
    assert f"| {expected.layer} ({expected.kind})" in md and "| no bandwidth probe" in md
    assert "of attainable" in train_table(results.frame).columns


def test_the_report_bounds_inference_by_the_weights_it_ran_over(cpu_result, edited_result):
    def bf16(dtype):
        def edit(doc):
            doc["machine_info"]["mnist_bench"].update(label=dtype.split()[1], bandwidth_gbs={"cpu": 20.0})
            entry = next(b for b in doc["benchmarks"] if b["param"] == "infer-cnn-cpu-bs256")
            entry["extra_info"].update(precision="bf16", dtype=dtype)

        return edit

    files = [
        edited_result(cpu_result, bf16(d), f"{d.split()[1]}.json") for d in ("bfloat16 weights", "bfloat16 autocast")
    ]
    frame = load_results(files).frame.set_index(["machine", "case"])
    for machine, weights in (("weights", True), ("autocast", False)):
        expected = bound(_layers("cnn"), "infer", 256, "bf16", 200.0, 20.0, bf16_weights=weights).images_per_second
        assert frame.loc[(machine, "infer-cnn-cpu-bs256"), "attainable"] == pytest.approx(expected)
    assert (
        frame.loc[("weights", "infer-cnn-cpu-bs256"), "attainable"]
        > frame.loc[("autocast", "infer-cnn-cpu-bs256"), "attainable"]
    )
