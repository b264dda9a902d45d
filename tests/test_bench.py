import argparse

import pytest
import torch

from mnist_models import bench
from mnist_models.bench import BenchOptions, Case
from mnist_models.hardware import default_precisions, native_bf16


def test_case_ids_are_readable():
    assert Case("train", "cnn", "cpu", 256).id == "train-cnn-cpu-bs256"
    assert Case("infer", "mlp", "cuda", 64, "bf16").id == "infer-mlp-cuda-bs64-bf16"
    assert Case("train", "mlp", "cpu", 64, loader="seed", variant="plain").id == "train-mlp-cpu-bs64-seed"
    assert Case("train", "cnn", "cpu", 256, variant="plain").id == "train-cnn-cpu-bs256-plain"
    assert Case("train", "cnn", "cpu", 256).group == "train cnn cpu"
    assert Case("tta", "cnn", "cuda", 256, "bf16", variant="graphs").id == "tta-cnn-cuda-bs256-bf16-graphs"


def test_full_matrix():
    opts = BenchOptions(precisions=("fp32", "bf16"))
    train, infer, tta = (bench.cases(opts, op) for op in bench.OPERATIONS)
    # 2 models x (cpu: 3 batch sizes x 2 precisions, cuda: the same eager and graphed)
    #          + 2 devices x (seed loader + plain loop)
    assert len(train) == 2 * (3 * 2 + 3 * 2 * 2) + 2 * 2 * 2
    assert len(infer) == 2 * 2 * 3 * 2
    assert [c.id for c in tta] == ["tta-cnn-cpu-bs256-bf16", "tta-cnn-cuda-bs256-bf16",
                                   "tta-cnn-cuda-bs256-bf16-graphs", "tta-mlp-cpu-bs128-bf16",
                                   "tta-mlp-cuda-bs128-bf16", "tta-mlp-cuda-bs128-bf16-graphs"]
    graphed = [c for c in train + tta if "cuda_graphs" in c.knobs]
    assert {c.device for c in graphed} == {"cuda"} and len(graphed) == 2 * 3 * 2 + 2
    assert len({c.id for c in train + infer + tta}) == len(train + infer + tta)
    seed = [c for c in train if c.loader == "seed"]
    assert {c.batch_size for c in seed} == {64} and {c.variant for c in seed} == {"plain"}


def test_default_matrix_times_what_each_device_runs_natively():
    opts = BenchOptions()
    for device in opts.devices:
        timed = {c.precision for op in bench.OPERATIONS for c in bench.cases(opts, op) if c.device == device}
        assert timed == set(default_precisions(device)), device


def test_time_to_accuracy_runs_in_fp32_where_the_run_has_no_bf16():
    tta = bench.cases(BenchOptions(devices=("cpu",), precisions=("fp32",)), "tta")
    assert [c.id for c in tta] == ["tta-cnn-cpu-bs256", "tta-mlp-cpu-bs128"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_cases_skip_with_reason():
    assert bench.skip_reason(Case("train", "cnn", "cuda", 64), BenchOptions()) == "CUDA not available"
    assert bench.skip_reason(Case("train", "cnn", "cpu", 64), BenchOptions()) is None
    assert "full dataset" in bench.skip_reason(Case("tta", "cnn", "cpu", 256), BenchOptions(quick=True))
    graphs_on_cpu = Case("train", "cnn", "cpu", 64, variant="graphs")
    assert bench.skip_reason(graphs_on_cpu, BenchOptions()) == "CUDA graphs need a CUDA device"


@pytest.mark.parametrize("parse,text,message", [
    (bench._choices("device", bench.DEVICES), "cpu,tpu", "unknown device tpu; choose from cpu, cuda"),
    (bench._choices("model", ["cnn", "mlp"]), "", "choose from cnn, mlp"),
    (bench._batch_sizes, "0", "positive integers"),
    (bench._batch_sizes, "64,big", "positive integers"),
    (bench._positive, "-1", "rounds must be a positive integer"),
])
def test_bad_option_values_name_the_choices(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse(text)


def test_good_option_values_parse():
    assert bench._choices("device", bench.DEVICES)("cpu, cuda") == ("cpu", "cuda")
    assert bench._batch_sizes("64,1024") == (64, 1024)


@pytest.mark.parametrize("case", [Case("train", "mlp", "cpu", 256), Case("infer", "cnn", "cpu", 512, "bf16"),
                                  Case("train", "mlp", "cpu", 64, loader="seed", variant="plain")],
                         ids=lambda c: c.id)
def test_a_run_records_every_field(case, train_split, test_split, mnist_root):
    opts = BenchOptions(quick=True, root=str(mnist_root))
    run = bench.Run(case, opts, bench.Data(train_split.take(2048), test_split.take(1024)))
    cold = run.cold_round()
    for _ in range(2):
        run.setup()
        run.target()
    info = run.extra_info(None, cold)
    samples = 2048 if case.operation == "train" else 1024
    # MLP training: forward 101,632 MACs, weight gradients the same, input gradients of fc2 only
    assert info["flops_per_sample"] == {"mlp": 2 * (3 * 101_632 - 784 * 128), "cnn": 2 * 1_218_048}[case.model]
    assert info["samples"] == samples and info["batch_size"] == case.batch_size
    assert info["samples_per_second"] > 0 and info["gflops"] > 0 and info["cold_seconds"] > 0
    assert info["native"] == (case.precision == "fp32" or native_bf16("cpu"))
    expected = {"model", "device", "operation", "loader", "variant", "precision", "params",
                "macs_per_sample", "peak_rss_mb", "torch_threads", "dtype", "harness_overhead_fraction"}
    assert expected <= set(info)
    if case.operation == "train":
        # 8 steps (bs256) or 32 (seed loop, bs64) on 2,048 images: measured 66.7% / 1.70 and
        # 82.4% / 1.14; chance is 10% and a loss of 2.30
        assert info["test_accuracy"] >= 0.6 and info["final_loss"] < 1.9


def test_missing_cases_lists_absent_cpu_cases():
    opts = BenchOptions(quick=True, models=("mlp",), batch_sizes=(64,), precisions=("fp32",))
    ids = bench.expected_ids(opts, "cpu")
    assert ids == ["train-mlp-cpu-bs64", "train-mlp-cpu-bs64-seed", "infer-mlp-cpu-bs64"]
    result = {"benchmarks": [{"param": "train-mlp-cpu-bs64"}]}
    assert bench.missing_cases(result, opts) == ids[1:]
