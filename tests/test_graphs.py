"""The parts of the CUDA graph path a CPU can run: undoing the warm-up, the lr as a
tensor, copying a schedule's lr into it, refusing a schedule that moves Adam's betas.
The capture and replay themselves run only on a GPU (tests/test_train.py, skipped here)."""

import pytest
import torch

from mnist_models.core.config import TrainConfig
from mnist_models.core.cuda_graphs import StepGraph, _lr_on_device, _restore
from mnist_models.core.train import Trainer

pytestmark = pytest.mark.accelerator  # bench/gpu-run.sh runs these first on a lent GPU


def _trainer(**overrides) -> Trainer:
    return Trainer(TrainConfig(model="mlp", device="cpu", fused=False, **overrides), steps_per_epoch=10)


def _steps(trainer: Trainer, n: int) -> None:
    torch.manual_seed(1)
    for _ in range(n):
        trainer.step(torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,)))


def test_restore_undoes_warm_up_steps():
    trainer = _trainer()
    saved = [t.detach().clone() for t in trainer.model.state_dict().values()]
    _steps(trainer, 3)
    moved = [t.detach().clone() for t in trainer.model.state_dict().values()]
    assert any(not torch.equal(a, b) for a, b in zip(saved, moved))
    _restore(trainer.model, trainer.optimizer, saved)
    for now, before in zip(trainer.model.state_dict().values(), saved):
        torch.testing.assert_close(now, before, rtol=0, atol=0)
    state = [v for s in trainer.optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    assert state and all(not v.any() for v in state)  # Adam's moments and step count back to zero


def _schedule_graph(trainer: Trainer) -> StepGraph:
    """A StepGraph's schedule bookkeeping around a real optimizer, without a capture (CPU)."""
    graph = StepGraph.__new__(StepGraph)
    graph.optimizer = trainer.optimizer
    graph.lrs = [_lr_on_device(g, torch.device("cpu")) for g in trainer.optimizer.param_groups]
    graph.betas = [g.get("betas") for g in trainer.optimizer.param_groups]
    return graph


def test_a_schedule_updates_the_captured_lr_in_place():
    trainer = _trainer(schedule="onecycle", lr=1e-2, epochs=1)
    graph = _schedule_graph(trainer)
    lr = graph.lrs[0]
    assert torch.is_tensor(trainer.optimizer.param_groups[0]["lr"])
    seen = []
    for _ in range(5):
        _steps(trainer, 1)
        trainer.scheduler.step()
        graph.sync_schedule()
        assert trainer.optimizer.param_groups[0]["lr"] is lr  # the tensor the graph reads
        assert float(lr) == pytest.approx(trainer.scheduler.get_last_lr()[0])  # holding the schedule's value
        seen.append(float(lr))
    assert len(set(seen)) == 5  # it moved at every step


def test_a_schedule_that_moves_betas_is_refused():
    trainer = _trainer(schedule="onecycle", epochs=1)
    graph = _schedule_graph(trainer)
    trainer.optimizer.param_groups[0]["betas"] = (0.8, 0.999)  # what cycle_momentum=True would do
    with pytest.raises(ValueError, match="changed Adam's betas, which a CUDA graph holds fixed"):
        graph.sync_schedule()


def test_a_capture_needs_cuda_and_a_capturable_optimizer():
    trainer = _trainer()
    with pytest.raises(ValueError, match="CUDA graphs need the model on a CUDA device, not cpu"):
        StepGraph(lambda: None, trainer.model, trainer.optimizer)
