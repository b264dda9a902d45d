import argparse
import json
import os
import subprocess
import sys

import pytest
import torch

from mnist_models.cli import main, parser

COMMANDS = sorted(next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)).choices)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_prints_its_help(name, capsys):
    # argparse %-formats help text: a bare "%" in one (a default shown as "2%") raised here
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith(f"usage: mnist-bench {name}")


def _train(out, *extra):
    return main(
        [
            "train",
            "--model",
            "mlp",
            "--epochs",
            "1",
            "--train-samples",
            "2048",
            "--device",
            "cpu",
            "--out",
            str(out),
            *extra,
        ]
    )


def test_train_writes_history_and_model(tmp_path, mnist_root, capsys):
    assert _train(tmp_path / "run") == 0
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1]
    assert {"train_loss", "test_loss", "test_accuracy", "seconds"} <= set(history[0])
    assert history[0]["test_accuracy"] >= 0.8 and history[0]["test_loss"] < 0.7  # measured 83.9%, 0.54
    checkpoint = torch.load(tmp_path / "run" / "model.pt")
    assert checkpoint["config"]["model"] == "mlp" and "fc1.weight" in checkpoint["state_dict"]
    assert "epoch   1" in capsys.readouterr().out


def test_train_never_overwrites_without_force(tmp_path, mnist_root, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "history.json").write_text("keep me")
    assert _train(out) == 2
    assert "already holds history.json; pass --force" in capsys.readouterr().err
    assert (out / "history.json").read_text() == "keep me"
    assert _train(out, "--force") == 0
    assert json.loads((out / "history.json").read_text())[0]["epoch"] == 1


def test_unknown_model_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "resnet", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "invalid choice: 'resnet' (choose from" in capsys.readouterr().err


@pytest.mark.skipif(torch.accelerator.is_available(), reason="this machine has an accelerator")
def test_cuda_without_an_accelerator_exits_2(tmp_path, mnist_root, capsys):
    assert _train(tmp_path / "run", "--device", "cuda") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda, but no accelerator (torch.accelerator)" in err
    assert not (tmp_path / "run").exists()


def test_cuda_graphs_on_the_cpu_exits_2(tmp_path, mnist_root, capsys):
    assert _train(tmp_path / "run", "--cuda-graphs") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA graphs need the model on a CUDA device" in err
    assert "drop --cuda-graphs" in err and not (tmp_path / "run").exists()


def test_missing_dataset_exits_2_naming_root(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        "torchvision.datasets.mnist.download_and_extract_archive",
        lambda *a, **k: (_ for _ in ()).throw(OSError("offline")),
    )
    assert _train(tmp_path / "run", "--root", str(tmp_path / "nowhere")) == 2
    err = capsys.readouterr().err
    assert f"not found under {tmp_path / 'nowhere'}" in err and "MNIST_ROOT" in err


def test_models_lists_every_layer(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "cnn: 206,922 parameters, 1,218,048 MACs per image" in out
    assert "mlp: 101,770 parameters" in out and "conv2" in out


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "mnist_models", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip()


def test_bench_script_keeps_an_existing_result_file(repo_copy):
    existing = sorted((repo_copy / "results").glob("*.json"))[0]
    before = existing.read_bytes()
    result = subprocess.run(["bash", "bench.sh", existing.stem], cwd=repo_copy, capture_output=True, text=True)
    assert result.returncode == 2 and "already exists; pass another LABEL or --force (FORCE=1" in result.stderr
    assert existing.read_bytes() == before


OFFLINE = {
    "https_proxy": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "no_proxy": "",
}


@pytest.mark.slow
@pytest.mark.parametrize("target", ["bench", "tests/test_data.py"])
def test_without_mnist_pytest_stops_with_one_line_and_creates_nothing(tmp_path, repo, target):
    missing = tmp_path / "nowhere" / "mnist"
    env = {**os.environ, **OFFLINE, "MNIST_ROOT": str(missing)}  # a download that cannot succeed
    result = subprocess.run(
        [sys.executable, "-m", "pytest", target, "--quick", "-q", "-p", "no:cacheprovider"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 4  # pytest's usage error: nothing ran
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stdout + result.stderr
    assert f"MNIST not found under {missing / 'MNIST' / 'raw'}" in result.stderr
    assert "MNIST_ROOT" in result.stderr and "download failed" in result.stderr
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.slow
def test_a_quick_main_job_leaves_the_record_alone(repo_copy, mnist_root):
    tmp_path = repo_copy
    before = {p: p.read_bytes() for p in (tmp_path / "results").rglob("*") if p.is_file()}
    result = subprocess.run(
        [
            "bash",
            "bench.sh",
            "smoke",
            "--quick",
            "-q",
            "--devices",
            "cpu",
            "--models",
            "mlp",
            "--batch-sizes",
            "256",
            "--precisions",
            "fp32",
            "-k",
            "not ddp",
        ],
        cwd=tmp_path,
        env={**os.environ, "MNIST_ROOT": str(mnist_root)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    after = {p: p.read_bytes() for p in (tmp_path / "results").rglob("*") if p.is_file()}
    assert after == before  # the committed results and report, untouched
    doc = json.loads((tmp_path / "runs" / "quick" / "smoke.json").read_text())
    assert doc["mnist_bench"]["quick"] is True and "quick" not in doc["machine_info"]["mnist_bench"]
    busy = doc["mnist_bench"]["busy"]  # how quiet the machine was, around the run
    assert busy["seconds"] > 0 and len(busy["load_average"]) == 3 and 0 <= busy["steal_percent"] <= 100
    assert {b["param"] for b in doc["benchmarks"]} == {
        "train-mlp-cpu-bs256",
        "train-mlp-cpu-bs256-plain",
        "train-mlp-cpu-bs256-compiled",
        "infer-mlp-cpu-bs256",
        "infer-mlp-cpu-bs256-compiled",
    }
    assert "smoke" in (tmp_path / "runs" / "quick" / "report" / "report.md").read_text()
