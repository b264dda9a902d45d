import pytest
import torch

from mnist_models.data import (DatasetError, ResidentLoader, Split, load_split, resolve_root,
                               seed_loader, split_validation)

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


def test_seed_loader_is_the_notebooks(mnist_root):
    loader = seed_loader(mnist_root, train=True, batch_size=64, download=False)
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


def test_truncated_file_is_reported_as_corrupt(root_copy):
    images = root_copy / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])
    with pytest.raises(DatasetError, match="corrupt or truncated.*MNIST_ROOT"):
        load_split(root_copy, train=False, download=False)


def test_garbage_labels_are_reported_as_corrupt(root_copy):
    labels = root_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[8:16] = b"\xff" * 8  # labels past 9
    labels.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="corrupt"):
        load_split(root_copy, train=False, download=False)
