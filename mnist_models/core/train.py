"""Training and evaluation: the Trainer (one run's state), fit -> history, time to accuracy.

    from mnist_models.core.train import fit
    from mnist_models.core.config import TrainConfig
    model, history = fit(TrainConfig(model="cnn", epochs=10))
    print(history[-1]["test_accuracy"])

    trainer = Trainer(cfg, steps_per_epoch=len(batches))   # model, optimizer, schedule, graph
    trainer.epoch(batches); trainer.evaluate(test)

On cuda nothing in the batch loop reads a value back to the host: losses and
correct counts stay on the device and are read once per epoch.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..errors import UsageError
from ..machine.devices import absent, accelerator, free_memory, resolve, sync
from .config import DEVICES, NOTEBOOK, TrainConfig
from .cuda_graphs import GraphedTraining
from .data import ResidentLoader, Split, load_split, notebook_loader, split_validation
from .models import create_model, training_bytes_per_sample


class Batches(Protocol):
    """Batches of (images, labels) that know how many they are: a ResidentLoader, the notebook's DataLoader."""

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def __len__(self) -> int: ...


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    """auto picks the accelerator when there is one, else the cpu; accel (or its type name:
    cuda, mps, xpu) without that accelerator is an error."""
    if name not in DEVICES:
        raise UsageError(f"unknown device {name!r}; choose from {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device(accelerator() or "cpu")
    why = absent(name)
    if why is not None:
        raise UsageError(f"--device {name}, but {why} (torch.accelerator); use --device cpu or auto")
    return torch.device(resolve(name))


def autocast(device: torch.device, precision: str, cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on the device, or nothing for fp32 (no weight-cast cache in a CUDA graph)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=cache)


def build_model(cfg: TrainConfig, device: torch.device) -> nn.Module:
    """A fresh model on `device`, seeded by cfg.seed, in cfg's memory format and weights
    (bf16 with cfg.bf16_weights; compiled if asked)."""
    torch.manual_seed(cfg.seed)
    kwargs = {} if cfg.dropout is None else {"dropout": cfg.dropout}
    model = create_model(cfg.model, **kwargs).to(device, torch.bfloat16 if cfg.bf16_weights else None)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return cast(nn.Module, torch.compile(model)) if cfg.compile else model  # a Module compiles to a Module


def build_optimizer(cfg: TrainConfig, model: nn.Module, steps_per_epoch: int):
    """The optimizer over the model's parameters and its (optional) per-batch scheduler."""
    fused = cfg.fused or None  # None lets torch pick foreach
    opt: torch.optim.Optimizer
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=fused, capturable=cfg.cuda_graphs)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, fused=fused)
    sched: torch.optim.lr_scheduler.OneCycleLR | HeldAfter | None = None
    if cfg.schedule == "onecycle":
        steps = max(1, round((cfg.cycle_epochs or cfg.epochs) * steps_per_epoch))
        # betas stay fixed: a CUDA graph holds them as host floats, so cycling them would
        # make graphed and eager runs of one recipe differ
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, cycle_momentum=False)
        if cfg.cycle_epochs is not None:
            sched = HeldAfter(sched, steps - 1)
    return opt, sched


class HeldAfter:
    """A per-batch schedule stepped `steps` times, then left where it is: the lr holds."""

    def __init__(self, schedule: torch.optim.lr_scheduler.LRScheduler, steps: int):
        self.schedule, self.left = schedule, steps

    def step(self) -> None:
        if self.left > 0:
            self.schedule.step()
            self.left -= 1


class Trainer:
    """One training run's state, built from a TrainConfig: the model, optimizer, schedule,
    precision and device, and on cuda with cfg.cuda_graphs the captured training step.

    epoch(batches) trains one pass, evaluate(batches) measures; finished epochs are counted.
    """

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, device: torch.device | None = None):
        if cfg.bf16_weights:  # the optimizer would step bf16 weights, losing small updates
            raise UsageError("bf16 weights are for inference; training in bf16 autocasts over fp32 weights")
        self.cfg, self.steps_per_epoch = cfg, steps_per_epoch
        self.device = device if device is not None else resolve_device(cfg.device)
        self.model = build_model(cfg, self.device)
        self.optimizer, self.scheduler = build_optimizer(cfg, self.model, steps_per_epoch)
        self.graph: GraphedTraining | None = None
        self.epochs = 0  # finished epochs

    def step(self, x: torch.Tensor, y: torch.Tensor, graph_safe: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch: (loss, correct count), both left on the device.
        `graph_safe`: no autocast weight cache, for a step captured in a CUDA graph."""
        with autocast(x.device, self.cfg.precision, cache=not graph_safe):
            logits = self.model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), (logits.argmax(1) == y).sum()

    def capture(self) -> None:
        """Capture the training step now (cfg.cuda_graphs; it costs a few steps' time);
        otherwise the first epoch does it."""
        if self.cfg.cuda_graphs and self.graph is None:
            self.graph = GraphedTraining(
                self.step, self.model, self.optimizer, self.cfg.batch_size, self.steps_per_epoch
            )

    def epoch(self, batches: Batches) -> dict:
        """One pass over `batches`: {"loss", "accuracy", "samples"}; raises on a non-finite loss."""
        totals = self.train(batches)
        self.epochs += 1
        return totals

    def train(self, batches) -> dict:
        """Train on `batches`, an epoch or a run of its batches (not counted as an epoch):
        {"loss", "accuracy", "samples"}; raises on a non-finite loss.

        With a captured step, full batches replay it instead of running eagerly.
        """
        self.capture()
        if self.graph is not None:
            losses, corrects, sizes = self.graph.epoch(batches, self.scheduler)
        else:
            losses, corrects, sizes = self._eager(batches)
        return _epoch_totals(losses, corrects, sizes, self.epochs + 1)

    def _eager(self, batches: Batches) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        self.model.train()
        losses, corrects, sizes = [], [], []
        for x, y in batches:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            loss, correct = self.step(x, y)
            if self.scheduler is not None:
                self.scheduler.step()
            losses.append(loss)
            corrects.append(correct)
            sizes.append(len(y))
        return torch.stack(losses).float(), torch.stack(corrects), sizes

    def evaluate(self, batches: Batches) -> dict:
        """Mean loss and accuracy over `batches`: {"loss", "accuracy", "samples"}."""
        return evaluate(self.model, batches, self.device, self.cfg.precision)


def _epoch_totals(losses: torch.Tensor, corrects: torch.Tensor, sizes: list[int], epoch: int) -> dict:
    finite = torch.isfinite(losses).cpu()  # the one host sync of the epoch
    if not bool(finite.all()):
        batch = int((~finite).nonzero()[0]) + 1
        raise NonFiniteLossError(
            f"loss became {losses[batch - 1].item()} at epoch {epoch}, batch {batch}; "
            "lower the learning rate (--lr) or train in fp32"
        )
    weights = torch.tensor(sizes, dtype=torch.float32, device=losses.device)
    n = sum(sizes)
    return {"loss": float((losses * weights).sum()) / n, "accuracy": int(corrects.sum()) / n, "samples": n}


@torch.inference_mode()
def evaluate(model: nn.Module, batches: Batches, device: torch.device, precision: str = "fp32") -> dict:
    """Mean loss and accuracy over `batches`: {"loss", "accuracy", "samples"}."""
    model.eval()
    dtype, autocasts = inference_dtype(model, precision)
    loss, correct, n = torch.zeros((), device=device), torch.zeros((), device=device), 0
    for x, y in batches:
        x, y = x.to(device, dtype, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, autocasts):
            logits = model(x)
        loss += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
    return {"loss": float(loss) / n, "accuracy": float(correct) / n, "samples": n}


@torch.inference_mode()
def infer(model: nn.Module, x: torch.Tensor, batch_size: int, precision: str = "fp32") -> torch.Tensor:
    """Logits for every row of x, in batches, in eval mode (fp32 out)."""
    model.eval()
    dtype, autocasts = inference_dtype(model, precision)
    out = torch.empty(len(x), 10, device=x.device)
    for i in range(0, len(x), batch_size):
        with autocast(x.device, autocasts):
            out[i : i + batch_size] = model(x[i : i + batch_size].to(dtype)).float()
    return out


def inference_dtype(model: nn.Module, precision: str) -> tuple[torch.dtype, str]:
    """What images are cast to for `model`, and the precision to autocast in: `precision`
    over fp32 weights; over bf16 weights (cfg.bf16_weights) the images are cast to bf16
    and nothing autocasts."""
    dtype = next(model.parameters()).dtype
    return dtype, precision if dtype == torch.float32 else "fp32"


class _Run:
    """The next `count` batches of an epoch's iterator, cut as they are trained (a captured
    step needs the count beforehand)."""

    def __init__(self, batches, count: int):
        self.batches, self.count = batches, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return itertools.islice(self.batches, self.count)


def evaluation_steps(cfg: TrainConfig, steps_per_epoch: int) -> list[int]:
    """The training steps after which time to accuracy evaluates: every cfg.eval_every epochs
    from cfg.eval_from (default: after the first eval_every), and always at the last step."""
    every, total = cfg.eval_every, cfg.epochs * steps_per_epoch
    first = cfg.eval_from if cfg.eval_from is not None else every
    count = int((cfg.epochs - first) / every + 1e-9) + 1  # evaluations from `first` to the end
    points = {round((first + k * every) * steps_per_epoch) for k in range(count)}
    return sorted(p for p in points | {total} if 0 < p <= total)


def train_to_accuracy(trainer: Trainer, train: Batches, test: Batches, target: float) -> dict:
    """Train until the test accuracy first reaches `target`, evaluating at the config's
    cadence (evaluation_steps; at most the config's epochs). Returns {"reached", "epochs"
    (fractional where it stopped within one), "accuracy"}; time it from outside
    (DAWNBench's time to accuracy counts the evaluations, and a CUDA graph's capture)."""
    per_epoch = len(train)
    points, done, accuracy = evaluation_steps(trainer.cfg, per_epoch), 0, 0.0
    for epoch in range(trainer.cfg.epochs):
        batches, end = iter(train), (epoch + 1) * per_epoch
        for stop in sorted({p for p in points if done < p <= end} | {end}):
            trainer.train(_Run(batches, stop - done))
            done = stop
            if stop in points:
                accuracy = trainer.evaluate(test)["accuracy"]
                if accuracy >= target:
                    trainer.epochs += 1 if done == end else 0  # an epoch finished at its last evaluation
                    return {"reached": True, "epochs": round(done / per_epoch, 2), "accuracy": accuracy}
        trainer.epochs += 1
    return {"reached": False, "epochs": trainer.epochs, "accuracy": accuracy}


def loaders(cfg: TrainConfig, device: torch.device, splits: tuple[Split, Split] | None = None) -> dict[str, Batches]:
    """train (and val) and test batches for cfg.loader; the resident ones live on `device`.

    `splits` (train, test) are used instead of reading the files again; the notebook's
    loader always reads them, as the notebook did.
    """
    if cfg.loader == NOTEBOOK:
        return {
            "train": notebook_loader(cfg.root, True, cfg.batch_size, cfg.train_samples),
            "test": notebook_loader(cfg.root, False, cfg.eval_batch_size, cfg.test_samples),
        }
    train, test = splits or (load_split(cfg.root, train=True), load_split(cfg.root, train=False))
    train, test = train.to(device).take(cfg.train_samples), test.to(device).take(cfg.test_samples)
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
        raise UsageError(
            f"batch size {cfg.batch_size:,} needs about {need / 2**30:.1f} GiB for the "
            f"{cfg.model}'s activations, and {device.type} has {free / 2**30:.1f} GiB free; "
            f"choose a --batch-size of at most {most:,}"
        )


def fit(
    cfg: TrainConfig,
    progress: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    splits: tuple[Split, Split] | None = None,
    checkpoint: Callable[[nn.Module, list[dict]], None] | None = None,
) -> tuple[nn.Module, list[dict]]:
    """Train cfg.epochs epochs from a fresh model; history has one record per epoch.

    `splits`: the (train, test) splits already loaded, for callers that train several models.
    `checkpoint(model, history)` after every epoch, for callers that keep finished work.
    """
    device = resolve_device(cfg.device)
    check_memory(cfg, device)
    data = loaders(cfg, device, splits)
    trainer = Trainer(cfg, len(data["train"]), device)
    trainer.capture()  # before the first epoch's clock
    history = []
    while trainer.epochs < cfg.epochs:
        bar = tqdm(
            data["train"],
            desc=f"epoch {trainer.epochs + 1}/{cfg.epochs}",
            leave=False,
            disable=not progress,
            unit="batch",
        )
        sync(device)
        start = time.perf_counter()
        train = trainer.epoch(bar)
        sync(device)
        seconds = time.perf_counter() - start
        record = {"epoch": trainer.epochs, "train_loss": train["loss"], "train_accuracy": train["accuracy"]}
        for split in ("val", "test"):
            if split in data:
                result = trainer.evaluate(data[split])
                record.update({f"{split}_loss": result["loss"], f"{split}_accuracy": result["accuracy"]})
        history.append({**record, "seconds": seconds})
        if checkpoint:  # kept before it is reported: an epoch shown is an epoch saved
            checkpoint(trainer.model, history)
        if on_epoch:
            on_epoch(history[-1])
    return trainer.model, history
