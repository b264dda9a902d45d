"""Planted slowdowns of known size, in a throwaway copy of the code, never as a knob of the
product: what `ab`'s tests and experiments/ci_noise.py compare against the code as it is.

    plant_copy(REPO, tmp / "slow", clock=0.05)   # every training step 5% longer on the clock
"""

import shutil
from pathlib import Path

PLANT = """

PLANT_CLOCK = {clock}  # spin this fraction of each training step's own time
PLANT_LOOPS = {loops}  # (model, batch) -> Python loop iterations per training step


def _plant(trainer, batch, spent):
    for _ in range(PLANT_LOOPS.get((trainer.cfg.model, batch), 0)):
        pass
    end = time.perf_counter() + PLANT_CLOCK * spent
    while time.perf_counter() < end:
        pass
"""


def plant_copy(repo: Path, dest: Path, clock: float = 0.0, loops: dict | None = None) -> Path:
    """A copy of the checkout's code (package, bench, pytest config) at `dest`; with a plant,
    every training step afterwards spins `clock` of its own time (the clock grows by exactly
    that, instructions by whatever the spin runs) and runs `loops[(model, batch)]` iterations
    of an empty Python loop (deterministic instructions). Inference is untouched."""
    for name in ("mnist_models", "bench"):
        shutil.copytree(repo / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(repo / name, dest / name)
    if clock or loops:
        train = dest / "mnist_models/core/train.py"
        text = train.read_text()
        head = "        with autocast(x.device, self.cfg.precision, cache=not graph_safe):\n            logits"
        tail = "        return loss.detach(), (logits.argmax(1) == y).sum()\n"
        assert head in text and tail in text, "Trainer.step changed: update the plant"
        text = text.replace(head, "        _t = time.perf_counter()\n" + head, 1)
        text = text.replace(tail, "        _plant(self, len(x), time.perf_counter() - _t)\n" + tail, 1)
        train.write_text(text + PLANT.format(clock=clock, loops=loops or {}))
    return dest
