"""What the train command keeps: history.json and model.pt, written together at the end,
or the epochs that finished when a run stops early.

    python -m mnist_models train --model cnn --epochs 3 --out runs/cnn   # -> train_and_save
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE, Terminated
from ..files import json_bytes, torch_bytes, write_files
from ..machine.process import oversubscribed, tune_malloc
from .config import TrainConfig
from .train import NonFiniteLossError, fit


def epoch_line(r: dict) -> str:
    return (
        f"epoch {r['epoch']:>3}  train loss {r['train_loss']:.4f}  test loss {r['test_loss']:.4f}  "
        f"test acc {r['test_accuracy']:.2%}  {r['seconds']:.1f} s"
    )


def train_and_save(cfg: TrainConfig, out: Path, progress: bool = False, say: Callable[[str], None] = print) -> int:
    """Train, then write history.json and model.pt together. A diverging loss, Ctrl-C or
    SIGTERM keeps the epochs that finished: their history and the weights after the last of them.
    Returns the exit code."""
    tune_malloc()  # before any tensor: freed memory kept for the next step
    crowded = oversubscribed()
    if crowded:
        print(f"mnist-bench: warning: {crowded}", file=sys.stderr)
    kept: dict = {"history": [], "state": None}

    def keep(model, history: list[dict]) -> None:
        kept["history"] = list(history)
        kept["state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    try:
        model, history = fit(cfg, progress=progress, on_epoch=lambda r: say(epoch_line(r)), checkpoint=keep)
    except Terminated:
        return _keep_finished(cfg, out, kept, "terminated (SIGTERM)", EXIT_TERMINATED)
    except KeyboardInterrupt:
        return _keep_finished(cfg, out, kept, "interrupted", EXIT_INTERRUPTED)
    except NonFiniteLossError as exc:
        return _keep_finished(cfg, out, kept, f"training diverged ({exc})", EXIT_USAGE)
    save_run(cfg, out, history, model.state_dict())
    say(f"wrote {out / 'history.json'} and {out / 'model.pt'}")
    return EXIT_OK


def save_run(cfg: TrainConfig, out: Path, history: list[dict], state: dict, **extra) -> None:
    """history.json and model.pt (the config, the weights and `extra`), all or nothing."""
    write_files(
        {
            out / "history.json": json_bytes(history),
            out / "model.pt": torch_bytes({"config": asdict(cfg), "state_dict": state, **extra}),
        }
    )


def _keep_finished(cfg: TrainConfig, out: Path, kept: dict, why: str, code: int) -> int:
    done = len(kept["history"])
    if not done:
        print(f"mnist-bench: {why} before the first epoch finished; nothing written", file=sys.stderr)
        return code
    save_run(cfg, out, kept["history"], kept["state"])
    print(
        f"mnist-bench: {why} after {done} finished epoch{'s' * (done > 1)}; wrote their history.json "
        f"and the weights after epoch {done} (model.pt) to {out}",
        file=sys.stderr,
    )
    return code
