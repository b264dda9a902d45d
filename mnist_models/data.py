"""MNIST as tensors: the device-resident loader (the default) and the seed's DataLoader.

    from mnist_models.data import load_split, ResidentLoader
    train = load_split(train=True, device="cpu")          # root from MNIST_ROOT or ./datasets
    for x, y in ResidentLoader(train, batch_size=256, seed=0):
        ...

torchvision parses the IDX files; this module only finds them, checks them and
turns each split into one normalized tensor on the chosen device.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import transforms
from torchvision.datasets import MNIST

MEAN, STD = 0.1307, 0.3081  # pixel statistics of the 60,000 training images
TRAIN_SIZE, TEST_SIZE = 60_000, 10_000


class DatasetError(RuntimeError):
    """MNIST could not be found, downloaded or read."""


@dataclass(frozen=True)
class Split:
    """One MNIST split as tensors on one device."""

    x: torch.Tensor  # (N, 1, 28, 28) float32, normalized with MEAN and STD
    y: torch.Tensor  # (N,) int64 labels 0-9

    def __len__(self) -> int:
        return len(self.y)

    def take(self, n: int | None) -> "Split":
        """The first n samples (all when n is None)."""
        return self if n is None else Split(self.x[:n], self.y[:n])

    def to(self, device: str | torch.device) -> "Split":
        """The same split on `device` (itself when already there)."""
        return Split(self.x.to(device), self.y.to(device))


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """The dataset root: the argument, else $MNIST_ROOT, else ./datasets."""
    return Path(root or os.environ.get("MNIST_ROOT") or "./datasets")


RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")  # torchvision's names, unpacked


def ensure_mnist(root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The root once MNIST's four raw files are under root/MNIST/raw, downloading them when
    missing and allowed; DatasetError otherwise, and no folder left behind by a failed try."""
    path = resolve_root(root)
    raw = path / "MNIST" / "raw"
    if all((raw / name).is_file() for name in RAW_FILES):
        return path
    if not download:
        raise DatasetError(f"MNIST not found under {raw}; "
                           "set MNIST_ROOT to the folder that holds MNIST/raw")
    created = next((p for p in [*reversed(raw.parents), raw] if not p.exists()), None)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            MNIST(str(path), train=True, download=True)
            MNIST(str(path), train=False, download=True)
    except Exception as exc:  # offline: urllib errors come in many types
        if created is not None:  # the folders the try made, with any half-downloaded file
            shutil.rmtree(created, ignore_errors=True)
        raise DatasetError(f"MNIST not found under {raw} and torchvision's download failed "
                           f"({type(exc).__name__}); set MNIST_ROOT to a folder that holds "
                           "MNIST/raw, or go online") from exc
    return path


def mnist(root: str | os.PathLike | None = None, train: bool = True, download: bool = True,
          transform=None) -> MNIST:
    """torchvision's MNIST at `root`, downloaded when missing and allowed; clear errors otherwise."""
    path = ensure_mnist(root, download)
    try:
        return MNIST(str(path), train=train, download=False, transform=transform)
    except RuntimeError as exc:
        raise _corrupt(path, exc) from exc


def _corrupt(path: Path, exc: Exception) -> DatasetError:
    return DatasetError(f"MNIST files under {path}/MNIST/raw are corrupt or truncated ({exc}); "
                        "delete them to download again, or set MNIST_ROOT to a good copy")


def load_split(root: str | os.PathLike | None = None, train: bool = True,
               device: str | torch.device = "cpu", download: bool = True) -> Split:
    """One split as a single normalized float tensor on `device`, checked for sanity."""
    ds = mnist(root, train=train, download=download)
    images, labels = ds.data, ds.targets
    expected = TRAIN_SIZE if train else TEST_SIZE
    if images.shape != (expected, 28, 28) or labels.shape != (expected,) or int(labels.max()) > 9:
        raise _corrupt(resolve_root(root), ValueError(
            f"expected {expected} images of 28x28 with labels 0-9, got {tuple(images.shape)}"))
    x = images.to(device).unsqueeze(1).float().div_(255).sub_(MEAN).div_(STD)
    return Split(x, labels.to(device))


def split_validation(split: Split, n_val: int, seed: int = 0) -> tuple[Split, Split]:
    """Hold out `n_val` random samples of `split` (seeded): (train, validation)."""
    if not 0 < n_val < len(split):
        raise ValueError(f"validation size must be between 1 and {len(split) - 1}, got {n_val}")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(split), generator=gen).to(split.y.device)
    val, train = perm[:n_val], perm[n_val:]
    return Split(split.x[train], split.y[train]), Split(split.x[val], split.y[val])


class ResidentLoader:
    """Batches cut from a resident Split by a seeded randperm each epoch; no per-sample work.

    The permutation is drawn on the CPU (so CPU and GPU runs see the same order) and
    moved once per epoch; each batch is then one index_select on the split's device
    (half of `x[idx]`'s cost at batch 64 on the cpu: 16 us against 34, results/fast/floor.md).
    """

    def __init__(self, split: Split, batch_size: int, shuffle: bool = True, seed: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.split, self.batch_size, self.shuffle = split, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, x, y = len(self.split), self.split.x, self.split.y
        if not self.shuffle:
            for i in range(0, n, self.batch_size):
                yield x[i:i + self.batch_size], y[i:i + self.batch_size]
            return
        perm = torch.randperm(n, generator=self.generator).to(y.device)
        for idx in perm.split(self.batch_size):
            yield x.index_select(0, idx), y.index_select(0, idx)


def seed_loader(root: str | os.PathLike | None = None, train: bool = True, batch_size: int = 64,
                limit: int | None = None, download: bool = True) -> DataLoader:
    """The notebook's loader, kept for comparison: DataLoader(MNIST(transform=ToTensor())).

    As in the seed: no shuffling, no normalization, one Python object per sample.
    """
    ds = mnist(root, train=train, download=download, transform=transforms.ToTensor())
    if limit is not None:
        ds = Subset(ds, range(limit))
    return DataLoader(ds, batch_size=batch_size)
