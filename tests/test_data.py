import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from mnist_models.core.data import (
    DatasetError,
    ResidentLoader,
    Split,
    load_split,
    notebook_loader,
    resolve_root,
    split_validation,
)

TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_split_sizes_and_label_counts(train_split, test_split):
    assert train_split.x.shape == (60_000, 1, 28, 28) and train_split.x.dtype == torch.float32
    assert test_split.x.shape == (10_000, 1, 28, 28)
    assert torch.bincount(train_split.y).tolist() == TRAIN_LABEL_COUNTS


def test_training_images_are_normalized(train_split):
    assert train_split.x.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert train_split.x.std().item() == pytest.approx(1.0, abs=1e-3)


def test_root_comes_from_argument_then_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_ROOT", str(tmp_path))
    assert resolve_root() == tmp_path
    assert resolve_root("elsewhere").name == "elsewhere"
    monkeypatch.delenv("MNIST_ROOT")
    assert str(resolve_root()) == "datasets"


def test_validation_split_is_disjoint_and_sized(test_split):
    train, val = split_validation(test_split, 1000, seed=1)
    assert (len(train), len(val)) == (9000, 1000)
    pairs = {(x.sum().item(), y.item()) for x, y in zip(torch.cat([train.x, val.x]), torch.cat([train.y, val.y]))}
    assert len(pairs) == len({(x.sum().item(), y.item()) for x, y in zip(test_split.x, test_split.y)})
    with pytest.raises(ValueError, match="validation size"):
        split_validation(test_split, 10_000)


def test_resident_loader_covers_every_sample_once_per_epoch():
    split = Split(torch.arange(1000.0).reshape(1000, 1, 1, 1), torch.arange(1000))
    loader = ResidentLoader(split, batch_size=64, seed=3)
    epochs = [torch.cat([y for _, y in loader]) for _ in range(2)]
    assert len(loader) == 16 == len(list(loader))
    for seen in epochs:
        assert sorted(seen.tolist()) == list(range(1000))
    assert not torch.equal(epochs[0], epochs[1])  # a new order each epoch
    again = torch.cat([y for _, y in ResidentLoader(split, batch_size=64, seed=3)])
    assert torch.equal(again, epochs[0])  # the same seed gives the same order
    assert all(torch.equal(x.flatten(), y.float()) for x, y in loader)  # images stay with labels


def test_notebook_loader_is_the_notebooks(mnist_root):
    loader = notebook_loader(mnist_root, train=True, batch_size=64, download=False)
    assert len(loader) == 938  # the notebook's len(train_loader)
    x, y = next(iter(loader))
    assert x.shape == (64, 1, 28, 28) and 0.0 <= x.min() and x.max() <= 1.0


def test_missing_dataset_names_root_and_fix(tmp_path):
    with pytest.raises(DatasetError, match=f"not found under {tmp_path}.*MNIST_ROOT"):
        load_split(tmp_path, download=False)


def test_failed_download_says_go_online(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    with pytest.raises(DatasetError, match="download failed.*MNIST_ROOT.*go online"):
        load_split(tmp_path / "new", download=True)
    assert not (tmp_path / "new").exists()  # the folders the download made are gone again
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    with pytest.raises(DatasetError, match="download failed"):
        load_split(tmp_path, download=True)
    assert (tmp_path / "MNIST" / "raw").is_dir()  # a folder that was there stays


def _damage(raw: Path, fault: str) -> Path:
    """One real MNIST file under `raw` damaged as a user's disk or download might."""
    images, labels = raw / "t10k-images-idx3-ubyte", raw / "t10k-labels-idx1-ubyte"
    data = images.read_bytes()
    if fault == "truncated":
        images.write_bytes(data[:5000])
    elif fault == "padded":
        images.write_bytes(data + b"\0" * 10)
    elif fault == "empty":
        images.write_bytes(b"")
    elif fault == "header only":
        images.write_bytes(data[:10])
    elif fault == "wrong magic":
        images.write_bytes(labels.read_bytes())  # a label file under an image file's name
    elif fault == "wrong shape":
        images.write_bytes(data[:4] + (5000).to_bytes(4, "big") + data[8:])
    elif fault == "labels past 9":
        raw_labels = bytearray(labels.read_bytes())
        raw_labels[8:16] = b"\xff" * 8
        labels.write_bytes(bytes(raw_labels))
        return labels
    return images


@pytest.mark.parametrize(
    "fault,message",
    [
        ("truncated", "5,000 bytes, expected 7,840,016: truncated or padded"),
        ("padded", "7,840,026 bytes, expected 7,840,016: truncated or padded"),
        ("empty", "the file is empty (0 bytes)"),
        ("header only", "10 bytes, shorter than an IDX header"),
        ("wrong magic", "not an MNIST image file (IDX magic number 0x00000801, expected 0x00000803)"),
        ("wrong shape", "holds 5000x28x28, expected MNIST's 10000x28x28"),
        ("labels past 9", "holds labels up to 255, expected 0-9"),
    ],
)
def test_a_damaged_file_is_named_with_its_fault(root_copy, cli, capsys, fault, message):
    damaged = _damage(root_copy / "MNIST" / "raw", fault)
    with pytest.raises(DatasetError) as error:
        load_split(root_copy, train=False, download=False)
    assert str(error.value).startswith(f"{damaged}: ") and message in str(error.value)
    assert "MNIST_ROOT" in str(error.value)
    code = cli("train", "--model", "mlp", "--epochs", "1", "--root", str(root_copy), "--out", str(root_copy / "run"))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err and not (root_copy / "run").exists()


def test_a_missing_or_packed_file_is_named(root_copy):
    raw = root_copy / "MNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match=f"MNIST under {raw} lacks t10k-labels-idx1-ubyte; set MNIST_ROOT"):
        load_split(root_copy, train=False, download=False)
    images = raw / "t10k-images-idx3-ubyte"
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(images.read_bytes()))
    images.unlink()
    with pytest.raises(
        DatasetError,
        match=r"lacks t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte "
        r"\(t10k-images-idx3-ubyte only as .gz: gunzip them there\)",
    ):
        load_split(root_copy, train=False, download=False)


NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]


@pytest.mark.slow
def test_an_unreadable_file_is_named(mnist_root):
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("running as root, which reads any file, and setpriv is missing")
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:  # /tmp: reachable by nobody
        Path(folder).chmod(0o755)
        images = Path(folder) / "t10k-images-idx3-ubyte"
        shutil.copy(mnist_root / "MNIST" / "raw" / images.name, images)
        images.chmod(0o644)

        def check() -> subprocess.CompletedProcess:
            code = (
                "from pathlib import Path; from mnist_models.data import check_idx\n"
                f"check_idx(Path({str(images)!r}), 0x803, (10000, 28, 28))"
            )
            as_nobody = NOBODY if os.geteuid() == 0 else []  # root reads any file: ask as nobody
            return subprocess.run([*as_nobody, sys.executable, "-c", code], capture_output=True, text=True)

        if check().returncode != 0:  # the control: the readable file passes
            pytest.skip("this python cannot run as another user here")
        images.chmod(0o000)
        result = check()
    assert result.returncode == 1 and f"{images}: cannot read it (Permission denied)" in result.stderr


def test_a_planted_processed_cache_is_never_what_trains(root_copy):
    """torchvision loads MNIST/processed/{training,test}.pt when present, unchecked: five blank
    images there would pass for the dataset. The raw files that were checked are what is read."""
    processed = root_copy / "MNIST" / "processed"
    processed.mkdir()
    blank = (torch.zeros(5, 28, 28, dtype=torch.uint8), torch.zeros(5, dtype=torch.long))
    for name in ("training.pt", "test.pt"):
        torch.save(blank, processed / name)
    train, test = load_split(root_copy, train=True, download=False), load_split(root_copy, train=False, download=False)
    assert len(train) == 60_000 and len(test) == 10_000 and train.x.std() > 0.5
