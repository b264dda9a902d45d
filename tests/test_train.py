import dataclasses

import pytest
import torch

from mnist_models.data import ResidentLoader, Split
from mnist_models.train import (NonFiniteLossError, TrainConfig, build, check_config, evaluate,
                                fit, resolve_device, train_epoch)

CPU = torch.device("cpu")


def _without_seconds(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_same_seed_gives_the_same_history(mnist_root):
    cfg = TrainConfig(model="cnn", epochs=2, train_samples=2048, device="cpu", root=str(mnist_root))
    _, first = fit(cfg)
    _, second = fit(cfg)
    _, other = fit(dataclasses.replace(cfg, seed=1))
    assert _without_seconds(first) == _without_seconds(second)
    assert _without_seconds(first) != _without_seconds(other)
    assert [r["epoch"] for r in first] == [1, 2] and all(r["seconds"] > 0 for r in first)


@pytest.mark.parametrize("model,threshold", [("mlp", 0.950), ("cnn", 0.975)])
def test_one_epoch_on_real_mnist_reaches_threshold(model, threshold, mnist_root):
    _, history = fit(TrainConfig(model=model, epochs=1, device="cpu", root=str(mnist_root)))
    assert history[0]["test_accuracy"] >= threshold
    assert history[0]["train_loss"] < 0.5


def test_validation_split_is_reported(mnist_root):
    cfg = TrainConfig(model="mlp", epochs=1, train_samples=3000, val_samples=500,
                      device="cpu", root=str(mnist_root))
    _, history = fit(cfg)
    assert 0.5 < history[0]["val_accuracy"] <= 1.0 and "test_accuracy" in history[0]


def test_bf16_trains_and_the_seed_loader_trains(mnist_root):
    for cfg in (TrainConfig(model="cnn", epochs=1, train_samples=2048, precision="bf16"),
                TrainConfig(model="mlp", epochs=1, train_samples=2048, loader="seed")):
        _, history = fit(dataclasses.replace(cfg, device="cpu", root=str(mnist_root)))
        assert history[0]["test_accuracy"] > 0.6


def test_non_finite_loss_names_epoch_and_batch():
    x = torch.randn(256, 1, 28, 28)
    x[128:192] = float("nan")  # the third batch of 64
    batches = ResidentLoader(Split(x, torch.randint(0, 10, (256,))), 64, shuffle=False)
    model, opt, _ = build(TrainConfig(model="mlp"), CPU, len(batches))
    with pytest.raises(NonFiniteLossError, match="at epoch 4, batch 3; lower the learning rate"):
        train_epoch(model, batches, opt, CPU, epoch=4)


def test_evaluate_matches_a_direct_computation(test_split):
    model = build(TrainConfig(model="mlp"), CPU, 1)[0]
    part = test_split.take(500)
    result = evaluate(model, ResidentLoader(part, 128, shuffle=False), CPU)
    with torch.no_grad():
        logits = model(part.x)
    assert result["samples"] == 500
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == part.y).float().mean().item())
    assert result["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, part.y).item(), rel=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA GPU is available; use --device cpu"):
        resolve_device("cuda")
    assert resolve_device("auto") == CPU


@pytest.mark.parametrize("field,value,message", [
    ("precision", "fp8", "precision must be one of fp32, bf16"),
    ("batch_size", 0, "batch size must be at least 1"),
    ("epochs", 0, "epochs must be at least 1"),
    ("loader", "ffcv", "loader must be one of resident, seed"),
])
def test_bad_config_is_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        check_config(dataclasses.replace(TrainConfig(), **{field: value}))
