"""MNIST as tensors: the device-resident loader (the default) and the notebook's DataLoader.

    from mnist_models.core.data import load_split, ResidentLoader
    train = load_split(train=True, device="cpu")          # root from MNIST_ROOT or ./datasets
    for x, y in ResidentLoader(train, batch_size=256, seed=0):
        ...

torchvision parses the IDX files; this module only finds them, checks them and
turns each split into one normalized tensor on the chosen device.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import transforms
from torchvision.datasets import MNIST

from ..errors import UsageError
from .config import TEST_SIZE, TRAIN_SIZE

MEAN, STD = 0.1307, 0.3081  # pixel statistics of the 60,000 training images


class DatasetError(UsageError):
    """MNIST could not be found, downloaded or read: the message names the file and the fix."""


@dataclass(frozen=True)
class Split:
    """One MNIST split as tensors on one device."""

    x: torch.Tensor  # (N, 1, 28, 28) float32, normalized with MEAN and STD
    y: torch.Tensor  # (N,) int64 labels 0-9

    def __len__(self) -> int:
        return len(self.y)

    def take(self, n: int | None) -> Split:
        """The first n samples (all when n is None)."""
        return self if n is None else Split(self.x[:n], self.y[:n])

    def to(self, device: str | torch.device) -> Split:
        """The same split on `device` (itself when already there)."""
        return Split(self.x.to(device), self.y.to(device))


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """The dataset root: the argument, else $MNIST_ROOT, else ./datasets."""
    return Path(root or os.environ.get("MNIST_ROOT") or "./datasets")


# torchvision's file names (unpacked), with the IDX magic number and the shape each holds
RAW_FILES = {
    "train-images-idx3-ubyte": (0x803, (TRAIN_SIZE, 28, 28)),
    "train-labels-idx1-ubyte": (0x801, (TRAIN_SIZE,)),
    "t10k-images-idx3-ubyte": (0x803, (TEST_SIZE, 28, 28)),
    "t10k-labels-idx1-ubyte": (0x801, (TEST_SIZE,)),
}
FIX = "delete it to download again, or set MNIST_ROOT to a good copy"


def check_idx(path: Path, magic: int, shape: tuple[int, ...]) -> None:
    """DatasetError naming `path` and what is wrong, unless it is an unsigned-byte IDX file
    with this magic number and shape, and exactly as long as that says."""
    header = 4 + 4 * len(shape)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(header)
    except OSError as exc:
        raise DatasetError(
            f"{path}: cannot read it ({exc.strerror}); fix its permissions, or set MNIST_ROOT to a readable copy"
        ) from None
    if size == 0:
        raise DatasetError(f"{path}: the file is empty (0 bytes); {FIX}")
    if len(head) < header:
        raise DatasetError(f"{path}: {size} bytes, shorter than an IDX header; truncated: {FIX}")
    found = int.from_bytes(head[:4], "big")
    if found != magic:
        raise DatasetError(
            f"{path}: not an MNIST {'image' if magic == 0x803 else 'label'} file (IDX magic "
            f"number 0x{found:08x}, expected 0x{magic:08x}); {FIX}"
        )
    dims = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(len(shape)))
    if dims != shape:
        raise DatasetError(
            f"{path}: holds {'x'.join(map(str, dims))}, expected MNIST's {'x'.join(map(str, shape))}; {FIX}"
        )
    if size != header + math.prod(shape):
        raise DatasetError(
            f"{path}: {size:,} bytes, expected {header + math.prod(shape):,}: truncated or padded; {FIX}"
        )


def _missing(raw: Path) -> str:
    """Which raw files are not there, with a hint where only the .gz is."""
    gone = [n for n in RAW_FILES if not (raw / n).is_file()]
    packed = [n for n in gone if (raw / f"{n}.gz").is_file()]
    hint = f" ({', '.join(packed)} only as .gz: gunzip them there)" if packed else ""
    return ", ".join(gone) + hint


def ensure_mnist(root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The root once MNIST's four raw files are under root/MNIST/raw and sound (IDX header
    and size), downloading them when missing and allowed; DatasetError naming the file and
    the fix otherwise, and no folder left behind by a failed download."""
    path = resolve_root(root)
    raw = path / "MNIST" / "raw"
    if any(not (raw / name).is_file() for name in RAW_FILES):
        if not download:
            some = any((raw / name).is_file() for name in RAW_FILES)
            raise DatasetError(
                f"MNIST under {raw} lacks {_missing(raw)}; set MNIST_ROOT to the folder that holds MNIST/raw"
                if some
                else f"MNIST not found under {raw}; set MNIST_ROOT to the folder that holds MNIST/raw"
            )
        _download(path, raw)
    for name, (magic, shape) in RAW_FILES.items():
        check_idx(raw / name, magic, shape)
    return path


def _download(path: Path, raw: Path) -> None:
    """torchvision's download (it unpacks .gz files already there without the network)."""
    created = next((p for p in [*reversed(raw.parents), raw] if not p.exists()), None)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            MNIST(str(path), train=True, download=True)
            MNIST(str(path), train=False, download=True)
    except Exception as exc:  # offline: urllib errors come in many types
        lacking = _missing(raw)
        if created is not None:  # the folders the try made, with any half-downloaded file
            shutil.rmtree(created, ignore_errors=True)
        raise DatasetError(
            f"MNIST not found under {raw} (lacking {lacking}) and torchvision's download "
            f"failed ({type(exc).__name__}); set MNIST_ROOT to a folder that holds "
            "MNIST/raw, or go online"
        ) from None


class RawMNIST(MNIST):
    """torchvision's MNIST read from the raw IDX files alone: torchvision would load a legacy
    MNIST/processed/*.pt instead when one is there, which nothing here has checked."""

    def _check_legacy_exist(self) -> bool:
        return False

    @property
    def raw_folder(self) -> str:  # torchvision names the folder after the class
        return os.path.join(self.root, "MNIST", "raw")


def mnist(root: str | os.PathLike | None = None, train: bool = True, download: bool = True, transform=None) -> MNIST:
    """torchvision's MNIST at `root`, from the raw files ensure_mnist checked (downloaded when
    missing and allowed); clear errors otherwise."""
    path = ensure_mnist(root, download)
    try:
        return RawMNIST(str(path), train=train, download=False, transform=transform)
    except RuntimeError as exc:
        raise _corrupt(path, exc) from exc


def _corrupt(path: Path, exc: Exception) -> DatasetError:
    return DatasetError(
        f"MNIST files under {path}/MNIST/raw are corrupt or truncated ({exc}); "
        "delete them to download again, or set MNIST_ROOT to a good copy"
    )


def load_split(
    root: str | os.PathLike | None = None, train: bool = True, device: str | torch.device = "cpu", download: bool = True
) -> Split:
    """One split as a single normalized float tensor on `device`, checked for sanity."""
    ds = mnist(root, train=train, download=download)
    images, labels = ds.data, ds.targets
    if int(labels.max()) > 9:  # check_idx has seen the header and size; the labels are data
        path = resolve_root(root) / "MNIST" / "raw" / f"{'train' if train else 't10k'}-labels-idx1-ubyte"
        raise DatasetError(f"{path}: holds labels up to {int(labels.max())}, expected 0-9; {FIX}")
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
    moved once per epoch; each batch is then one index_select on the split's device,
    cheaper than `x[idx]` (results/fast/floor.md measures both).
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
                yield x[i : i + self.batch_size], y[i : i + self.batch_size]
            return
        perm = torch.randperm(n, generator=self.generator).to(y.device)
        for idx in perm.split(self.batch_size):
            yield x.index_select(0, idx), y.index_select(0, idx)


def notebook_loader(
    root: str | os.PathLike | None = None,
    train: bool = True,
    batch_size: int = 64,
    limit: int | None = None,
    download: bool = True,
) -> DataLoader:
    """The notebook's loader, kept for comparison: DataLoader(MNIST(transform=ToTensor())).

    As in the seed: no shuffling, no normalization, one Python object per sample.
    """
    ds = mnist(root, train=train, download=download, transform=transforms.ToTensor())
    if limit is not None:
        ds = Subset(ds, range(limit))
    return DataLoader(ds, batch_size=batch_size)
