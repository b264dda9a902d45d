"""CUDA graphs for a training step: capture it once, replay it per batch (`cuda_graphs`).

    graphed = GraphedTraining(step, model, optimizer, batch_size=256, steps=len(batches))
    losses, corrects, sizes = graphed.epoch(batches, scheduler)

StepGraph does the capture; GraphedTraining keeps the static batch and the per-batch
records around it. No Python runs between a full batch's kernels.

This follows torch.cuda.graphs' whole-network capture: `step` reads static input
tensors and runs forward, loss, backward and the optimizer step; the warm-up runs on
a side stream; the optimizer must be capturable. Two things are added for a benchmark:
the warm-up steps are undone (weights and optimizer state restored), so a graphed run
trains exactly as many steps as an eager one, and the learning rate lives in a device
tensor that a scheduler's new value is copied into, so schedules work under replay.
Adam's betas are host floats baked into the graph; a schedule that moves them is an
error (hence OneCycleLR(cycle_momentum=False) in train.build_optimizer).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import UsageError

WARMUP_STEPS = 3  # eager steps before capture: lazy state, cudnn autotune, allocator
SAMPLE_SHAPE = (1, 28, 28)  # one MNIST image: the static batch's shape after the batch size


class StepGraph:
    """One captured call of `step`; replay() runs its kernels again, with no Python in between."""

    def __init__(
        self, step: Callable[[], None], model: nn.Module, optimizer: torch.optim.Optimizer, warmup: int = WARMUP_STEPS
    ):
        device = next(model.parameters()).device
        if device.type != "cuda":
            raise UsageError(
                f"CUDA graphs need the model on a CUDA device, not {device.type}; "
                "use --device cuda, or drop --cuda-graphs"
            )
        if not all(g.get("capturable") for g in optimizer.param_groups):
            raise ValueError("CUDA graphs need a capturable optimizer: Adam(capturable=True)")
        self.optimizer = optimizer
        self.lrs = [_lr_on_device(g, device) for g in optimizer.param_groups]
        self.betas = [g.get("betas") for g in optimizer.param_groups]
        saved = [t.detach().clone() for t in model.state_dict().values()]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                step()
        torch.cuda.current_stream().wait_stream(side)
        _restore(model, optimizer, saved)
        optimizer.zero_grad(set_to_none=True)  # backward inside the capture allocates static grads
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            step()

    def replay(self) -> None:
        self.graph.replay()

    def sync_schedule(self) -> None:
        """After scheduler.step(): copy each group's new lr into the captured tensor."""
        for group, lr, betas in zip(self.optimizer.param_groups, self.lrs, self.betas):
            if group["lr"] is not lr:  # schedulers assign floats, or fill tensors in place
                lr.fill_(group["lr"])
                group["lr"] = lr
            if group.get("betas") != betas:
                raise ValueError(
                    "the schedule changed Adam's betas, which a CUDA graph holds fixed; "
                    "use OneCycleLR(cycle_momentum=False)"
                )


def _lr_on_device(group: dict, device: torch.device) -> torch.Tensor:
    """A group's lr as a device tensor, so replays read its current value."""
    if not torch.is_tensor(group["lr"]):
        group["lr"] = torch.tensor(float(group["lr"]), device=device)
    return group["lr"]


@torch.no_grad()
def _restore(model: nn.Module, optimizer: torch.optim.Optimizer, saved: list[torch.Tensor]) -> None:
    """Weights back to `saved`, optimizer state back to fresh (zeros), in place."""
    for tensor, value in zip(model.state_dict().values(), saved):
        tensor.copy_(value)
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value):
                value.zero_()


class GraphedTraining:
    """Training epochs whose full batches replay one captured step.

    `step(x, y, graph_safe=...)` trains on one batch and returns its (loss, correct count)
    as device tensors; the capture also writes them into per-batch buffers, so an
    epoch reads nothing back until it ends. A batch of another size (an epoch's tail)
    runs the same step eagerly and records into the same buffers.
    """

    def __init__(
        self,
        step: Callable[..., tuple[torch.Tensor, torch.Tensor]],
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batch_size: int,
        steps: int,
    ):
        device = next(model.parameters()).device
        self.step, self.model = step, model
        self.x = torch.zeros(batch_size, *SAMPLE_SHAPE, device=device)
        self.y = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.losses = torch.zeros(steps, device=device)
        self.corrects = torch.zeros(steps, dtype=torch.long, device=device)
        self.index = torch.zeros(1, dtype=torch.long, device=device)
        model.train()
        self.graph = StepGraph(lambda: self._recorded(self.x, self.y, graph_safe=True), model, optimizer)

    def _recorded(self, x: torch.Tensor, y: torch.Tensor, graph_safe: bool = False) -> None:
        loss, correct = self.step(x, y, graph_safe=graph_safe)
        self.losses.index_copy_(0, self.index, loss.float().view(1))
        self.corrects.index_copy_(0, self.index, correct.view(1))
        self.index += 1

    def epoch(self, batches, scheduler=None) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """One pass: per-batch losses and correct counts (device tensors) and batch sizes."""
        if len(batches) > len(self.losses):
            raise ValueError(f"{len(batches)} batches per epoch, but the graph was set up for {len(self.losses)}")
        self.model.train()
        self.index.zero_()
        sizes = []
        for x, y in batches:
            if len(y) == len(self.y):
                self.x.copy_(x, non_blocking=True)
                self.y.copy_(y, non_blocking=True)
                self.graph.replay()
            else:
                self._recorded(x.to(self.x.device), y.to(self.y.device))
            if scheduler is not None:
                scheduler.step()
                self.graph.sync_schedule()
            sizes.append(len(y))
        return self.losses[: len(sizes)], self.corrects[: len(sizes)], sizes
