"""matplotlib figures of the report and the study; each takes data and returns a Figure.

    fig = throughput_vs_batch(results.frame); fig.savefig("throughput.png")
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def throughput_vs_batch(frame: pd.DataFrame) -> plt.Figure:
    """Images/s against batch size per model and operation; a line per machine, device, precision."""
    f = frame[(frame["loader"] == "resident") & (frame["variant"] == "tuned")
              & frame["operation"].isin(["train", "infer"])]
    models, ops = sorted(f["model"].unique()), ["train", "infer"]
    fig, axes = plt.subplots(len(ops), len(models), figsize=(5.5 * len(models), 8), squeeze=False)
    for (i, op), (j, model) in ((a, b) for a in enumerate(ops) for b in enumerate(models)):
        ax, part = axes[i][j], f[(f["operation"] == op) & (f["model"] == model)]
        for (machine, device, precision), line in part.groupby(["machine", "device", "precision"]):
            line = line.sort_values("batch_size")
            ax.plot(line["batch_size"], line["samples_per_second"], marker="o",
                    label=f"{machine} {device} {precision}")
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="images / s",
               title=f"{model}: {'training' if op == 'train' else 'inference'} throughput")
        ax.set_xticks(sorted(part["batch_size"].unique()), labels=sorted(part["batch_size"].unique()))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _bars(ax, labels: list[str], groups: dict[str, list[float]], ylabel: str, title: str,
          fmt: str = "{:,.3g}") -> None:
    x, width = np.arange(len(labels)), 0.8 / max(len(groups), 1)
    for k, (name, values) in enumerate(groups.items()):
        bars = ax.bar(x + (k - (len(groups) - 1) / 2) * width, values, width, label=name)
        ax.bar_label(bars, fmt=fmt, fontsize=7)
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize=8)


def epoch_time_bars(frame: pd.DataFrame) -> plt.Figure:
    """Training epoch seconds, cpu beside cuda, per machine, model and batch size (fp32, tuned)."""
    f = frame[(frame["operation"] == "train") & (frame["loader"] == "resident")
              & (frame["variant"] == "tuned") & (frame["precision"] == "fp32")]
    wide = f.pivot_table(index=["machine", "model", "batch_size"], columns="device", values="median")
    labels = [f"{m} {model} bs{bs}" for m, model, bs in wide.index]
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 0.9), 4.5))
    _bars(ax, labels, {d: wide[d].tolist() for d in wide.columns}, "seconds per epoch (60,000 images)",
          "Training epoch time, CPU vs GPU (fp32)", fmt="{:.3g} s")
    fig.tight_layout()
    return fig


def loader_bars(frame: pd.DataFrame) -> plt.Figure:
    """The notebook's DataLoader loop against the resident loop, training at batch 64, fp32."""
    f = frame[(frame["operation"] == "train") & (frame["batch_size"] == 64) & (frame["precision"] == "fp32")]
    f = f.assign(loop=np.where(f["loader"] == "seed", "seed DataLoader + ToTensor", "resident tensors"))
    wide = f.pivot_table(index=["machine", "model", "device"], columns="loop", values="samples_per_second")
    labels = [" ".join(k) for k in wide.index]
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 1.2), 4.5))
    _bars(ax, labels, {c: wide[c].tolist() for c in wide.columns}, "training images / s",
          "The notebook's loader vs the resident loader (batch 64, fp32)", fmt="{:,.0f}")
    fig.tight_layout()
    return fig


def machine_bars(frame: pd.DataFrame, baseline: str) -> plt.Figure:
    """Each machine's speed relative to the baseline, per case (log scale)."""
    wide = frame.pivot_table(index="case", columns="machine", values="median")
    ratio = wide.rdiv(wide[baseline], axis=0)
    fig, ax = plt.subplots(figsize=(max(7, len(ratio) * 0.35), 5))
    _bars(ax, list(ratio.index), {m: ratio[m].tolist() for m in ratio.columns}, f"speed relative to {baseline}",
          "Across machines (higher is faster)", fmt="{:.2f}x")
    ax.set_yscale("log")
    ax.axhline(1, color="grey", lw=0.8)
    fig.tight_layout()
    return fig
