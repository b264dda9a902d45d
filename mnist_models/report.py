"""Result JSON files -> one DataFrame -> tables, CSV and plots (compare.py: regressions).

    python -m mnist_models report results/*.json --out results/report

`load_results` only loads; each output (markdown, CSV, PNG) is its own function of
the frame it returns.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

KEY = ["model", "device", "operation", "loader", "variant", "precision", "batch_size"]
STATS = ["median", "mean", "min", "max", "stddev", "q1", "q3", "iqr", "rounds"]
FIGURES = ["samples", "samples_per_second", "gflops", "test_accuracy", "final_loss",
           "cold_seconds", "peak_rss_mb", "cuda_peak_memory_mb", "params", "macs_per_sample",
           "torch_threads", "harness_overhead_fraction", "epochs_to_target", "reached",
           "target_accuracy"]


class ResultError(ValueError):
    """A result file that cannot be used, named with what is wrong."""


@dataclass
class Results:
    """What load_results found: one row per case, the machines, and the files it passed over."""

    frame: pd.DataFrame
    machines: dict[str, dict] = field(default_factory=dict)  # label -> machine facts
    problems: list[str] = field(default_factory=list)  # one line per unusable file


def read_result(path: str | Path) -> dict:
    """One pytest-benchmark JSON written by `pytest bench`, or ResultError saying why not."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise ResultError(f"{path}: cannot read it ({exc.strerror})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultError(f"{path}: not valid JSON, truncated or corrupt ({exc}); "
                          "write it again with pytest bench --benchmark-json") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ResultError(f"{path}: not a pytest-benchmark result (no 'benchmarks' list)")
    ours = [b for b in doc["benchmarks"] if {"model", "operation"} <= set(b.get("extra_info", {}))]
    if not ours:
        raise ResultError(f"{path}: a pytest-benchmark file without mnist-bench fields "
                          "(extra_info has no model/operation); pass files from `pytest bench`")
    return {**doc, "benchmarks": ours}


def _rows(doc: dict, machine: str, path: Path) -> list[dict]:
    facts = doc.get("machine_info", {}).get("mnist_bench", {})
    peaks = facts.get("peak_gflops", {})
    rows = []
    for b in doc["benchmarks"]:
        info, stats = b["extra_info"], b["stats"]
        row = {"machine": machine, "file": str(path), "case": b.get("param") or b["name"],
               **{k: info.get(k) for k in KEY}, **{k: stats.get(k) for k in STATS},
               **{k: info.get(k) for k in FIGURES}, "data": stats.get("data")}
        peak = peaks.get(f"{row['device']}_{row['precision']}")
        row["peak_fraction"] = row["gflops"] / peak if peak and row["gflops"] else None
        rows.append(row)
    return rows


def load_results(paths: list[str | Path]) -> Results:
    """Every usable file into one frame; unusable ones are listed in `problems`, not raised."""
    docs, problems = [], []
    for path in paths:
        try:
            docs.append((Path(path), read_result(path)))
        except ResultError as exc:
            problems.append(str(exc))
    labels = [d.get("machine_info", {}).get("mnist_bench", {}).get("label") or p.stem
              for p, d in docs]
    machines, rows = {}, []
    for (path, doc), label in zip(docs, labels):
        machine = label if labels.count(label) == 1 else f"{label} ({path.stem})"
        machines[machine] = doc.get("machine_info", {}).get("mnist_bench", {})
        rows += _rows(doc, machine, path)
    frame = pd.DataFrame(rows, columns=["machine", "file", "case", *KEY, *STATS, *FIGURES,
                                        "data", "peak_fraction"])
    return Results(frame.assign(setup=_setup), machines, problems)


def _setup(frame: pd.DataFrame) -> pd.Series:
    """A short label for the loop: 'resident', 'seed loader', 'plain loop', 'cuda graph', + ' bf16'."""
    loop = np.select([frame["loader"] == "seed", frame["variant"] == "plain", frame["variant"] == "graphs"],
                     ["seed loader", "plain loop", "cuda graph"], "resident")
    return pd.Series(loop, index=frame.index) + np.where(frame["precision"] == "bf16", " bf16", "")


def _md(frame: pd.DataFrame, floatfmt: str = ",.4g") -> str:
    """Markdown table; images/s shown as whole numbers."""
    if not len(frame):
        return "(none)"
    if "images/s" in frame:
        frame = frame.assign(**{"images/s": frame["images/s"].round().astype("Int64")})
    return frame.to_markdown(index=False, floatfmt=floatfmt, intfmt=",")


def machine_summary(results: Results) -> str:
    """One line of facts per machine."""
    lines = []
    for label, f in results.machines.items():
        gpu = f"{f.get('gpu_count')}x {f['gpu_name']} ({f.get('gpu_memory_gb')} GB)" if f.get("gpu_name") else "no GPU"
        peaks = ", ".join(f"{k} {v:,.0f}" for k, v in (f.get("peak_gflops") or {}).items())
        lines.append(f"- **{label}**: {f.get('cpu_model', '?')}, {f.get('physical_cores')} cores, "
                     f"{f.get('ram_gb')} GB RAM, {gpu}; torch {f.get('torch')}, "
                     f"{f.get('torch_threads')} threads; matmul peak GFLOP/s: {peaks or 'not probed'}"
                     f"{' (quick run)' if f.get('quick') else ''}")
    return "\n".join(lines)


def _operation_table(frame: pd.DataFrame, operation: str, seconds: str, extra: list[str]) -> pd.DataFrame:
    """One operation's cases: time, throughput and share of the matmul peak (+ extra columns)."""
    t = frame[frame["operation"] == operation]
    out = t[["machine", "model", "device", "batch_size", "setup", "median", "samples_per_second",
             "peak_fraction", *extra]]
    out = out.rename(columns={"median": seconds, "samples_per_second": "images/s",
                              "peak_fraction": "of peak", "test_accuracy": "test acc",
                              "batch_size": "batch"})
    return out.sort_values(["machine", "model", "device", "batch", "setup"])


def train_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Training epoch time, throughput, accuracy and share of the matmul peak per case."""
    return _operation_table(frame, "train", "epoch s", ["test_accuracy"])


def infer_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Inference pass time, throughput and share of the matmul peak per case."""
    return _operation_table(frame, "infer", "pass s", [])


def speedup_table(frame: pd.DataFrame) -> pd.DataFrame:
    """GPU-over-CPU speedup (cpu median / cuda median) per machine, case and batch size."""
    key = ["machine", "operation", "model", "loader", "variant", "precision", "batch_size"]
    wide = frame.pivot_table(index=key, columns="device", values="median", aggfunc="first")
    if not {"cpu", "cuda"} <= set(wide.columns):
        return pd.DataFrame()
    wide = wide.dropna(subset=["cpu", "cuda"]).reset_index()
    wide["speedup"] = wide["cpu"] / wide["cuda"]
    return wide.rename(columns={"cpu": "cpu s", "cuda": "cuda s"})


def cuda_epochs(frame: pd.DataFrame) -> pd.DataFrame:
    """cuda training epochs (resident loader, fp32): what the study quotes for Q7 without a GPU."""
    f = frame[(frame["operation"] == "train") & (frame["device"] == "cuda")
              & (frame["loader"] == "resident") & (frame["precision"] == "fp32")]
    return f[["machine", "model", "batch_size", "variant", "median", "samples_per_second"]].rename(
        columns={"median": "epoch s", "samples_per_second": "images/s"})


def tta_table(frame: pd.DataFrame) -> pd.DataFrame:
    t = frame[frame["operation"] == "tta"]
    return t[["machine", "model", "device", "setup", "target_accuracy", "median", "min", "max",
              "epochs_to_target", "reached"]].rename(
        columns={"median": "median s", "min": "best s", "max": "worst s",
                 "target_accuracy": "target"})


def machine_matrix(frame: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """Case x machine median seconds, with each machine's ratio to the baseline (base / it)."""
    wide = frame.pivot_table(index="case", columns="machine", values="median", aggfunc="first")
    if wide.shape[1] < 2:
        return pd.DataFrame()
    base = baseline or wide.columns[0]
    if base not in wide.columns:
        raise ResultError(f"baseline {base!r} is not among the machines: {', '.join(wide.columns)}")
    ratios = wide.rdiv(wide[base], axis=0).drop(columns=base).add_suffix(f" speed vs {base}")
    return pd.concat([wide.add_suffix(" s"), ratios], axis=1).reset_index()


def render_markdown(results: Results, baseline: str | None = None, plots: list[str] = ()) -> str:
    """The whole report.md."""
    f = results.frame
    parts = ["# mnist-bench report", "", "## Machines", "", machine_summary(results), ""]
    parts += ["## Training: one epoch", "", "`of peak`: achieved GFLOP/s (training counted as 3x "
              "the forward MACs x 2) over the machine's matmul probe in the same precision.", "",
              _md(train_table(f).assign(**{"of peak": lambda d: d["of peak"].map(_pct),
                                           "test acc": lambda d: d["test acc"].map(_pct)})), ""]
    parts += ["## Inference: the test set", "",
              _md(infer_table(f).assign(**{"of peak": lambda d: d["of peak"].map(_pct)})), ""]
    speed = speedup_table(f)
    parts += ["## GPU over CPU (Q7)", "", _md(speed) if len(speed) else
              "No file here holds both cpu and cuda results for the same case.", ""]
    parts += ["## Time to accuracy", "", _md(tta_table(f)), ""]
    matrix = machine_matrix(f, baseline)
    if len(matrix):
        parts += ["## Across machines", "", "Median seconds per case, and speed relative to the "
                  f"baseline (>1: faster than {baseline or matrix.columns[1][:-2]}).", "", _md(matrix), ""]
    parts += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    if results.problems:
        parts += ["", "## Files passed over", ""] + [f"- {p}" for p in results.problems]
    return "\n".join(parts) + "\n"


def _pct(x) -> str:
    return "" if x is None or pd.isna(x) else f"{x:.1%}"


def flat_csv(results: Results) -> str:
    """The frame as CSV, without the raw per-round data."""
    return results.frame.drop(columns=["data"]).to_csv(index=False)


def write_report(results: Results, out: Path, baseline: str | None = None) -> list[Path]:
    """report.md, results.csv and the plots into `out`; returns the paths written."""
    from . import plots
    from .files import write_text
    inputs = {Path(p).resolve() for p in results.frame["file"].unique()}
    out.mkdir(parents=True, exist_ok=True)
    figures = {"throughput.png": plots.throughput_vs_batch, "epoch_time.png": plots.epoch_time_bars,
               "loaders.png": plots.loader_bars}
    if len(results.machines) > 1:
        base = baseline or next(iter(results.machines))
        figures["machines.png"] = lambda f: plots.machine_bars(f, base)
    clash = [n for n in [*figures, "report.md", "results.csv"] if (out / n).resolve() in inputs]
    if clash:
        raise ResultError(f"{out}/{clash[0]} is one of the input files; choose another --out")
    written = []
    for name, draw in figures.items():
        fig = draw(results.frame)
        fig.savefig(out / name, dpi=110)
        plots.plt.close(fig)
        written.append(out / name)
    write_text(out / "results.csv", flat_csv(results))
    write_text(out / "report.md", render_markdown(results, baseline, [p.name for p in written]))
    return [out / "report.md", out / "results.csv", *written]


def ablation_frame(doc: dict) -> pd.DataFrame:
    """An ablation run's records, with each variant's speed relative to its baseline.

    `speedup` divides medians; `best speedup` divides each variant's quickest round, which
    a shared machine's slow spells (they only ever add time) cannot reach.
    """
    f = pd.DataFrame(doc["records"])
    f["best"] = f["data"].map(min)
    base = f[f["variant"] == f["baseline"]].set_index("comparison")
    f["speedup"] = f["comparison"].map(base["median"]) / f["median"]
    f["best speedup"] = f["comparison"].map(base["best"]) / f["best"]
    peaks = doc["machine"].get("peak_gflops", {})
    f["of peak"] = [g / peaks[f"cpu_{p}"] if peaks.get(f"cpu_{p}") else None
                    for g, p in zip(f["gflops"], f["precision"])]
    return f


def targets(ablation: pd.DataFrame, bench: pd.DataFrame) -> pd.DataFrame:
    """The five speed targets: measured value beside its goal, and whether it was met."""
    def best(comparison: str, precision: str = "fp32", by: str = "speedup") -> pd.Series:
        part = ablation[(ablation["comparison"] == comparison) & (ablation["precision"] == precision)]
        return part.loc[part[by].idxmax()]

    def rounds(comparison: str) -> str:
        top = best(comparison, by="best speedup")
        return f"; best rounds {top['best speedup']:.2f}x ({top['variant']})"

    mlp, cnn = best("mlp bs64"), best("cnn bs256 fp32")
    bf = ablation[ablation["comparison"] == "cnn bs256 bf16"].set_index("variant")
    fp32, bf16 = bf.loc[bf.iloc[0]["baseline"]], bf.loc["bf16 cl, fused"]
    bf16_met = bf16["speedup"] >= 1.5 and abs(bf16["test_accuracy"] - fp32["test_accuracy"]) <= 0.003
    rows = [("1. MLP bs64 training vs the seed loop",
             f"{mlp['speedup']:.2f}x ({mlp['variant']}){rounds('mlp bs64')}",
             "10x (8x at least)", mlp["speedup"] >= 10, mlp["speedup"] >= 8),
            ("2. CNN bs256 fp32 vs plain NCHW loop",
             f"{cnn['speedup']:.2f}x ({cnn['variant']}, {cnn['of peak']:.0%} of fp32 peak)"
             f"{rounds('cnn bs256 fp32')}",
             "1.4x", cnn["speedup"] >= 1.4, cnn["speedup"] >= 1.4),
            ("3. CNN bf16 vs fp32 (test acc after one epoch)",
             f"{bf16['speedup']:.2f}x, {bf16['test_accuracy']:.2%} vs {fp32['test_accuracy']:.2%}; "
             f"best rounds {bf16['best speedup']:.2f}x",
             "1.5x, within 0.3 pts", bf16_met, bf16_met)]
    tta = bench[(bench["operation"] == "tta") & (bench["model"] == "cnn") & (bench["device"] == "cpu")]
    if len(tta):
        t = tta.iloc[0]
        every = all(t["reached"])
        rows.append(("4. CNN time to 99.0% on cpu (median of seeds)",
                     f"{t['median']:.1f} s, {sum(t['reached'])}/{len(t['reached'])} seeds reached",
                     "15 s (30 s at most), every seed", every and t["median"] <= 15, every and t["median"] <= 30))
    overhead = bench["harness_overhead_fraction"].max()
    rows.append(("5. harness overhead, worst case", f"{overhead:.4%}", "< 1%", overhead < 0.01, overhead < 0.01))
    out = pd.DataFrame(rows, columns=["target", "measured", "goal", "met", "minimum met"])
    out["verdict"] = np.where(out["met"], "met", np.where(out["minimum met"], "minimum met", "missed"))
    return out.drop(columns=["met", "minimum met"])


def render_fast(doc: dict, bench: Results | None, command: str) -> str:
    """fast.md: the targets, then every comparison's table."""
    f = ablation_frame(doc)
    samples = int(f["samples"].iloc[0])
    parts = ["# Fast: side-by-side measurements", "", f"Made by `{command}` on "
             f"{doc['machine'].get('label')} ({doc['machine'].get('cpu_model')}, "
             f"{doc['machine'].get('physical_cores')} cores); {doc['rounds']} interleaved rounds "
             f"per variant after one cold round, each one training epoch of {samples:,} images "
             "from a fresh model. Ratios are taken within a comparison, never across: `speedup` "
             "divides medians (the verdicts use it), `best speedup` each variant's quickest round, "
             "which this VM's slow spells, adding time to whole rounds, do not reach.", ""]
    if bench is not None and not bench.frame.empty:
        parts += ["## Targets", "", _md(targets(f, bench.frame)), ""]
    for name, part in f.groupby("comparison", sort=False):
        table = part[["variant", "threads", "median", "samples_per_second", "speedup", "of peak",
                      "best", "best speedup", "test_accuracy"]].rename(
            columns={"median": "epoch s", "samples_per_second": "images/s", "best": "best round s",
                     "test_accuracy": "test acc"})
        ratio = lambda x: f"{x:.2f}x"
        table = table.assign(**{"of peak": table["of peak"].map(_pct), "test acc": table["test acc"].map(_pct),
                                "speedup": table["speedup"].map(ratio),
                                "best speedup": table["best speedup"].map(ratio)})
        parts += [f"## {name} (relative to {part.iloc[0]['baseline']})", "", _md(table), ""]
    return "\n".join(parts)
