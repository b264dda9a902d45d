"""The study's figures (Q3-Q6): training curves, confusion matrices, misclassified
digits, feature maps and hidden units; each takes data and returns a Figure.

    fig = curves({"mlp": history}); path.write_bytes(png(fig))
"""

from __future__ import annotations

import numpy as np

from ..reporting.plots import plt


def curves(histories: dict[str, list[dict]]) -> plt.Figure:
    """Q3: train loss, train accuracy and test accuracy per epoch, one line per model."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = [
        ("train_loss", "training loss (cross-entropy)", False),
        ("train_accuracy", "training accuracy (%)", True),
        ("test_accuracy", "test accuracy (%)", True),
    ]
    for ax, (key, label, pct) in zip(axes, panels, strict=True):
        for model, history in histories.items():
            epochs = [r["epoch"] for r in history]
            ax.plot(epochs, [r[key] * (100 if pct else 1) for r in history], marker="o", label=model)
        ax.set(xlabel="epoch", ylabel=label, title=label.split(" (")[0].capitalize())
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # epochs are whole: no 0.96 after one
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def confusion(matrix: np.ndarray, model: str) -> plt.Figure:
    """Q4: counts of (true, predicted) over the test set, the diagonal dimmed out of the colour scale."""
    fig, ax = plt.subplots(figsize=(6.2, 5.4))
    off = matrix.astype(float).copy()
    np.fill_diagonal(off, np.nan)
    im = ax.imshow(off, cmap="Reds")
    dark = np.nanmax(off) / 2 if np.isfinite(off).any() else np.inf
    for (i, j), n in np.ndenumerate(matrix):
        color = "navy" if i == j else "white" if n > dark else "black"
        ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color=color, weight="bold" if i == j else "normal")
    ax.set(
        xticks=range(10),
        yticks=range(10),
        xlabel="predicted",
        ylabel="true",
        title=f"{model}: confusion matrix (colour: mistakes only)",
    )
    fig.colorbar(im, ax=ax, label="wrong predictions", ticks=plt.MaxNLocator(integer=True))  # counts
    fig.tight_layout()
    return fig


def misclassified_grid(
    images: np.ndarray, true: list[int], pred: list[int], conf: list[float], model: str, cols: int = 8
) -> plt.Figure:
    """Q5: wrongly classified test images, titled true / predicted / confidence."""
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.45, rows * 1.75 + 0.5), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(images):
            ax.imshow(images[k], cmap="gray")
            ax.set_title(f"true {true[k]}, pred {pred[k]}\n{conf[k]:.1%} sure", fontsize=8, color="firebrick")
    fig.suptitle(f"{model}: misclassified test images, most confident first")
    fig.tight_layout()
    return fig


def feature_maps(inputs: np.ndarray, layers: dict[str, np.ndarray], model: str, per_row: int = 16) -> plt.Figure:
    """Q6: each input digit beside every channel of each conv layer's (post-ReLU) output."""
    blocks = {name: -(-maps.shape[1] // per_row) for name, maps in layers.items()}
    rows = [len(inputs) * b for b in blocks.values()]
    fig = plt.figure(figsize=(per_row + 1, sum(rows) * 1.05 + 0.6 * len(layers)), layout="constrained")
    made = fig.subfigures(len(layers), 1, height_ratios=[r + 0.6 for r in rows])
    subfigs = made.flat if isinstance(made, np.ndarray) else [made]  # one layer: a SubFigure, not an array
    for sub, (name, maps) in zip(subfigs, layers.items(), strict=True):
        axes = sub.subplots(len(inputs) * blocks[name], per_row + 1, squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for d, digit in enumerate(inputs):
            axes[d * blocks[name]][0].imshow(digit, cmap="gray")
            axes[d * blocks[name]][0].set_title("input", fontsize=7)
            for ch in range(maps.shape[1]):
                ax = axes[d * blocks[name] + ch // per_row][ch % per_row + 1]
                ax.imshow(maps[d, ch], cmap="viridis")
                if d == 0:
                    ax.set_title(f"ch {ch}", fontsize=7)
        sub.suptitle(
            f"{model} {name}: {maps.shape[1]} channels of {maps.shape[2]}x{maps.shape[3]} "
            "after ReLU (brighter: stronger)"
        )
    return fig


def hidden_units(inputs: np.ndarray, hidden: np.ndarray, model: str, name: str) -> plt.Figure:
    """Q6 for the MLP: each digit beside its hidden-layer activations, as a grid of units."""
    units = hidden.shape[1]
    cols = 16 if units % 16 == 0 else units
    fig, axes = plt.subplots(
        len(inputs),
        2,
        figsize=(7, 1.5 * len(inputs)),
        gridspec_kw={"width_ratios": [1, cols / (units // cols) * 0.5]},
        squeeze=False,
    )
    vmax = float(hidden.max()) or 1.0
    for d, (digit, h) in enumerate(zip(inputs, hidden, strict=True)):
        axes[d][0].imshow(digit, cmap="gray")
        im = axes[d][1].imshow(h.reshape(-1, cols), cmap="viridis", vmin=0, vmax=vmax)
        for ax in axes[d]:
            ax.set_xticks([]), ax.set_yticks([])
    axes[0][0].set_title("input", fontsize=9)
    axes[0][1].set_title(f"{name}: {units} hidden units after ReLU ({units // cols}x{cols})", fontsize=9)
    fig.colorbar(im, ax=axes[:, 1].tolist(), label="activation")
    fig.suptitle(f"{model}: hidden layer activations")
    return fig
