"""Fixtures on the real MNIST files; the root conftest has checked once that they are there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_models.core.data import Split, load_split, resolve_root


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    return resolve_root().resolve()  # absolute: subprocesses run in other folders


@pytest.fixture(scope="session")
def train_split(mnist_root: Path) -> Split:
    return load_split(mnist_root, train=True, download=False)


@pytest.fixture(scope="session")
def test_split(mnist_root: Path) -> Split:
    return load_split(mnist_root, train=False, download=False)


@pytest.fixture
def root_copy(mnist_root: Path, tmp_path: Path) -> Path:
    """A writable copy of the dataset root, for tests that damage files."""
    shutil.copytree(mnist_root / "MNIST" / "raw", tmp_path / "MNIST" / "raw")
    return tmp_path


@pytest.fixture
def cli():
    """The command line in this process: cli("train", ...) -> its exit code, argparse's included."""
    from mnist_models.cli import main

    def run(*argv: str) -> int:
        try:
            return main(list(argv))
        except SystemExit as exc:
            return exc.code

    return run


def _tmpfs(where: Path, options: str) -> Path:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root only): {done.stderr.strip()}")
    return where


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs: a disk that fills. Skips where mounting is refused (not root)."""
    yield _tmpfs(tmp_path / "disk", "size=64k")
    subprocess.run(["umount", str(tmp_path / "disk")], check=True)


@pytest.fixture
def read_only(tmp_path):
    """A read-only tmpfs, which root cannot write either (chmod would not stop root)."""
    yield _tmpfs(tmp_path / "ro", "ro,size=64k")
    subprocess.run(["umount", str(tmp_path / "ro")], check=True)


REPO = Path(__file__).parents[1]
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def repo() -> Path:
    """The checkout's root: bench.sh, results/, the root conftest."""
    return REPO


@pytest.fixture(scope="session")
def cpu_result() -> Path:
    """A small hand-made result file: three cpu cases with round numbers (tests/data)."""
    return DATA / "fixture-cpu.json"


@pytest.fixture(scope="session")
def gpu_result() -> Path:
    """Its twin from a machine with a GPU: the same cpu cases, and cuda ones."""
    return DATA / "fixture-gpu.json"


@pytest.fixture(scope="session")
def record() -> list[Path]:
    """Frozen copies of three real result files (tests/data/record: three EPYC machines, format 1),
    so that what users commit to results/ never changes what the tests see."""
    return sorted((DATA / "record").glob("*.json"))


@pytest.fixture(scope="session")
def another_machine() -> Path:
    """A fourth machine's real result file (a 2-vCPU Xeon with AMX), apart from the record."""
    return DATA / "xeon-amx-2core.json"


@pytest.fixture(scope="session")
def current_run() -> Path:
    """A full run of the current workload version (a frozen copy of the score's reference run)."""
    return DATA / "current-workload.json"


@pytest.fixture
def edited_result(tmp_path):
    """edited_result(src, edit, name) -> a copy of the result file `src` with edit(doc) applied."""

    def make(src: Path, edit, name: str = "edited.json") -> Path:
        doc = json.loads(Path(src).read_text())
        edit(doc)
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))  # NaN and Infinity are written as JSON's extensions
        return path

    return make


@pytest.fixture
def repo_copy(tmp_path, repo, monkeypatch) -> Path:
    """What bash bench.sh needs, copied to a folder of its own: run it there, not in the checkout,
    with this test run's python (PYTHON), which has mnist-bench installed: no .venv is made."""
    monkeypatch.setenv("PYTHON", sys.executable)
    for name in ("bench.sh", "conftest.py", "pyproject.toml"):
        shutil.copy(repo / name, tmp_path / name)
    for folder in ("bench", "results"):
        shutil.copytree(repo / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path
