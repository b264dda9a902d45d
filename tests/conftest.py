"""Fixtures on the real MNIST files. In CI (CI set) a missing dataset fails; elsewhere it skips."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mnist_models.data import DatasetError, Split, load_split, resolve_root


def _root_or_fail() -> Path:
    root = resolve_root()
    try:
        load_split(root, train=False, download=False)
    except DatasetError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI must have the dataset)", pytrace=False)
        pytest.skip(str(exc))
    return root


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    return _root_or_fail()


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
