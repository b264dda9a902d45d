"""Data-parallel training with torch.distributed: the Trainer's model wrapped in
DistributedDataParallel, each rank on its own share of the resident data.

    torchrun --nproc-per-node 2 -m mnist_models ddp --model cnn --epochs 1 --out runs/ddp
    python -m mnist_models ddp --nproc 2 --model cnn --epochs 1 --out runs/ddp   # the same, one machine

gloo on the cpu, nccl on cuda (one GPU per rank). Every rank holds the splits resident on
its device and, each epoch, takes its share of one seeded permutation: the semantics of
DistributedSampler (seed + epoch, padded to a multiple of the world size, every world-th
index from the rank's own), on tensors. DDP averages the gradients; rank 0 evaluates and
writes. The global batch (--batch-size) is split evenly across the ranks, so a run of N
ranks takes the same optimizer steps on the same images as one process would.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

from ..core.config import TrainConfig
from ..core.data import Split, load_split
from ..core.train import Trainer
from ..errors import UsageError
from ..machine.devices import sync
from ..machine.process import tune_malloc

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}  # the devices data-parallel runs on, and how they talk
TIMEOUT = datetime.timedelta(seconds=120)  # a collective waits at most this long for a lost rank


class ShardedLoader:
    """This rank's batches of a resident Split: DistributedSampler's semantics on tensors."""

    def __init__(self, split: Split, batch_size: int, rank: int, world: int, seed: int = 0):
        self.split, self.batch_size, self.rank, self.world, self.seed = split, batch_size, rank, world, seed
        self.epoch = 0
        self.shard = -(-len(split) // world)  # each rank's images: the padded length / world

    def __len__(self) -> int:
        return -(-self.shard // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.split)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        perm = torch.cat([perm, perm[: self.shard * self.world - n]])  # pad, as DistributedSampler does
        self.epoch += 1
        mine = perm[self.rank :: self.world].to(self.split.y.device)
        x, y = self.split.x, self.split.y
        for idx in mine.split(self.batch_size):
            yield x.index_select(0, idx), y.index_select(0, idx)


@dataclass(frozen=True)
class Place:
    """Where this process sits in the group: torchrun's environment, read once."""

    rank: int
    world: int
    local_rank: int

    @classmethod
    def from_env(cls) -> Place:
        return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))

    def device(self, kind: str) -> torch.device:
        return torch.device("cpu") if kind == "cpu" else torch.device(kind, self.local_rank)


def launched() -> bool:
    """Is this process a rank that torchrun (or its launcher API) started?"""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"))


def place_problem(nproc: int) -> str | None:
    """Why torchrun's environment, as set here, cannot start a run with `nproc` ranks (None: it can):
    a malformed RANK, WORLD_SIZE, LOCAL_RANK or MASTER_PORT, or --nproc inside a torchrun job."""
    env = {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT") if k in os.environ}
    for key, value in env.items():
        if (
            not value.strip().isdigit()
            or (key == "WORLD_SIZE" and int(value) < 1)
            or (key == "MASTER_PORT" and not 0 < int(value) <= 65535)
        ):
            return (
                f"{key}={value!r} is not a valid torchrun setting (a whole number"
                f"{', 1 to 65535' if key == 'MASTER_PORT' else ''}); unset it, or launch with torchrun"
            )
    if "RANK" in env and "WORLD_SIZE" in env and int(env["RANK"]) >= int(env["WORLD_SIZE"]):
        return f"RANK={env['RANK']} is not below WORLD_SIZE={env['WORLD_SIZE']}; unset them, or launch with torchrun"
    if launched() and nproc > 1:
        return (
            f"--nproc {nproc} inside a torchrun job (RANK and WORLD_SIZE are set): torchrun starts the "
            "ranks; drop --nproc, or run outside torchrun"
        )
    return None


def start(kind: str, threads: int, backend: str | None = None) -> tuple[Place, torch.device]:
    """Join the process group of this torchrun job: (where this rank is, its device)."""
    place = Place.from_env()
    device = place.device(kind)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # nccl: one GPU per rank
    torch.set_num_threads(threads)
    dist.init_process_group(backend or BACKENDS[kind], timeout=TIMEOUT)
    return place, device


def per_rank(cfg: TrainConfig, world: int) -> TrainConfig:
    """The config each rank trains with: its share of the global batch."""
    if cfg.batch_size % world:
        raise UsageError(
            f"the global batch {cfg.batch_size} does not split evenly across {world} ranks; "
            f"choose a --batch-size that is a multiple of {world}"
        )
    return replace(cfg, batch_size=cfg.batch_size // world)


def ddp_trainer(cfg: TrainConfig, steps: int, device: torch.device) -> Trainer:
    """A Trainer whose model is wrapped in DistributedDataParallel (gradients averaged in
    the backward pass); its optimizer holds the same parameters."""
    trainer = Trainer(cfg, steps, device)
    ids = [device.index] if device.type == "cuda" else None
    trainer.model = torch.nn.parallel.DistributedDataParallel(trainer.model, device_ids=ids)
    return trainer


def global_totals(result: dict, device: torch.device) -> dict:
    """One epoch's loss and accuracy over every rank's images (one all-reduce)."""
    n = result["samples"]
    t = torch.tensor([result["loss"] * n, result["accuracy"] * n, n], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {"loss": float(t[0] / t[2]), "accuracy": float(t[1] / t[2]), "samples": int(t[2])}


def timed_epoch(trainer: Trainer, batches: ShardedLoader, device: torch.device) -> dict:
    """One epoch on every rank, between barriers, after a device synchronize: the slowest
    rank's seconds, and the loss, accuracy and images over every rank's share."""
    dist.barrier()
    sync(device)
    begin = time.perf_counter()
    mine = trainer.epoch(batches)
    sync(device)
    took = torch.tensor([time.perf_counter() - begin], device=device)
    dist.all_reduce(took, op=dist.ReduceOp.MAX)  # the slowest rank's time is the epoch's
    return {"seconds": float(took), **global_totals(mine, device)}


def resident(cfg: TrainConfig, device: torch.device) -> tuple[Split, Split]:
    """The training (first cfg.train_samples) and test splits, resident on this rank's device."""
    return (
        load_split(cfg.root, True, device).take(cfg.train_samples),
        load_split(cfg.root, False, device).take(cfg.test_samples),
    )


@dataclass
class Rank:
    """One rank, set up: where it sits, its device, its share of the training and the data."""

    place: Place
    device: torch.device
    cfg: TrainConfig  # the per-rank config: its share of the global batch
    train: Split  # the whole training split (ShardedLoader takes this rank's share)
    test: Split
    batches: ShardedLoader  # this rank's batches

    def trainer(self) -> Trainer:
        """A fresh DDP-wrapped Trainer for this rank's batches."""
        return ddp_trainer(self.cfg, len(self.batches), self.device)


def join(cfg: TrainConfig, kind: str, threads: int, backend: str | None = None) -> Rank:
    """Set this process up as a rank of the torchrun job training the global `cfg`: the
    allocator tuned, the group joined, the data resident and sharded. Call once per rank."""
    tune_malloc()
    place, device = start(kind, threads, backend)
    mine = per_rank(cfg, place.world)
    train, test = resident(cfg, device)
    return Rank(
        place, device, mine, train, test, ShardedLoader(train, mine.batch_size, place.rank, place.world, mine.seed)
    )
