"""Faults, round four: the newer commands (`ab`, `history`, `score`, `export`, `run`). Real
processes, real signals, real symbolic links and real copies of files."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "mnist_models"]
REPO = Path(__file__).parents[1]
# ab's smallest real run: one case, two pairs, the clock only, one worker a side (~15 s)
SMALL_AB = ["--pairs", "2", "--no-instructions", "--cases", "train-mlp-cpu-bs64", "--workers", "1"]


def _env(root, **extra) -> dict:
    return {**os.environ, "MNIST_ROOT": str(root), **extra}


def _one_line(err: str, *parts: str) -> None:
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    for part in parts:
        assert part in err, (part, err)


def _ab(out, *extra, root) -> subprocess.Popen:
    """`ab` with the checkout on both sides (accepted: the same code, by the same path)."""
    return subprocess.Popen(
        [*CLI, "ab", ".", ".", "--out", str(out), *SMALL_AB, *extra],
        cwd=REPO,
        env=_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# 1. the one-run-per-output lock, through a symbolic link to the same folder


@pytest.mark.slow
def test_a_second_ab_through_a_linked_parent_is_refused_naming_the_first(tmp_path, mnist_root):
    (tmp_path / "lp").symlink_to(tmp_path, target_is_directory=True)
    first = _ab(tmp_path / "ab15", "--machine-label", "FIRST", root=mnist_root)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".mnist-bench-*.lock")) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, "the first ab ended before the second could race it"
    second = _ab(tmp_path / "lp" / "ab15", "--machine-label", "SECOND", root=mnist_root)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2
    _one_line(err, f"is being written by another mnist-bench run (PID {first.pid})")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert json.loads((tmp_path / "ab15" / "base.json").read_text())["machine_info"]["mnist_bench"]["label"] == "FIRST"
    assert not list(tmp_path.glob(".mnist-bench-*.lock"))


# 2. every output of ab against every other and the inputs, before any work


@pytest.mark.parametrize(
    "json_at,message",
    [
        ("x", "--json {w}/x is the same place as --out {w}/x; choose another --json"),
        ("lp/x", "--json {w}/lp/x is the same place as --out {w}/x"),  # through a linked parent
        ("lp/x/new.json", "is the same place as --out {w}/x/new.json"),
        ("y", None),  # apart: accepted as far as this check goes (the run itself is not started)
    ],
)
def test_abs_outputs_are_checked_against_each_other_before_any_round(tmp_path, cli, capsys, json_at, message):
    (tmp_path / "lp").symlink_to(tmp_path, target_is_directory=True)
    if message is None:
        from mnist_models.files import check_apart

        check_apart([(tmp_path / "x", "--out", False), (tmp_path / "lp" / json_at, "--json", True)])
        return
    assert cli("ab", str(REPO), str(REPO), "--out", str(tmp_path / "x"), "--json", str(tmp_path / json_at)) == 2
    _one_line(capsys.readouterr().err, message.format(w=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lp"]  # nothing made, no lock left


def test_a_json_that_would_hold_the_out_folder_or_overwrite_a_side_is_refused(tmp_path, cli, capsys):
    assert cli("ab", str(REPO), str(REPO), "--out", str(tmp_path / "x" / "y"), "--json", str(tmp_path / "x")) == 2
    _one_line(capsys.readouterr().err, f"--json {tmp_path}/x would be a file with --out {tmp_path}/x/y inside it")
    python = tmp_path / "venv" / "bin" / "python"  # an environment's python: a side, and an input
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    side, before = str(tmp_path / "venv"), python.read_text()
    assert cli("ab", side, side, "--out", str(tmp_path / "o"), "--json", str(python), "--force") == 2
    _one_line(capsys.readouterr().err, f"--json {python} is one of the inputs")
    assert python.read_text() == before and not (tmp_path / "o").exists()


def test_write_files_writes_none_when_one_target_is_a_folder_or_holds_another(tmp_path):
    from mnist_models.errors import UsageError
    from mnist_models.files import write_files

    (tmp_path / "d").mkdir()
    for contents in (
        {tmp_path / "a.json": b"a", tmp_path / "d": b"d"},
        {tmp_path / "x" / "b.json": b"b", tmp_path / "x": b"x"},
    ):
        with pytest.raises(UsageError):
            write_files(contents)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"] and not list((tmp_path / "d").iterdir())
