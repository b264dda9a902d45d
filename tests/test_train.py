import dataclasses

import pytest
import torch

from mnist_models.data import ResidentLoader, Split
from mnist_models.train import (NonFiniteLossError, TrainConfig, build, check_config, evaluate,
                                fit, graphed, resolve_device, train_epoch)

CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


def _without_seconds(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_same_seed_gives_the_same_history(mnist_root, train_split, test_split):
    cfg = TrainConfig(model="cnn", epochs=2, train_samples=2048, device="cpu", root=str(mnist_root))
    _, first = fit(cfg)
    _, second = fit(cfg, splits=(train_split, test_split))  # splits loaded once, as the study does
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
    ("optimizer", "sgd", "cuda graphs work with the adam optimizer only"),
])
def test_bad_config_is_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        check_config(dataclasses.replace(TrainConfig(cuda_graphs=field == "optimizer"), **{field: value}))


def test_cuda_graphs_on_the_cpu_is_a_clear_error():
    cfg = TrainConfig(model="mlp", cuda_graphs=True)
    model, opt, _ = build(cfg, CPU, 10)
    with pytest.raises(ValueError, match="CUDA graphs need the model on a CUDA device, not cpu"):
        graphed(model, opt, cfg, 10)


def _graphed_and_eager(split, cfg, epochs=2):
    """Weights and epoch results of the same training, eager and with cuda graphs."""
    cuda = torch.device("cuda")
    out = []
    for graphs in (False, True):
        c = dataclasses.replace(cfg, cuda_graphs=graphs)
        batches = ResidentLoader(split, c.batch_size, seed=c.seed)
        model, opt, sched = build(c, cuda, len(batches))
        graph = graphed(model, opt, c, len(batches))
        results = [train_epoch(model, batches, opt, cuda, c.precision, sched, e, graph)
                   for e in range(1, epochs + 1)]
        out.append((model.state_dict(), results))
    return out


@needs_cuda
@pytest.mark.parametrize("schedule", ["constant", "onecycle"])
def test_cuda_graphs_train_like_eager(train_split, schedule):
    # 4,128 images at batch 64: 64 replayed batches and an eager tail of 32
    split = Split(train_split.x[:4128].cuda(), train_split.y[:4128].cuda())
    cfg = TrainConfig(model="mlp", lr=3e-3, schedule=schedule, epochs=2)
    (eager_w, eager), (graph_w, graph) = _graphed_and_eager(split, cfg)
    assert [r["samples"] for r in graph] == [4128, 4128]
    for e, g in zip(eager, graph):
        assert g["loss"] == pytest.approx(e["loss"], rel=1e-3)
        assert g["accuracy"] == pytest.approx(e["accuracy"], abs=2 / 4128)
    for name, w in eager_w.items():
        torch.testing.assert_close(graph_w[name], w, rtol=1e-3, atol=1e-4)


@needs_cuda
def test_cuda_graphs_cnn_bf16_learns_and_catches_nan(train_split, test_split):
    cuda = torch.device("cuda")
    split = Split(train_split.x[:8192].cuda(), train_split.y[:8192].cuda())
    cfg = TrainConfig(model="cnn", batch_size=256, precision="bf16", cuda_graphs=True)
    batches = ResidentLoader(split, 256)
    model, opt, _ = build(cfg, cuda, len(batches))
    result = train_epoch(model, batches, opt, cuda, "bf16", graph=graphed(model, opt, cfg, len(batches)))
    test = ResidentLoader(Split(test_split.x.cuda(), test_split.y.cuda()), 2000, shuffle=False)
    assert result["samples"] == 8192 and evaluate(model, test, cuda, "bf16")["accuracy"] > 0.8
    x = split.x.clone()
    x[512:768] = float("nan")  # the third batch, inside the graph
    model, opt, _ = build(cfg, cuda, len(batches))
    graph = graphed(model, opt, cfg, len(batches))
    with pytest.raises(NonFiniteLossError, match="at epoch 1, batch 3"):
        train_epoch(model, ResidentLoader(Split(x, split.y), 256, shuffle=False), opt, cuda, "bf16",
                    graph=graph)
