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

from .hardware import SHOWN_FLAGS, cpu_native_bf16, vector_isa

KEY = ["model", "device", "operation", "loader", "variant", "precision", "batch_size"]
STATS = ["median", "mean", "min", "max", "stddev", "q1", "q3", "iqr", "rounds"]
FIGURES = ["samples", "samples_per_second", "gflops", "flops_per_sample", "test_accuracy", "final_loss",
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


def _rows(doc: dict, machine: str, path: Path, facts: dict) -> list[dict]:
    peaks = facts.get("peak_gflops") or {}
    rows = []
    for b in doc["benchmarks"]:
        info, stats = b["extra_info"], b["stats"]
        row = {"machine": machine, "file": str(path), "case": b.get("param") or b["name"],
               **{k: info.get(k) for k in KEY}, **{k: stats.get(k) for k in STATS},
               **{k: info.get(k) for k in FIGURES}, "data": stats.get("data")}
        row["native"] = info.get("native", _native(row["device"], row["precision"], facts))
        peak = peaks.get(f"{row['device']}_{row['precision']}")
        fraction = row["gflops"] / peak if peak and row["gflops"] else None
        # above 100% of the probe is impossible: the probe (or the FLOP count) is wrong there
        row["peak_fraction"] = fraction if fraction is not None and fraction <= 1 else None
        row["peak_over"] = fraction is not None and fraction > 1
        # files without flops_per_sample counted a training step as 3x the forward pass
        row["flops_3x"] = row["operation"] == "train" and row["flops_per_sample"] is None
        rows.append(row)
    return rows


def _native(device: str, precision: str, facts: dict) -> bool | None:
    """For files written before cases recorded it: bf16 on a cpu is native where its flags say so."""
    if precision == "fp32":
        return True
    return facts.get("cpu_bf16_native") if device == "cpu" else None


def machine_facts(doc: dict) -> dict:
    """A file's machine_info.mnist_bench, completed from pytest-benchmark's own machine_info
    (py-cpuinfo's flags, family, model, stepping) where the file predates those fields."""
    info = doc.get("machine_info", {})
    facts, cpu = dict(info.get("mnist_bench") or {}), info.get("cpu") or {}
    flags = {f.lower() for f in cpu.get("flags", ())}
    if "cpu_flags" not in facts and flags:
        facts.update(cpu_family=cpu.get("family"), cpu_model_number=cpu.get("model"),
                     cpu_stepping=cpu.get("stepping"), cpu_flags=[f for f in SHOWN_FLAGS if f in flags],
                     cpu_bf16_native=cpu_native_bf16(flags),
                     cpu_capability=f"{vector_isa(flags)} (from flags)")
    facts["commit"] = (doc.get("commit_info") or {}).get("id", "")[:7] or None
    facts["date"] = (doc.get("datetime") or "")[:10] or None
    return facts


def load_results(paths: list[str | Path], include_quick: bool = False) -> Results:
    """Every usable file into one frame; unusable ones are listed in `problems`, not raised.

    Quick runs (`--quick`: a few thousand images per round) are left out, and listed, when
    full runs are among the files, unless `include_quick`.
    """
    docs, problems = [], []
    for path in paths:
        try:
            docs.append((Path(path), read_result(path)))
        except ResultError as exc:
            problems.append(str(exc))
    quick = [machine_facts(d).get("quick") for _, d in docs]
    if not include_quick and not all(quick):
        problems += [f"{p}: a --quick run, left out beside full runs (pass --include-quick to "
                     "report it; its cases are compared only with runs of the same workload)"
                     for (p, _), q in zip(docs, quick) if q]
        docs = [d for d, q in zip(docs, quick) if not q]
    labels = [machine_facts(d).get("label") or p.stem for p, d in docs]
    machines, rows = {}, []
    for (path, doc), label in zip(docs, labels):
        machine = label if labels.count(label) == 1 else f"{label} ({path.stem})"
        machines[machine] = machine_facts(doc)
        rows += _rows(doc, machine, path, machines[machine])
    frame = pd.DataFrame(rows, columns=["machine", "file", "case", *KEY, *STATS, *FIGURES,
                                        "data", "native", "peak_fraction", "peak_over", "flops_3x"])
    return Results(frame.assign(setup=_setup, workload=workload), machines, problems)


def _setup(frame: pd.DataFrame) -> pd.Series:
    """A short label for the loop: 'resident', 'seed loader', 'plain loop', 'cuda graph',
    + ' bf16', + ' (emulated)' where the device has no bf16 instructions."""
    loop = np.select([frame["loader"] == "seed", frame["variant"] == "plain", frame["variant"] == "graphs"],
                     ["seed loader", "plain loop", "cuda graph"], "resident")
    emulated = np.where(frame["native"].eq(False), " (emulated)", "")
    return (pd.Series(loop, index=frame.index) + np.where(frame["precision"] == "bf16", " bf16", "")
            + emulated)


def workload(frame: pd.DataFrame) -> pd.Series:
    """What one round of a case processes, e.g. '60,000 images' (quick runs: '4,096 images')."""
    return frame["samples"].map(lambda n: f"{int(n):,} images" if pd.notna(n) else "?")


def _md(frame: pd.DataFrame, floatfmt: str = ",.4g") -> str:
    """Markdown table; images/s shown as whole numbers."""
    if not len(frame):
        return "(none)"
    if "images/s" in frame:
        frame = frame.assign(**{"images/s": frame["images/s"].round().astype("Int64")})
    return frame.to_markdown(index=False, floatfmt=floatfmt, intfmt=",")


def machine_table(results: Results) -> pd.DataFrame:
    """The facts that tell machines apart, a column per machine."""
    def join(items) -> str:
        return ", ".join(items) or "not recorded"

    def column(f: dict) -> dict[str, str]:
        cpu = f"{f.get('cpu_model', '?')}"
        if f.get("cpu_family") is not None:
            cpu += f" (family {f['cpu_family']}, model {f.get('cpu_model_number')}, stepping {f.get('cpu_stepping')})"
        bf16 = {True: "native", False: "emulated (no AVX512-BF16, AMX or Arm BF16)"}.get(
            f.get("cpu_bf16_native"), "not recorded")
        gpu = (f"{f.get('gpu_count')}x {f['gpu_name']}, {f.get('gpu_memory_gb')} GB, compute "
               f"{f.get('gpu_compute_capability', '?')}, driver {f.get('gpu_driver') or '?'}, bf16 "
               f"{ {True: 'native', False: 'emulated'}.get(f.get('gpu_bf16_native'), '?')}"
               if f.get("gpu_name") else "none")
        sizes = f.get("peak_probe_size") or {}
        peaks = [f"{k.replace('_', ' ')} {v:,.1f}" + (f" ({sizes[k]})" if k in sizes else "")
                 for k, v in (f.get("peak_gflops") or {}).items()]
        run = "quick" if f.get("quick") else "full"
        return {"CPU": cpu, "vector ISA (torch)": f.get("cpu_capability") or "not recorded",
                "bf16 on the CPU": bf16, "CPU flags": join(f.get("cpu_flags") or []),
                "cores": f"{f.get('physical_cores')} physical, {f.get('logical_cores')} logical; "
                         f"{f.get('torch_threads')} torch threads",
                "caches (per core; L3 shared)": join(f"{k} {v}" for k, v in (f.get("cpu_caches") or {}).items()),
                "RAM": f"{f.get('ram_gb')} GB", "GPU": gpu,
                "software": f"torch {f.get('torch')}, Python {f.get('python', '?')}, {f.get('os', '?')}",
                "matmul peak GFLOP/s (size)": join(peaks),
                "run": f"{run}, {f.get('rounds')} rounds; {f.get('date') or '?'}, commit {f.get('commit') or '?'}"}
    table = pd.DataFrame({label: column(f) for label, f in results.machines.items()})
    return table.rename_axis("").reset_index()


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
    key = ["machine", "operation", "model", "loader", "variant", "precision", "batch_size", "samples"]
    wide = frame.pivot_table(index=key, columns="device", values="median", aggfunc="first")
    if not {"cpu", "cuda"} <= set(wide.columns):
        return pd.DataFrame()
    wide = wide.dropna(subset=["cpu", "cuda"]).reset_index()
    wide["speedup"] = wide["cpu"] / wide["cuda"]
    return wide.rename(columns={"cpu": "cpu s", "cuda": "cuda s", "samples": "images/round"})


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
    """Images/s per case and workload, a column per machine, and each machine's throughput
    over the baseline's on the same case and workload (>1: faster). Cases whose workloads
    differ sit on different rows, so a quick run is never weighed against a full one."""
    machines = list(dict.fromkeys(frame["machine"]))
    if len(machines) < 2:
        return pd.DataFrame()
    base = baseline or machines[0]
    if base not in machines:
        raise ResultError(f"baseline {base!r} is not among the machines: {', '.join(machines)}")
    f = frame[frame["operation"].isin(["train", "infer"])]
    wide = f.pivot_table(
        index=["case", "workload"], columns="machine", values="samples_per_second", aggfunc="first")
    wide = wide.reindex(columns=machines)
    ratios = wide.div(wide[base], axis=0).drop(columns=base).add_suffix(f" vs {base}")
    return pd.concat([wide.add_suffix(" images/s"), ratios], axis=1).reset_index()


def _matrix_md(matrix: pd.DataFrame, results: Results) -> str:
    """The machine matrix, a case one machine lacks said in words (and why, where bf16 is
    emulated there)."""
    cases = results.frame.drop_duplicates("case").set_index("case")

    def missing(case: str, machine: str) -> str:
        facts, row = results.machines.get(machine, {}), cases.loc[case]
        if row["precision"] == "bf16" and row["device"] == "cpu" and facts.get("cpu_bf16_native") is False:
            return "not run (bf16 emulated there)"
        return "not run"

    shown = matrix.copy()
    for col in shown.columns[2:]:
        if col.endswith(" images/s"):
            machine = col.removesuffix(" images/s")
            shown[col] = [f"{x:,.0f}" if pd.notna(x) else missing(case, machine)
                          for x, case in zip(shown[col], shown["case"])]
        else:
            shown[col] = shown[col].map(lambda x: f"{x:.2f}x" if pd.notna(x) else "no pair")
    return shown.to_markdown(index=False)


def render_markdown(results: Results, baseline: str | None = None, plots: list[str] = ()) -> str:
    """The whole report.md."""
    f = results.frame
    parts = ["# mnist-bench report", "", "## Machines", "", _md(machine_table(results)), ""]
    over = f[f["peak_over"]]
    note = (f" Left blank where a case would exceed 100% of its probe, which cannot be: the "
            f"probe or the file's FLOP count is wrong there ({', '.join(sorted(set(over['machine'] + ' ' + over['case'])))})."
            if len(over) else "")
    train = train_table(f)
    train = train.assign(**{"of peak": [_pct(x) + ("*" if f.loc[i, "flops_3x"] else "")
                                        for i, x in zip(train.index, train["of peak"])],
                             "test acc": train["test acc"].map(_pct)})
    old_rule = (" `*`: a file made before `flops_per_sample` was recorded, whose count took every "
                "layer's backward as twice its forward: 1.5x too many FLOPs for the MLP, whose first "
                "layer needs no input gradient, 1.03x for the CNN." if f["flops_3x"].any() else "")
    parts += ["## Training: one epoch", "", "`of peak`: achieved GFLOP/s over the machine's matmul "
              "probe in the same precision; a training step counts the forward pass, every layer's "
              "weight gradient and every input gradient but the first layer's (`flops_per_sample`)."
              + old_rule + " `(emulated)`: bf16 on a device without bf16 instructions, run because "
              "it was asked for." + note, "", _md(train), ""]
    parts += ["## Inference: the test set", "",
              _md(infer_table(f).assign(**{"of peak": lambda d: d["of peak"].map(_pct)})), ""]
    speed = speedup_table(f)
    parts += ["## GPU over CPU (Q7)", "", _md(speed) if len(speed) else
              "No file here holds both cpu and cuda results for the same case.", ""]
    tta = tta_table(f)
    without = [m for m in results.machines if m not in set(tta["machine"])]
    parts += ["## Time to accuracy", "", _md(tta), ""]
    parts += [f"Not run on {', '.join(without)}.", ""] if without and len(tta) else []
    matrix = machine_matrix(f, baseline)
    if len(matrix):
        base = baseline or f["machine"].iloc[0]
        parts += ["## Across machines", "", "Images per second per case, on the same workload (images "
                  f"per round), and each machine's throughput over {base}'s (>1: faster). A case one "
                  "machine did not run is marked `not run`; time to accuracy is compared above.", "",
                  _matrix_md(matrix, results), ""]
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
    figures = {"throughput.png": plots.throughput_vs_batch, "training.png": plots.training_bars,
               "loaders.png": plots.loader_bars}
    matrix = machine_matrix(results.frame, baseline)
    if len(matrix):
        base = baseline or results.frame["machine"].iloc[0]
        figures["machines.png"] = lambda f: plots.machine_bars(matrix, base)
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
