"""Training and evaluation: TrainConfig, train_epoch, evaluate, fit -> history.

    from mnist_models.train import TrainConfig, fit
    model, history = fit(TrainConfig(model="cnn", epochs=10))
    print(history[-1]["test_accuracy"])

On cuda nothing in the batch loop reads a value back to the host: losses and
correct counts stay on the device and are read once per epoch.
"""
from __future__ import annotations

import contextlib
import functools
import time
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import TrainConfig, check_config
from .data import ResidentLoader, Split, load_split, seed_loader, split_validation
from .graphs import GraphedTraining
from .hardware import free_memory
from .models import create_model, training_bytes_per_sample
from .timing import sync

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    """auto picks cuda when present; asking for cuda without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose from auto, cpu, cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("cuda requested but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


def autocast(device: torch.device, precision: str, cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on the device, or nothing for fp32 (no weight-cast cache in a CUDA graph)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16",
                          cache_enabled=cache)


def build(cfg: TrainConfig, device: torch.device, steps_per_epoch: int):
    """A fresh model, optimizer and (optional) per-batch scheduler, seeded by cfg.seed."""
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, **({"pool_first": False} if cfg.relu_first else {})).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.compile:
        model = torch.compile(model)
    fused = cfg.fused or None  # None lets torch pick foreach
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=fused, capturable=cfg.cuda_graphs)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                              fused=fused)
    sched = None
    if cfg.schedule == "onecycle":
        # betas stay fixed: a CUDA graph holds them as host floats, so cycling them would
        # make graphed and eager runs of one recipe differ
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
            cycle_momentum=False)
    return model, opt, sched


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               precision: str = "fp32", graph_safe: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch: (loss, correct count), both left on the device."""
    with autocast(x.device, precision, cache=not graph_safe):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), (logits.argmax(1) == y).sum()


def graphed(model: nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig,
            steps: int) -> GraphedTraining | None:
    """The captured training step for cfg.cuda_graphs (None when off); it costs a few steps' time."""
    if not cfg.cuda_graphs:
        return None
    step = functools.partial(train_step, model, optimizer, precision=cfg.precision)
    return GraphedTraining(step, model, optimizer, cfg.batch_size, steps)


def train_epoch(model: nn.Module, batches: Batches, optimizer: torch.optim.Optimizer,
                device: torch.device, precision: str = "fp32", scheduler=None,
                epoch: int = 1, graph: GraphedTraining | None = None) -> dict:
    """One pass over `batches`: {"loss", "accuracy", "samples"}; raises on a non-finite loss.

    With `graph` (from `graphed`), full batches replay its captured step instead.
    """
    if graph is not None:
        losses, corrects, sizes = graph.epoch(batches, scheduler)
        return _epoch_totals(losses, corrects, sizes, epoch)
    model.train()
    losses, corrects, sizes = [], [], []
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss, correct = train_step(model, optimizer, x, y, precision)
        if scheduler is not None:
            scheduler.step()
        losses.append(loss)
        corrects.append(correct)
        sizes.append(len(y))
    return _epoch_totals(torch.stack(losses).float(), torch.stack(corrects), sizes, epoch)


def _epoch_totals(losses: torch.Tensor, corrects: torch.Tensor, sizes: list[int],
                  epoch: int) -> dict:
    finite = torch.isfinite(losses).cpu()  # the one host sync of the epoch
    if not bool(finite.all()):
        batch = int((~finite).nonzero()[0]) + 1
        raise NonFiniteLossError(
            f"loss became {losses[batch - 1].item()} at epoch {epoch}, batch {batch}; "
            "lower the learning rate (--lr) or train in fp32")
    weights = torch.tensor(sizes, dtype=torch.float32, device=losses.device)
    n = sum(sizes)
    return {"loss": float((losses * weights).sum()) / n,
            "accuracy": int(corrects.sum()) / n, "samples": n}


@torch.inference_mode()
def evaluate(model: nn.Module, batches: Batches, device: torch.device,
             precision: str = "fp32") -> dict:
    """Mean loss and accuracy over `batches`: {"loss", "accuracy", "samples"}."""
    model.eval()
    loss, correct, n = torch.zeros((), device=device), torch.zeros((), device=device), 0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(x)
        loss += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
    return {"loss": float(loss) / n, "accuracy": float(correct) / n, "samples": n}


@torch.inference_mode()
def infer(model: nn.Module, x: torch.Tensor, batch_size: int, precision: str = "fp32") -> torch.Tensor:
    """Logits for every row of x, in batches, in eval mode (fp32 out)."""
    model.eval()
    out = torch.empty(len(x), 10, device=x.device)
    for i in range(0, len(x), batch_size):
        with autocast(x.device, precision):
            out[i:i + batch_size] = model(x[i:i + batch_size]).float()
    return out


def train_to_accuracy(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                      train: Batches, test: Batches, device: torch.device, cfg: TrainConfig,
                      target: float) -> dict:
    """Train until the test accuracy first reaches `target`, evaluating after every epoch.

    Returns {"reached", "epochs", "accuracy"}; time it from outside (DAWNBench's
    time to accuracy counts the evaluations too).
    """
    graph = graphed(model, optimizer, cfg, len(train))
    for epoch in range(1, cfg.epochs + 1):
        train_epoch(model, train, optimizer, device, cfg.precision, scheduler, epoch, graph)
        accuracy = evaluate(model, test, device, cfg.precision)["accuracy"]
        if accuracy >= target:
            break
    return {"reached": accuracy >= target, "epochs": epoch, "accuracy": accuracy}


def loaders(cfg: TrainConfig, device: torch.device,
            splits: tuple[Split, Split] | None = None) -> dict[str, Batches]:
    """train (and val) and test batches for cfg.loader; the resident ones live on `device`.

    `splits` (train, test) are used instead of reading the files again; the seed loader
    always reads them, as the notebook did.
    """
    if cfg.loader == "seed":
        return {"train": seed_loader(cfg.root, True, cfg.batch_size, cfg.train_samples),
                "test": seed_loader(cfg.root, False, cfg.eval_batch_size)}
    train, test = splits or (load_split(cfg.root, train=True), load_split(cfg.root, train=False))
    train, test = train.to(device).take(cfg.train_samples), test.to(device)
    out: dict[str, Batches] = {}
    if cfg.val_samples:
        train, val = split_validation(train, cfg.val_samples, cfg.seed)
        out["val"] = ResidentLoader(val, cfg.eval_batch_size, shuffle=False)
    out["train"] = ResidentLoader(train, cfg.batch_size, seed=cfg.seed)
    out["test"] = ResidentLoader(test, cfg.eval_batch_size, shuffle=False)
    return out


def check_memory(cfg: TrainConfig, device: torch.device) -> None:
    """Refuse (ValueError) a batch whose activations would not fit in the memory free on
    `device`, before any data is loaded."""
    per_image = training_bytes_per_sample(create_model(cfg.model))
    need, free = per_image * cfg.batch_size, free_memory(device)
    if free is not None and need > 0.8 * free:
        most = int(0.8 * free // per_image)
        raise ValueError(f"batch size {cfg.batch_size:,} needs about {need / 2**30:.1f} GiB for the "
                         f"{cfg.model}'s activations, and {device.type} has {free / 2**30:.1f} GiB free; "
                         f"choose a --batch-size of at most {most:,}")


def fit(cfg: TrainConfig, progress: bool = False, on_epoch: Callable[[dict], None] | None = None,
        splits: tuple[Split, Split] | None = None,
        checkpoint: Callable[[nn.Module, list[dict]], None] | None = None) -> tuple[nn.Module, list[dict]]:
    """Train cfg.epochs epochs from a fresh model; history has one record per epoch.

    `splits`: the (train, test) splits already loaded, for callers that train several models.
    `checkpoint(model, history)` after every epoch, for callers that keep finished work.
    """
    check_config(cfg)
    device = resolve_device(cfg.device)
    check_memory(cfg, device)
    data = loaders(cfg, device, splits)
    model, opt, sched = build(cfg, device, len(data["train"]))
    graph = graphed(model, opt, cfg, len(data["train"]))
    history = []
    for epoch in range(1, cfg.epochs + 1):
        bar = tqdm(data["train"], desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
                   disable=not progress, unit="batch")
        sync(device)
        start = time.perf_counter()
        train = train_epoch(model, bar, opt, device, cfg.precision, sched, epoch, graph)
        sync(device)
        seconds = time.perf_counter() - start
        record = {"epoch": epoch, "train_loss": train["loss"], "train_accuracy": train["accuracy"]}
        for split in ("val", "test"):
            if split in data:
                result = evaluate(model, data[split], device, cfg.precision)
                record.update({f"{split}_loss": result["loss"], f"{split}_accuracy": result["accuracy"]})
        record["seconds"] = seconds
        history.append(record)
        if checkpoint:  # kept before it is reported: an epoch shown is an epoch saved
            checkpoint(model, history)
        if on_epoch:
            on_epoch(record)
    return model, history

