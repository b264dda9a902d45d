import argparse

import pytest
import torch

from mnist_models.core.data import ResidentLoader
from mnist_models.core.models import create_model
from mnist_models.core.registry import list_models, model_spec
from mnist_models.core.train import Trainer, train_to_accuracy
from mnist_models.harness.cases import (
    BENCH_DEVICES,
    PLANS,
    BenchOptions,
    Case,
    cases,
    default_precisions,
    expected_ids,
    missing_cases,
    skip_reason,
)
from mnist_models.harness.operations import make_timer
from mnist_models.harness.recipes import TTA
from mnist_models.harness.timer import Data
from mnist_models.machine.devices import CLASSES, compile_unavailable, device_class, native_bf16, resolve
from mnist_models.parsing import choices, positive, positives


def _classes(amx: bool) -> dict:
    """A cpu with bf16 units, with or without a matrix engine, and a cuda GPU."""
    return {"cpu": CLASSES["cpu-amx" if amx else "cpu-bf16"], "cuda": CLASSES["cuda"]}


@pytest.mark.parametrize("amx", [True, False])
def test_tuned_inference_compiles_the_cnn_on_a_matrix_engine_only(amx):
    classes = _classes(amx)
    opts = BenchOptions(devices=("cpu", "cuda"), precisions=("fp32", "bf16"))
    train, infer = cases(opts, "train", classes), cases(opts, "infer", classes)
    for case in infer:
        cfg, dc = case.config(opts, classes[case.device]), classes[case.device]
        compiles = case.variant == "compiled" or amx and case.model == "cnn" and case.device == "cpu"
        assert cfg.compile == compiles and case.tuned_compiles(dc) == (compiles and case.variant == "tuned"), case.id
        assert cfg.bf16_weights == (case.precision == "bf16"), case.id  # inference in bf16 casts the weights
    # training: autocast, eager
    assert not any(c.config(opts, classes[c.device]).bf16_weights or c.tuned_compiles(classes[c.device]) for c in train)
    compiled = {c.id for c in infer if c.variant == "compiled"}  # the compiled variant where the tuned one is eager
    assert ("infer-cnn-cpu-bs256-compiled" in compiled) != amx and "infer-mlp-cpu-bs256-compiled" in compiled
    assert "infer-cnn-cuda-bs256-compiled" in compiled


def test_case_ids_are_readable():
    assert Case("train", "cnn", "cpu", 256).id == "train-cnn-cpu-bs256"
    assert Case("infer", "mlp", "cuda", 64, "bf16").id == "infer-mlp-cuda-bs64-bf16"
    assert Case("train", "mlp", "cpu", 64, loader="notebook", variant="plain").id == "train-mlp-cpu-bs64-notebook"
    assert Case("train", "cnn", "cpu", 256, variant="plain").id == "train-cnn-cpu-bs256-plain"
    assert Case("train", "cnn", "cpu", 256).group == "train cnn cpu"
    assert Case("tta", "cnn", "cuda", 256, "bf16", variant="graphs").id == "tta-cnn-cuda-bs256-bf16-graphs"


def test_full_matrix():
    classes = _classes(amx=False)  # a matrix engine's own cases: the test above
    opts = BenchOptions(devices=("cpu", "cuda"), precisions=("fp32", "bf16"))
    train, infer, tta = (cases(opts, op, classes) for op in ("train", "infer", "tta"))
    # 2 models x (cpu: 3 batch sizes x 2 precisions, cuda: the same eager and graphed)
    #          + 2 devices x (notebook loader + plain loop)
    #          + the compiled variant at bs256 on each device, in each precision
    assert len(train) == 2 * (3 * 2 + 3 * 2 * 2) + 2 * 2 * 2 + 2 * 2 * 2
    assert len(infer) == 2 * 2 * 3 * 2 + 2 * 2 * 2
    compiled = [c for c in train + infer if c.variant == "compiled"]
    assert {c.batch_size for c in compiled} == {256} and all("compile" in c.knobs for c in compiled)
    assert "train-cnn-cpu-bs256-bf16-compiled" in {c.id for c in compiled}
    assert all(
        c.config(opts, classes[c.device]).channels_last and c.config(opts, classes[c.device]).compile for c in compiled
    )
    assert [c.id for c in tta] == [
        "tta-cnn-cpu-bs256-bf16",
        "tta-cnn-cuda-bs256-bf16",
        "tta-cnn-cuda-bs256-bf16-graphs",
        "tta-mlp-cpu-bs128",
        "tta-mlp-cuda-bs128",
        "tta-mlp-cuda-bs128-graphs",
    ]  # the MLP's recipe: fp32
    graphed = [c for c in train + tta if "cuda_graphs" in c.knobs]
    assert {c.device for c in graphed} == {"cuda"} and len(graphed) == 2 * 3 * 2 + 2
    assert len({c.id for c in train + infer + tta}) == len(train + infer + tta)
    notebook = [c for c in train if c.loader == "notebook"]
    assert {c.batch_size for c in notebook} == {64} and {c.variant for c in notebook} == {"plain"}


def test_default_matrix_times_what_each_device_runs_natively():
    opts = BenchOptions()
    for device in {resolve(d) for d in opts.devices}:  # cases carry the accelerator's name, not "accel"
        timed = {c.precision for op in PLANS for c in cases(opts, op) if c.device == device}
        assert timed == set(default_precisions(device_class(device))), device
    assert {c.device for op in PLANS for c in cases(opts, op)} == {resolve(d) for d in opts.devices}


def test_time_to_accuracy_runs_in_fp32_where_the_run_has_no_bf16():
    tta = cases(BenchOptions(devices=("cpu",), precisions=("fp32",)), "tta")
    assert [c.id for c in tta] == ["tta-cnn-cpu-bs256", "tta-mlp-cpu-bs128"]


@pytest.mark.skipif(torch.accelerator.is_available(), reason="this machine has an accelerator")
def test_accelerator_cases_skip_with_reason():
    assert skip_reason(Case("train", "cnn", "cuda", 64), BenchOptions()) == "no accelerator"
    assert skip_reason(Case("train", "cnn", "accel", 64), BenchOptions()) == "no accelerator"
    assert skip_reason(Case("train", "cnn", "cpu", 64), BenchOptions()) is None
    assert "full dataset" in skip_reason(Case("tta", "cnn", "cpu", 256), BenchOptions(quick=True))
    graphs_on_cpu = Case("train", "cnn", "cpu", 64, variant="graphs")
    assert skip_reason(graphs_on_cpu, BenchOptions()) == "CUDA graphs need a CUDA device"
    accel = [c.id for c in cases(BenchOptions(), "train") if c.device != "cpu"]
    assert "train-cnn-accel-bs64" in accel and not any("graphs" in i for i in accel)  # graphs: cuda only


@pytest.mark.parametrize(
    "parse,text,message",
    [
        (choices("device", BENCH_DEVICES), "cpu,tpu", "unknown device tpu; choose from cpu, accel, cuda"),
        (choices("model", ["cnn", "mlp"]), "", "choose from cnn, mlp"),
        (positives("batch sizes", "64,256"), "0", "batch sizes must be positive whole numbers"),
        (positives("batch sizes", "64,256"), "64,big", "batch sizes must be positive whole numbers"),
        (positives("world sizes", "1,2"), "2,x", "world sizes must be positive whole numbers"),
        (positive("rounds"), "-1", "rounds must be a positive whole number"),
        (choices("model", ["cnn", "mlp"]), "mlp,cnn,mlp", "model listed twice: mlp; list each once"),
        (positives("batch sizes", "64,256"), "256,64,256", "batch sizes listed twice: 256"),
    ],
)
def test_bad_option_values_name_the_choices(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse(text)


def test_good_option_values_parse():
    assert choices("device", BENCH_DEVICES)("cpu, accel") == ("cpu", "accel")
    assert positives("batch sizes", "64")("64,1024") == (64, 1024)


def test_a_bad_world_size_is_named_as_one(repo):
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "bench",
            "--world-sizes",
            "0",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 4 and "world sizes must be positive whole numbers" in done.stderr
    assert "batch sizes" not in done.stderr


@pytest.mark.parametrize(
    "case",
    [
        Case("train", "mlp", "cpu", 256),
        Case("infer", "cnn", "cpu", 512, "bf16"),
        Case("train", "mlp", "cpu", 64, loader="notebook", variant="plain"),
        Case("train", "mlp", "cpu", 256, variant="compiled"),
    ],
    ids=lambda c: c.id,
)
def test_a_run_records_every_field(case, train_split, test_split):
    opts = BenchOptions(quick=True)
    run = make_timer(case, opts, Data(train_split, test_split))
    cold = run.cold_round()
    for _ in range(2):
        run.setup()
        run.target()
    info = run.extra_info(None, cold)
    samples = 4096 if case.operation == "train" else 2048
    # MLP training: forward 101,632 MACs, weight gradients the same, input gradients of fc2 only
    assert info["flops_per_sample"] == {"mlp": 2 * (3 * 101_632 - 784 * 128), "cnn": 2 * 1_218_048}[case.model]
    assert info["samples"] == samples and info["batch_size"] == case.batch_size
    assert info["samples_per_second"] > 0 and info["gflops"] > 0 and info["cold_seconds"] > 0
    assert info["native"] == (case.precision == "fp32" or native_bf16("cpu"))
    expected = {
        "model",
        "device",
        "operation",
        "loader",
        "variant",
        "precision",
        "params",
        "macs_per_sample",
        "peak_rss_mb",
        "torch_threads",
        "dtype",
        "harness_overhead_fraction",
    }
    assert expected <= set(info)
    # a compiled case's cold round compiled past inductor's caches: it took longer than a timed one
    # (the compiled variant, and the tuned cnn inference where a matrix engine runs it compiled)
    assert (
        info["compiled"] == run.cfg.compile == (case.variant == "compiled" or case.tuned_compiles(device_class("cpu")))
    )
    assert (info.get("compile_seconds", 0) > 0) == info["compiled"]
    if case.operation == "train":
        # 16 steps (bs256) or 64 (notebook loop, bs64) on 4,096 images; chance is 10% and 2.30
        assert info["test_accuracy"] >= 0.75 and info["final_loss"] < 1.5


def test_compiled_cases_skip_with_the_reason_where_inductor_cannot_build(tmp_path, monkeypatch):
    case = Case("train", "mlp", "cpu", 256, variant="compiled")
    assert skip_reason(case, BenchOptions()) is None  # this machine has a C++ compiler
    monkeypatch.setenv("PATH", str(tmp_path))  # none on the PATH, and none named by CXX
    monkeypatch.delenv("CXX", raising=False)
    assert compile_unavailable("cpu") == skip_reason(case, BenchOptions())
    assert "needs a C++ compiler" in skip_reason(case, BenchOptions())
    assert skip_reason(Case("train", "mlp", "cpu", 256), BenchOptions()) is None  # eager cases still run
    assert "cpu and cuda only" in compile_unavailable("mps")


def test_missing_cases_lists_absent_cpu_cases():
    opts = BenchOptions(quick=True, models=("mlp",), batch_sizes=(64,), precisions=("fp32",))
    ids = expected_ids(opts, "cpu")
    assert ids == [
        "train-mlp-cpu-bs64",
        "train-mlp-cpu-bs64-notebook",
        "infer-mlp-cpu-bs64",
        "ddp-mlp-cpu-bs256-w1-strong",
        "ddp-mlp-cpu-bs256-w2-strong",
        "ddp-mlp-cpu-bs256-w2-weak",
    ]
    result = {"benchmarks": [{"param": "train-mlp-cpu-bs64"}]}
    assert missing_cases(result, opts) == ids[1:]


def test_the_registry_says_which_models_have_dropout():
    assert list_models() == ("cnn", "mlp") and list_models(variants=True) == ("cnn", "cnn_relu_first", "mlp")
    for name in list_models(variants=True):
        assert model_spec(name).dropout == hasattr(create_model(name), "dropout"), name


@pytest.mark.slow
@pytest.mark.parametrize("case", cases(BenchOptions(devices=("cpu",)), "tta"), ids=lambda c: c.id)
def test_each_time_to_accuracy_case_reaches_its_target_within_its_cycle(case, train_split, test_split):
    cfg = case.config()  # as the suite runs it here: bf16 only where the cpu has it natively
    train = ResidentLoader(train_split, cfg.batch_size, seed=cfg.seed)
    test = ResidentLoader(test_split, cfg.eval_batch_size, shuffle=False)
    target = TTA[case.model].target
    reached = train_to_accuracy(Trainer(cfg, len(train)), train, test, target)
    assert reached["reached"] and reached["accuracy"] >= target
    assert cfg.eval_from <= reached["epochs"] <= cfg.cycle_epochs  # before the lr has finished falling


def test_a_variant_is_a_set_of_overrides():
    assert Case("train", "cnn", "cpu", 256, variant="plain").overrides() == {}
    tuned = Case("train", "cnn", "cpu", 256).config()
    assert tuned.channels_last and tuned.fused and not tuned.cuda_graphs and tuned.model == "cnn"
    relu_first = Case("train", "cnn", "cpu", 256, variant="channels_last+relu_first").config()
    assert relu_first.model == "cnn_relu_first" and relu_first.channels_last and not relu_first.fused
    tta = Case("tta", "cnn", "cuda", 256, "bf16", variant="graphs").config()
    assert (tta.epochs, tta.lr, tta.schedule, tta.cuda_graphs, tta.device) == (2, 4e-2, "onecycle", True, "cuda")
    assert (tta.cycle_epochs, tta.label_smoothing, tta.dropout) == (1.4, 0.1, 0.0)
    assert (tta.eval_from, tta.eval_every) == (1.1, 0.1)
    quick = Case("infer", "mlp", "cpu", 64).config(BenchOptions(quick=True))
    assert (quick.train_samples, quick.test_samples) == (4096, 2048)


def test_ddp_cases_read_like_their_axes():
    full = [c.id for c in cases(BenchOptions(devices=("cpu",)), "ddp")]
    assert full == [
        "ddp-cnn-cpu-bs256-w1-strong",
        "ddp-cnn-cpu-bs256-w2-strong",
        "ddp-cnn-cpu-bs256-w2-weak",
        "ddp-cnn-cpu-bs256-w1-strong-t2",
        "ddp-mlp-cpu-bs256-w1-strong",
        "ddp-mlp-cpu-bs256-w2-strong",
        "ddp-mlp-cpu-bs256-w2-weak",
        "ddp-mlp-cpu-bs256-w1-strong-t2",
    ]
    weak = Case("ddp", "cnn", "cpu", 256, world_size=4, scaling="weak").config()
    strong = Case("ddp", "cnn", "cpu", 256, world_size=4, scaling="strong").config()
    assert (weak.batch_size, strong.batch_size) == (1024, 256)  # the global batch
    assert [c.world_size for c in cases(BenchOptions(devices=("cpu",), world_sizes=(1, 2, 4)), "ddp")][:5] == [
        1,
        2,
        2,
        4,
        4,
    ]
