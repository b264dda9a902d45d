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
