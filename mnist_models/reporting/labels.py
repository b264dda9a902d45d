"""The words a table or figure shows for the frame's categories, made where they are drawn.

setup(frame)         # "resident", "resident, compiled", "notebook loader", "plain loop", "cuda graph", "compiled",
                     #   + " bf16", + " (emulated)"
workload(60000)      # "60,000 images"
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LOOPS = {
    "notebook": "notebook loader",
    "plain": "plain loop",
    "graphs": "cuda graph",
    "compiled": "compiled",
}  # loader or variant -> loop


def loop(frame: pd.DataFrame) -> pd.Series:
    """The loop a case times: the notebook's loader, a plain eager loop, a CUDA graph,
    torch.compile, or resident (", compiled" where the tuned path ran compiled)."""
    tuned_compiled = (frame["variant"] == "tuned") & frame["compiled"].eq(True)
    return pd.Series(
        np.select(
            [
                frame["loader"] == "notebook",
                frame["variant"] == "plain",
                frame["variant"] == "graphs",
                frame["variant"] == "compiled",
                tuned_compiled,
            ],
            [LOOPS["notebook"], LOOPS["plain"], LOOPS["graphs"], LOOPS["compiled"], "resident, compiled"],
            "resident",
        ),
        index=frame.index,
        dtype=object,
    )


def setup(frame: pd.DataFrame) -> pd.Series:
    """The loop, + ' bf16', + ' (emulated)' where the device has no bf16 instructions."""
    emulated = np.where(frame["native"].eq(False), " (emulated)", "")
    return loop(frame) + np.where(frame["precision"] == "bf16", " bf16", "") + emulated


def workload(samples) -> str:
    """What one round of a case processes: '60,000 images' (quick runs: '4,096 images')."""
    return f"{int(samples):,} images"


def workloads(samples: pd.Series) -> str:
    """Every workload a figure shows, largest first: '60,000 images / 4,096 images'."""
    return " / ".join(workload(n) for n in sorted(samples.dropna().unique(), reverse=True))
