"""Fixtures on the real MNIST files; the root conftest has checked once that they are there."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mnist_models.data import Split, load_split, resolve_root


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    return resolve_root()


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
