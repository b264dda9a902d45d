"""matplotlib figures of the report; each takes the results frame (or a table of it) and
returns a Figure, or None when its data holds nothing to draw.

    fig = throughput_vs_batch(results.frame); path.write_bytes(png(fig))

Report figures draw at most MAX_PANELS models, MAX_SERIES lines a panel and MAX_BARS
bar groups, and say on the figure what they left out; the report's tables keep every case.
Every string from a result file passes through `_text`, so a label like `lab$\\foo{$`
is drawn as written, never parsed as mathtext.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import labels  # noqa: E402

MAX_PANELS, MAX_SERIES, MAX_BARS, MAX_TICKS = 4, 10, 40, 12
LABELLED_SERIES = 4  # bars a group that still carry their value


def png(fig: plt.Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def _left_out(fig: plt.Figure, *counts: tuple[int, int, str]) -> None:
    """A line at the foot of the figure for what it did not draw: (shown, total, what)."""
    cut = [f"{shown} of {total:,} {what}" for shown, total, what in counts if shown < total]
    if cut:
        fig.text(
            0.5,
            0.005,
            f"showing {', '.join(cut)}; report.md's tables hold every case",
            ha="center",
            va="bottom",
            fontsize=8,
            color="firebrick",
        )


def _text(value) -> str:
    """A string from a result file, drawn as written: a `$` would start mathtext."""
    return str(value).replace("$", r"\$")


def _label(parts) -> str:
    return _text(" ".join(str(p) for p in parts if p))


def throughput_vs_batch(frame: pd.DataFrame) -> plt.Figure | None:
    """Images/s against batch size per model and operation; a line per machine, device,
    precision (and workload, where the frame holds several)."""
    f = frame[
        (frame["loader"] == "resident") & (frame["variant"] == "tuned") & frame["operation"].isin(["train", "infer"])
    ]
    all_models, ops = sorted(f["model"].unique()), ["train", "infer"]
    if not all_models:
        return None
    models = all_models[:MAX_PANELS]
    fig, axes = plt.subplots(len(ops), len(models), figsize=(5.5 * len(models), 8.3), squeeze=False)
    series = shown = 0
    for (i, op), (j, model) in ((a, b) for a in enumerate(ops) for b in enumerate(models)):
        ax, part = axes[i][j], f[(f["operation"] == op) & (f["model"] == model)]
        keys, several = ["machine", "device", "precision", "native", "samples"], part["samples"].nunique() > 1
        lines = list(part.groupby(keys, dropna=False))
        series, shown = series + len(lines), shown + min(len(lines), MAX_SERIES)
        for (machine, device, precision, native, work), line in lines[:MAX_SERIES]:
            line = line.sort_values("batch_size")
            ax.plot(
                line["batch_size"],
                line["samples_per_second"],
                marker="o" if len(line) <= 50 else None,
                label=_label(
                    [
                        machine,
                        device,
                        precision,
                        not native and pd.notna(native) and "(emulated)",
                        several and f"({labels.workload(work)})",
                    ]
                ),
            )
        kind = "training epochs" if op == "train" else "inference passes"
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="batch size",
            ylabel=_text(f"images / s ({kind} of {labels.workloads(part['samples'])})" if len(part) else "images / s"),
            title=_text(f"{model}: {'training' if op == 'train' else 'inference'} throughput"),
        )
        sizes = sorted(part["batch_size"].unique())
        if 0 < len(sizes) <= MAX_TICKS:
            ax.set_xticks(sizes, labels=sizes)
        ax.grid(True, which="both", alpha=0.3)
        if lines:
            ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    _left_out(fig, (shown, series, "lines"), (len(models), len(all_models), "models"))
    return fig


def scaling(table: pd.DataFrame) -> plt.Figure | None:
    """Data-parallel images/s against ranks, a panel per model, a line per machine, device,
    scaling mode and threads, each beside its ideal (one rank's images/s x ranks, dashed).

    `table`: tables.scaling_table's frame.
    """
    if table.empty:
        return None
    models = sorted(table["model"].unique())[:MAX_PANELS]
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        part = table[table["model"] == model]
        lines = list(part.groupby(["machine", "device", "scaling", "threads"]))[:MAX_SERIES]
        for (machine, device, mode, threads), line in lines:
            one = part[
                (part["machine"] == machine)
                & (part["device"] == device)
                & (part["threads"] == threads)
                & (part["ranks"] == 1)
            ]  # the one-rank case starts both modes' lines
            line = pd.concat([one, line]).drop_duplicates("ranks").sort_values("ranks")
            drawn = ax.plot(
                line["ranks"],
                line["images/s"],
                marker="o",
                label=_label([machine, device, mode, f"{threads} thread/rank"]),
            )
            base = line["images/s"] / (line["efficiency"] * line["ranks"])  # one rank's images/s
            if base.notna().any() and len(line) > 1:
                ax.plot(
                    line["ranks"], base.dropna().iloc[0] * line["ranks"], ls="--", lw=0.8, color=drawn[0].get_color()
                )
        ax.set(
            xlabel="ranks (world size)",
            ylabel="training images / s",
            title=_text(f"{model}: data-parallel scaling (dashed: ideal)"),
        )
        ax.set_xticks(sorted(part["ranks"].unique()))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _bars(ax, labels: list[str], groups: dict[str, list[float]], ylabel: str, title: str, fmt: str = "{:,.3g}") -> None:
    x, width = np.arange(len(labels)), 0.8 / max(len(groups), 1)
    for k, (name, values) in enumerate(groups.items()):
        bars = ax.bar(x + (k - (len(groups) - 1) / 2) * width, values, width, label=name)
        if len(groups) <= LABELLED_SERIES:  # beyond, the labels overlap: the page's tables hold the values
            ax.bar_label(bars, fmt=fmt, fontsize=7)
    ax.set_xticks(x, labels, rotation=20 if len(labels) <= 8 else 60, ha="right")
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize=8, **({} if len(groups) <= LABELLED_SERIES else {"loc": "upper left", "bbox_to_anchor": (1, 1)}))


def _bar_figure(wide: pd.DataFrame, ylabel: str, title: str, fmt: str, inch_per_group: float) -> plt.Figure | None:
    """Grouped bars: one group per row of `wide` (its index joined as the label), a bar per
    column; at most MAX_BARS groups and MAX_SERIES bars a group."""
    if wide.empty:
        return None
    shown = wide.iloc[:MAX_BARS, :MAX_SERIES]
    labels = [_label(k if isinstance(k, tuple) else [k]) for k in shown.index]
    fig, ax = plt.subplots(figsize=(min(20, max(6, len(labels) * inch_per_group)), 4.8))
    _bars(ax, labels, {_text(c): shown[c].tolist() for c in shown.columns}, _text(ylabel), _text(title), fmt=fmt)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    _left_out(fig, (shown.size, wide.size, "bars"))
    return fig


def training_bars(frame: pd.DataFrame) -> plt.Figure | None:
    """Training images/s per machine, model and batch size, a bar per device (fp32, tuned)."""
    f = frame[
        (frame["operation"] == "train")
        & (frame["loader"] == "resident")
        & (frame["variant"] == "tuned")
        & (frame["precision"] == "fp32")
    ]
    index = ["machine", "model", "batch"] + (["workload"] if f["samples"].nunique() > 1 else [])
    wide = f.assign(
        batch=f["batch_size"].map(lambda b: f"bs{b}"), workload=f["samples"].map(labels.workload)
    ).pivot_table(index=index, columns="device", values="samples_per_second", sort=False)
    devices = " vs ".join(d.upper() for d in wide.columns)
    fig = _bar_figure(
        wide,
        f"training images / s\n(epochs of {labels.workloads(f['samples'])})",
        f"Training throughput, {devices} (fp32)",
        "{:,.0f}",
        0.9,
    )
    if fig is not None:
        fig.axes[0].set_yscale("log")  # a GPU and a CPU, or an MLP and a CNN, differ by orders
    return fig


def loader_bars(frame: pd.DataFrame) -> plt.Figure | None:
    """The notebook's DataLoader loop against the resident loop (and its CUDA graph), batch 64, fp32."""
    f = frame[(frame["operation"] == "train") & (frame["batch_size"] == 64) & (frame["precision"] == "fp32")]
    loops = {
        "notebook loader": "notebook DataLoader + ToTensor",
        "resident": "resident tensors",
        "cuda graph": "resident + CUDA graph",
    }  # the loops, spelled out
    f = f.assign(loop=labels.loop(f).map(loops), workload=f["samples"].map(labels.workload))
    index = ["machine", "model", "device"] + (["workload"] if f["samples"].nunique() > 1 else [])
    wide = f.pivot_table(index=index, columns="loop", values="samples_per_second")
    return _bar_figure(
        wide,
        f"training images / s\n(epochs of {labels.workloads(f['samples'])})",
        "The notebook's loader vs the resident loader (batch 64, fp32)",
        "{:,.0f}",
        1.2,
    )


def machine_bars(matrix: pd.DataFrame, baseline: str) -> plt.Figure | None:
    """Each machine's throughput over the baseline's, per case both ran (log scale).

    `matrix`: tables.machine_matrix's frame (case, samples, images/s and ratio columns);
    a case run with two workloads (a quick and a full run) gets a bar per workload.
    """
    ratios = [c for c in matrix.columns if c.endswith(f" vs {baseline}")]
    m = matrix.dropna(subset=ratios, how="all")
    if m.empty:
        return None
    twice = m["case"].duplicated(keep=False)
    names = [f"{c} ({labels.workload(n)})" if t else c for c, n, t in zip(m["case"], m["samples"], twice)]
    wide = pd.DataFrame({c.removesuffix(f" vs {baseline}"): m[c].to_numpy() for c in ratios}, index=names)
    fig = _bar_figure(
        wide,
        f"images/s relative to {baseline}\n(same case, same images per round)",
        "Across machines (higher is faster)",
        "{:.2f}x",
        0.4,
    )
    if fig is None:  # no ratio column: no machine beside the baseline
        return None
    ax = fig.axes[0]
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}x"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.axhline(1, color="grey", lw=0.8)
    return fig
