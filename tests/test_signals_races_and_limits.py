"""Signals, races and limits: CI's SIGTERM, two runs at once, planted links, the result file's own
failures, torchrun's environment, rlimits, oversubscribed threads and locales. Real signals,
real processes, real links and limits."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

MLP = [sys.executable, "-m", "mnist_models", "train", "--model", "mlp", "--device", "cpu"]


def _env(root, **extra) -> dict:
    return {**os.environ, "MNIST_ROOT": str(root), **extra}


def _one_line(err: str, *parts: str) -> None:
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    for part in parts:
        assert part in err, (part, err)


@pytest.mark.slow
def test_sigterm_keeps_the_finished_epochs_and_exits_143(tmp_path, mnist_root):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [*MLP, "--batch-size", "16", "--epochs", "5", "--out", str(out)],
        env=_env(mnist_root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = proc.stdout.readline()  # "epoch   1 ..." once the first epoch is done
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert first.startswith("epoch   1") and proc.returncode == 143
    _one_line(err, "terminated (SIGTERM) after 1 finished epoch", f"to {out}")
    assert [r["epoch"] for r in json.loads((out / "history.json").read_text())] == [1]


def _wait_for_lock(proc, folder: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not list(folder.glob(".mnist-bench-*.lock")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the first run ended before the second could race it"


@pytest.mark.slow
def test_a_second_train_at_the_same_out_is_refused_naming_the_first(tmp_path, mnist_root):
    out = tmp_path / "same"
    first = subprocess.Popen(
        [*MLP, "--epochs", "3", "--out", str(out)],
        env=_env(mnist_root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_lock(first, tmp_path)
    second = subprocess.run(
        [*MLP, "--model", "cnn", "--epochs", "1", "--out", str(out)],
        env=_env(mnist_root),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 2
    _one_line(second.stderr, f"is being written by another mnist-bench run (PID {first.pid})")
    first.terminate()
    first.communicate(timeout=120)
    assert not list(tmp_path.glob(".mnist-bench-*.lock"))  # the lock goes with its run


@pytest.mark.slow
def test_a_second_main_job_with_the_same_label_is_refused(tmp_path, mnist_root):
    quick = [
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
    ]
    first = subprocess.Popen(
        [sys.executable, "-m", "mnist_models", "run", "c1", *quick],
        cwd=tmp_path,
        env=_env(mnist_root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    (tmp_path / "runs" / "quick").mkdir(parents=True, exist_ok=True)
    _wait_for_lock(first, tmp_path / "runs" / "quick")
    second = subprocess.run(
        [sys.executable, "-m", "mnist_models", "run", "c1", *quick],
        cwd=tmp_path,
        env=_env(mnist_root),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 2 and f"(PID {first.pid})" in second.stderr, second.stderr
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert json.loads((tmp_path / "runs" / "quick" / "c1.json").read_text())["benchmarks"]


def test_no_write_through_a_link_whatever_force_says(tmp_path, cli, capsys, cpu_result):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "report.md").write_text("keep me")
    link = tmp_path / "report"
    link.symlink_to(outside)  # a report folder that is a link
    assert cli("report", str(cpu_result), "--out", str(link), "--force") == 2
    _one_line(capsys.readouterr().err, "is a symbolic link")
    out = tmp_path / "out"
    out.mkdir()
    (out / "history.json").symlink_to(outside / "report.md")  # a planted target
    assert cli("train", "--model", "mlp", "--out", str(out), "--force") == 2
    _one_line(capsys.readouterr().err, "history.json is a symbolic link")
    assert (outside / "report.md").read_text() == "keep me" and sorted(p.name for p in outside.iterdir()) == [
        "report.md"
    ]


@pytest.mark.parametrize(
    "where,message",
    [("dir", "is a directory"), ("/dev/full", "not a regular file"), ("missing/x.json", "does not exist")],
)
def test_a_result_path_that_cannot_take_the_file_is_refused_before_the_run(tmp_path, mnist_root, where, message):
    path = {"dir": str(tmp_path), "/dev/full": "/dev/full", "missing/x.json": str(tmp_path / "missing" / "x.json")}[
        where
    ]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--pyargs",
            "mnist_models.harness.suite",
            "--quick",
            "-q",
            "--benchmark-json",
            path,
        ],
        cwd=tmp_path,
        env=_env(mnist_root),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 4 and message in done.stderr, done.stdout[-1500:] + done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0


@pytest.mark.parametrize(
    "env,args,message",
    [
        ({"WORLD_SIZE": "two"}, [], "WORLD_SIZE='two' is not a valid torchrun setting"),
        ({"MASTER_PORT": "abc"}, [], "MASTER_PORT='abc' is not a valid torchrun setting"),
        ({}, ["--port", "70000"], "--port must be a whole number from 0"),
        ({}, ["--port=-5"], "--port must be a whole number from 0"),
        (
            {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"},
            ["--nproc", "2"],
            "--nproc 2 inside a torchrun job",
        ),
    ],
)
def test_torchruns_environment_is_checked_before_any_rank(tmp_path, mnist_root, env, args, message):
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mnist_models", "ddp", "--device", "cpu", *args, "--out", str(tmp_path / "x")],
        env=_env(mnist_root, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and time.monotonic() - start < 60, done.stderr
    last = done.stderr.strip().splitlines()[-1]  # argparse's own refusals print the usage above it
    assert message in last and "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()


def test_the_failing_rank_is_named_before_the_peers_that_lost_it():
    """torch's own failure records: rank 0 saw the connection drop first, rank 1 raised."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from mnist_models.distributed.launch import describe

    def failure(rank: int, message: str, when: int) -> ProcessFailure:
        f = ProcessFailure(local_rank=rank, pid=100 + rank, exitcode=1, error_file="")
        f.message, f.timestamp = message, when
        return f

    exc = ChildFailedError(
        "ranks",
        {
            0: failure(0, "RuntimeError: [gloo] Connection reset by peer", 1),
            1: failure(1, "ValueError: a planted fault", 2),
        },
    )
    line = describe(exc)
    assert line.startswith("rank 1 (local rank 1) failed: ValueError: a planted fault; rank 0")


def test_a_batch_beyond_the_processs_memory_limit_is_refused(tmp_path, mnist_root):
    import resource

    cmd = [*MLP, "--model", "cnn", "--batch-size", "60000", "--epochs", "1", "--out", str(tmp_path / "x")]
    limit = 6 * 2**30  # below the 12.8 GiB a 60,000-image CNN batch needs, above what torch itself maps

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run(cmd, env=_env(mnist_root), capture_output=True, text=True, timeout=300, preexec_fn=cap)
    assert done.returncode == 2
    _one_line(done.stderr, "batch size 60,000 needs about", "choose a --batch-size of at most")


def test_more_threads_than_cores_is_warned_about(tmp_path, mnist_root):
    done = subprocess.run(
        [*MLP, "--epochs", "1", "--train-samples", "512", "--out", str(tmp_path / "x")],
        env=_env(mnist_root, OMP_NUM_THREADS=str((os.cpu_count() or 1) * 4)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "warning: torch runs up to" in done.stderr and "lower it to at most the cores" in done.stderr


TURKISH = {"LC_ALL": "tr_TR.UTF-8", "LANG": "tr_TR.UTF-8"}


@pytest.fixture(scope="module")
def turkish_locale():
    """The environment of a Turkish locale that is really installed (CI makes it; .ci/run)."""
    probe = subprocess.run(
        [sys.executable, "-c", "import locale; print(locale.setlocale(locale.LC_ALL, ''))"],
        env={**os.environ, **TURKISH},
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("the tr_TR.UTF-8 locale is not installed; .ci/run makes it with localedef")
        pytest.skip("the tr_TR.UTF-8 locale is not installed (localedef -i tr_TR -f UTF-8 tr_TR.UTF-8)")
    return {**os.environ, **TURKISH}


@pytest.mark.parametrize("label,accepted", [("Istanbul-i", True), ("Iii", True), ("é", False), ("ß", False)])
def test_labels_are_checked_the_same_in_any_locale(tmp_path, label, accepted, turkish_locale):
    done = subprocess.run(
        [sys.executable, "-m", "mnist_models", "run", label, "--quick", "-n", "2"],
        cwd=tmp_path,
        env=turkish_locale,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert ("not with the main job" in done.stderr) == accepted, done.stderr  # the label passed; -n is refused next
    assert ("LABEL must be a plain file name" in done.stderr) == (not accepted)


@pytest.mark.slow
def test_sigterm_to_the_cases_pytest_keeps_what_finished(tmp_path, mnist_root):
    out = tmp_path / "r.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--pyargs",
            "mnist_models.harness.suite",
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
            "--benchmark-json",
            str(out),
        ],
        cwd=tmp_path,
        env=_env(mnist_root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = out.with_name(out.name + ".partial")
    deadline = time.monotonic() + 120
    while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 2  # pytest's "interrupted", as for Ctrl-C
    kept = out if out.exists() else partial
    assert "train-mlp-cpu-bs1024" in {b["param"] for b in json.loads(kept.read_text())["benchmarks"]}


@pytest.mark.slow
def test_a_rank_that_raises_is_the_one_named_and_no_rendezvous_folder_is_left(tmp_path):
    """Two real gloo ranks; rank 1 raises, rank 0 then loses its peer in an all-reduce."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\nfrom rank_faults import raising\n"
        "from mnist_models.distributed.launch import launch\nlaunch(raising, (), 2)"
    )
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert done.returncode != 0
    line = done.stderr.strip().splitlines()[-1]
    assert "rank 1 (local rank 1) failed: ValueError: a planted fault" in line, done.stderr[-2000:]
    assert list(scratch.iterdir()) == []  # the agent's torchelastic_* folders went with the run


@pytest.mark.slow
def test_a_rank_that_hangs_is_the_one_named(tmp_path):
    """Two real gloo ranks; rank 1 never reaches the all-reduce, rank 0 times out waiting."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\nfrom rank_faults import hanging\n"
        "from mnist_models.distributed.launch import launch\nlaunch(hanging, (), 2)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True, timeout=120
    )
    line = done.stderr.strip().splitlines()[-1]
    assert done.returncode != 0 and "rank 1 hung: never reached the collective" in line, done.stderr[-2000:]
    assert "rank 0 (local rank 0) failed:" in line


@pytest.mark.slow
def test_sigterm_to_a_data_parallel_run_keeps_its_finished_epochs(tmp_path, mnist_root):
    import psutil

    out = tmp_path / "d"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnist_models",
            "ddp",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--nproc",
            "2",
            "--model",
            "mlp",
            "--batch-size",
            "32",
            "--epochs",
            "6",
            "--out",
            str(out),
        ],
        env=_env(mnist_root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = proc.stdout.readline()  # rank 0's line after the first epoch, which it saved before printing
    ranks = [p for p in psutil.Process(proc.pid).children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert first.startswith("epoch   1") and proc.returncode == 143, err
    _one_line(err, "terminated (SIGTERM); the ranks were stopped;", "finished epoch")
    kept = json.loads((out / "history.json").read_text())
    assert kept and kept[0]["epoch"] == 1 and (out / "model.pt").exists()
    assert f"holds the {len(kept)} finished epoch" in err
    assert ranks and not any(r.is_running() and r.status() != psutil.STATUS_ZOMBIE for r in ranks)
