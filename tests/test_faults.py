"""Faults and bad input on the real commands: checked before the work, finished work kept
after it, one line and an exit code CI can trust. Real files, disks and processes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from terminal import as_at_a_terminal

import mnist_models.reporting.compare
from mnist_models.cli import main

MLP = ["train", "--model", "mlp", "--device", "cpu", "--train-samples", "2048"]


def _one_line(err: str, *parts: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, (part, err)


def test_an_unwritable_out_is_refused_before_training(read_only, tmp_path, cli, capsys):
    assert cli(*MLP, "--epochs", "1", "--out", str(read_only / "run")) == 2
    out, err = capsys.readouterr()
    _one_line(err, f"cannot write in {read_only / 'run'} (Read-only file system)", "choose another --out")
    assert "epoch" not in out  # refused before any training
    (tmp_path / "file").write_text("x")
    assert cli(*MLP, "--epochs", "1", "--out", str(tmp_path / "file" / "run")) == 2
    _one_line(capsys.readouterr().err, f"is under {tmp_path / 'file'}, which is a file")


def test_a_full_disk_after_training_leaves_no_half_result(small_disk, cli, capsys):
    out = small_disk / "run"  # 64 KiB: history.json fits, the MLP's 400 KB model.pt does not
    assert cli(*MLP, "--epochs", "1", "--out", str(out)) == 3
    _one_line(capsys.readouterr().err, "No space left on device", "OSError")
    assert list(small_disk.rglob("*")) in ([], [out])  # no history.json alone, no temporary file


def test_a_diverging_run_says_so_and_writes_nothing_unfinished(tmp_path, cli, capsys):
    assert cli(*MLP, "--optimizer", "sgd", "--lr", "1e20", "--epochs", "2", "--out", str(tmp_path / "run")) == 2
    _one_line(
        capsys.readouterr().err,
        "training diverged (loss became nan at epoch 1",
        "before the first epoch finished; nothing written",
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_epochs(tmp_path, mnist_root):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnist_models",
            *MLP,
            "--train-samples",
            "60000",
            "--batch-size",
            "16",
            "--epochs",
            "5",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MNIST_ROOT": str(mnist_root)},
        preexec_fn=as_at_a_terminal,
    )
    first = proc.stdout.readline()  # "epoch   1 ..." once the first epoch is done
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert first.startswith("epoch   1") and proc.returncode == 130
    _one_line(err, "interrupted after 1 finished epoch", f"to {out}")
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1]
    assert torch.load(out / "model.pt")["state_dict"]["fc1.weight"].isfinite().all()


@pytest.mark.parametrize(
    "args,message",
    [
        (MLP + ["--batch-size", "70000"], "batch size is larger than the 2,048 training images"),
        (["train", "--train-samples", "1000000000"], "train samples must be between 1 and MNIST's 60,000"),
        (["train", "--val-samples", "100", "--loader", "notebook"], "validation samples need the resident loader"),
        (["train", "--lr", "nan"], "learning rate must be a positive number"),
        (["train", "--lr", "inf"], "learning rate must be a positive number"),
        (["train", "--epochs", "0"], "epochs must be a positive whole number"),
        (["train", "--cycle-epochs", "1"], "cycle epochs need the onecycle schedule"),
        (["train", "--model", "mlp", "--dropout", "0"], "the mlp has no dropout layer; drop --dropout"),
        (["train", "--label-smoothing", "nan"], "label smoothing must be at least 0 and below 1"),
        (["train", "--seed", "99999999999999999999999"], "--seed must be a whole number from 0 to 4294967295"),
        (["train", "--seed", "-1"], "--seed must be a whole number from 0"),
        (["profile", "--steps", "-5"], "steps must be a positive whole number"),
        (["profile", "--steps", "100", "--batch-size", "1024"], "need 102,400 images, more than MNIST's 60,000"),
        (["profile", "--variant", "cuda_graphs"], "drop cuda_graphs from --variant"),
        (["ablate", "--rounds", "-1"], "rounds must be a positive whole number"),
        (["compare", "{cpu}", "{cpu}", "--threshold", "nan"], "threshold must be a positive number"),
        (["compare", "{cpu}", "{cpu}", "--threshold=-5%"], "threshold must be a positive number"),
    ],
)
def test_sizes_out_of_range_are_refused_before_the_work(tmp_path, cli, capsys, cpu_result, args, message):
    out = ["--out", str(tmp_path / "new" / "out")] if args[0] in ("train", "ablate") else []
    assert cli(*[a.replace("{cpu}", str(cpu_result)) for a in args], *out) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["--help"],
        ["report", "--help"],
        ["compare", "a.json"],
        ["report", "{cpu}", "--out", "{tmp}/report"],
        ["compare", "{cpu}", "{cpu}"],
        ["train", "--model", "resnet"],
    ],
)
def test_report_compare_help_and_usage_errors_do_not_import_torch(tmp_path, cpu_result, argv):
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{cpu}", str(cpu_result)) for a in argv]
    code = (
        "import sys\nfrom mnist_models.cli import main\ntry:\n    code = main(sys.argv[1:])\n"
        "except SystemExit as exc:\n    code = exc.code\nprint('torch' in sys.modules, code, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    imported, exit_code = done.stderr.strip().splitlines()[-1].split()
    assert imported == "False" and exit_code in ("0", "2", "None"), done.stderr


def test_an_unexpected_error_exits_3_never_1(monkeypatch, cli, capsys, cpu_result):
    def broken(*args, **kwargs):
        return 1 / 0  # a bug inside compare: must not read as "a case regressed"

    monkeypatch.setattr(mnist_models.reporting.compare, "compare", broken)
    assert cli("compare", str(cpu_result), str(cpu_result)) == 3
    _one_line(capsys.readouterr().err, "ZeroDivisionError: division by zero", "--debug shows the traceback")
    assert main(["--debug", "compare", str(cpu_result), str(cpu_result)]) == 3  # the traceback, and still 3
    assert "Traceback" in capsys.readouterr().err


def test_debug_shows_the_traceback_and_keeps_the_usage_exit_code(cli, capsys, cpu_result, tmp_path):
    assert cli("--debug", "compare", str(tmp_path / "nope.json"), str(cpu_result)) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].endswith("fix or remove it to compare")


def test_no_command_writes_over_its_own_inputs_or_a_folder(cli, capsys, cpu_result, tmp_path, repo):
    """export onto an input file, export or ab onto a folder, ab's --json onto its --out's files:
    refused in one line, exit 2, whatever --force says, and nothing touched."""
    copy = tmp_path / "run.json"
    copy.write_bytes(cpu_result.read_bytes())
    (tmp_path / "folder").mkdir()
    for argv, message in [
        (["export", "--format", "bencher", "--out", str(copy), "--force", str(copy)], "is one of the input files"),
        (["export", "--format", "bencher", "--out", str(tmp_path / "x.json"), str(tmp_path)], "is one of the input"),
        (["export", "--format", "bencher", "--out", str(tmp_path / "folder"), "--force", str(copy)], "is a folder"),
        (
            ["ab", str(repo), str(repo), "--out", str(tmp_path / "ab"), "--json", str(tmp_path / "ab" / "base.json")],
            "is the same place as --out",
        ),
    ]:
        assert cli(*argv) == 2, argv
        _one_line(capsys.readouterr().err, message)
    assert copy.read_bytes() == cpu_result.read_bytes() and not list((tmp_path / "folder").iterdir())
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "ab").exists()


def test_one_file_given_twice_or_beside_its_copy_is_read_once_or_named_apart(cli, capsys, cpu_result, tmp_path):
    copy = tmp_path / "data" / cpu_result.name  # the same stem and label in another folder, another run
    copy.parent.mkdir()
    copy.write_text(json.dumps({**json.loads(cpu_result.read_text()), "datetime": "2026-12-02T00:00:00"}))
    assert cli("score", str(cpu_result), str(cpu_result)) == 0
    out = capsys.readouterr()
    assert "given twice; read once" in out.err and out.out.count("fixture-cpu") == 1
    assert cli("score", str(cpu_result), str(copy)) == 0
    assert f"fixture-cpu ({copy})" in capsys.readouterr().out


def test_ablate_refuses_bench_files_of_two_machines_before_any_round(cli, capsys, cpu_result, gpu_result, tmp_path):
    assert cli("ablate", "--quick", "--out", str(tmp_path / "fast"), "--bench", str(cpu_result), str(gpu_result)) == 2
    out = capsys.readouterr()
    _one_line(out.err, "--bench files come from 2 machines")
    assert "round" not in out.out and not (tmp_path / "fast").exists()  # refused before the first round


@pytest.mark.parametrize("label", ["a/b", "../../evil", ".hidden", "x y"])  # "-q" is pytest's option, not a label
def test_bench_sh_refuses_a_label_that_is_not_a_file_name(label, repo_copy):
    before = sorted(repo_copy.rglob("*"))
    done = subprocess.run(["bash", "bench.sh", label, "--quick"], cwd=repo_copy, capture_output=True, text=True)
    assert done.returncode == 2 and "LABEL must be a plain file name" in done.stderr
    assert sorted(repo_copy.rglob("*")) == before  # nothing made, in results/ or beside it


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["ctrl-c", "kill"])
def test_bench_sh_keeps_the_finished_cases(repo_copy, mnist_root, stop):
    copy = repo_copy
    record = sorted((copy / "results").rglob("*"))
    proc = subprocess.Popen(
        [
            "bash",
            "bench.sh",
            "box",
            "-q",
            "--devices",
            "cpu",
            "--models",
            "mlp",
            "--batch-sizes",
            "1024",
            "--precisions",
            "fp32",
            "--rounds",
            "2",
        ],
        cwd=copy,
        env={**os.environ, "MNIST_ROOT": str(mnist_root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=as_at_a_terminal,
    )
    deadline = time.monotonic() + 120  # the per-case copy beside the run's own temporary file
    while (
        not list((copy / "results").glob(".box.*.json.partial")) and proc.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    if stop == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends the whole job
    else:
        import psutil

        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()  # pytest dies at once: no time to write its JSON
    _, err = proc.communicate(timeout=120)
    kept = copy / "runs" / "partial" / "box.json"
    assert proc.returncode == (130 if stop == "ctrl-c" else 137), err
    assert "the cases that finished are in runs/partial/box.json" in err
    doc = json.loads(kept.read_text())
    assert "train-mlp-cpu-bs1024" in {b.get("param") for b in doc["benchmarks"]}
    assert sorted((copy / "results").rglob("*")) == record  # nothing half-made left in the record


@pytest.mark.slow
def test_sigterm_to_the_main_job_alone_keeps_the_finished_cases_and_leaves_no_orphan(tmp_path, mnist_root):
    """How CI cancels a job: SIGTERM to the process it started, not to its children."""
    import psutil

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnist_models",
            "run",
            "box",
            "-q",
            "--devices",
            "cpu",
            "--models",
            "mlp",
            "--batch-sizes",
            "1024",
            "--precisions",
            "fp32",
            "--rounds",
            "2",
        ],
        cwd=tmp_path,
        env={**os.environ, "MNIST_ROOT": str(mnist_root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while (
        not list((tmp_path / "results").glob(".box.*.json.partial"))
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "the cases that finished are in runs/partial/box.json" in err
    assert "train-mlp-cpu-bs1024" in {
        b["param"] for b in json.loads((tmp_path / "runs/partial/box.json").read_text())["benchmarks"]
    }
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)  # pytest stopped too
    assert not [p for p in (tmp_path / "results").iterdir() if p.name.startswith(".")]  # no hidden temporary left
