"""Result files' frame -> tables, CSV and plots (results.py loads, compare.py judges).

    python -m mnist_models report results/*.json --out results/report

Each output (markdown, CSV, PNG) is its own function of the frame `load_results`
returns. Every string that came from a file is escaped before it reaches markdown or a
figure. No torch here.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

from .results import Results, ResultError

FIGURES = ("throughput.png", "scaling.png", "training.png", "loaders.png", "machines.png")
FILES = ("report.md", "results.csv", *FIGURES)
_MARKDOWN = re.compile(r"([\\`*_\[\]|])")  # with [ ] and < > escaped, no link or tag can form


def escape(value) -> str:
    """A string from a file made safe for one markdown line or table cell: whitespace runs
    (newlines too) become one space, so it can start no heading; HTML is escaped, and link,
    code, emphasis and table marks lose their meaning, so it can add no tag, link or cell."""
    text = html.escape(" ".join(str(value).split()), quote=False)
    return _MARKDOWN.sub(r"\\\1", text)


def _md(frame: pd.DataFrame, floatfmt: str = ",.4g") -> str:
    """Markdown table, every string escaped; images/s shown as whole numbers."""
    if not len(frame):
        return "(none)"
    if "images/s" in frame:
        frame = frame.assign(**{"images/s": frame["images/s"].round().astype("Int64")})
    frame = frame.rename(columns=escape)
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = frame[col].map(lambda v: escape(v) if isinstance(v, str) else v)
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
        accel = _accelerator(f)
        sizes = f.get("peak_probe_size") or {}
        peaks = [f"{k.replace('_', ' ')} {v:,.1f}" + (f" ({sizes[k]})" if k in sizes else "")
                 for k, v in (f.get("peak_gflops") or {}).items()]
        run = "quick" if f.get("quick") else "full"
        return {"CPU": cpu, "vector ISA (torch)": f.get("cpu_capability") or "not recorded",
                "bf16 on the CPU": bf16, "CPU flags": join(f.get("cpu_flags") or []),
                "cores": f"{f.get('physical_cores')} physical, {f.get('logical_cores')} logical; "
                         f"{f.get('torch_threads')} torch threads",
                "caches (per core; L3 shared)": join(f"{k} {v}" for k, v in (f.get("cpu_caches") or {}).items()),
                "RAM": f"{f.get('ram_gb')} GB", "accelerator": accel,
                "software": f"torch {f.get('torch')}, Python {f.get('python', '?')}, {f.get('os', '?')}",
                "matmul peak GFLOP/s (size)": join(peaks),
                "run": f"{run}, {f.get('rounds')} rounds; {f.get('date') or '?'}, commit {f.get('commit') or '?'}"}
    table = pd.DataFrame({label: column(f) for label, f in results.machines.items()})
    return table.rename_axis("").reset_index()


def _accelerator(f: dict) -> str:
    """One line for a machine's accelerator: accelerator_* facts (gpu_* in older files)."""
    def get(key: str):
        return f.get(f"accelerator_{key}", f.get(f"gpu_{key}"))
    name = get("name")
    if not name:
        return "none"
    kind = f.get("accelerator", "cuda")
    bf16 = {True: "native", False: "emulated or not checked"}.get(get("bf16_native"), "?")
    parts = [f"{get('count')}x {name} ({kind})", f"{get('memory_gb')} GB",
             f"capability {get('capability') or get('compute_capability') or '?'}",
             f"{get('runtime') or ''} driver {get('driver') or '?'}".strip(), f"bf16 {bf16}"]
    return ", ".join(parts)


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
    """Accelerator-over-CPU speedup (cpu median / accelerator median) per machine, case and
    batch size, for each accelerator type (cuda, mps, xpu) a machine ran."""
    key = ["machine", "operation", "model", "loader", "variant", "precision", "batch_size", "samples"]
    wide = frame.pivot_table(index=key, columns="device", values="median", aggfunc="first")
    accels = [d for d in wide.columns if d != "cpu"]
    if "cpu" not in wide.columns or not accels:
        return pd.DataFrame()
    rows = [wide[["cpu", d]].dropna().set_axis(["cpu s", "accelerator s"], axis=1).assign(accelerator=d)
            for d in accels]
    out = pd.concat(rows).reset_index()
    out["speedup"] = out["cpu s"] / out["accelerator s"]
    return out.rename(columns={"samples": "images/round"})


def scaling_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Data-parallel cases: images/s per world size, and the scaling efficiency (images/s
    over world size x one rank's images/s, same machine, model, device, batch and threads)."""
    d = frame[frame["operation"] == "ddp"].copy()
    if d.empty:
        return d
    family = ["machine", "model", "device", "batch_size", "threads_per_rank"]
    one = d.loc[d["world_size"] == 1, family + ["samples_per_second"]].rename(columns={"samples_per_second": "one"})
    d = d.merge(one.drop_duplicates(family), on=family, how="left")
    d["efficiency"] = d["samples_per_second"] / (d["world_size"] * d["one"])
    out = d[["machine", "model", "device", "scaling", "world_size", "threads_per_rank", "global_batch",
             "per_rank_batch", "median", "samples_per_second", "efficiency", "allreduce_share"]]
    return out.rename(columns={"world_size": "ranks", "threads_per_rank": "threads", "median": "epoch s",
                               "global_batch": "global batch", "per_rank_batch": "per-rank batch",
                               "samples_per_second": "images/s", "allreduce_share": "all-reduce share"}
                      ).sort_values(["machine", "model", "device", "threads", "scaling", "ranks"])


def accelerator_epochs(frame: pd.DataFrame) -> pd.DataFrame:
    """Accelerator training epochs (resident loader, fp32): what the study quotes for Q7
    when the machine it runs on has none."""
    f = frame[(frame["operation"] == "train") & (frame["device"] != "cpu")
              & (frame["loader"] == "resident") & (frame["precision"] == "fp32")]
    return f[["machine", "model", "device", "batch_size", "variant", "median", "samples_per_second"]].rename(
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
    f = frame[frame["operation"].isin(["train", "infer", "ddp"])]
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
    return _md(shown)


def render_markdown(results: Results, baseline: str | None = None, plots: list[str] = ()) -> str:
    """The whole report.md."""
    f = results.frame
    parts = ["# mnist-bench report", "", "## Machines", "", _md(machine_table(results)), ""]
    over = sorted(set(f.loc[f["peak_over"], "machine"] + " " + f.loc[f["peak_over"], "case"]))
    note = (" Left blank where a case would exceed 100% of its probe, which cannot be: the probe "
            f"or the file's FLOP count is wrong there ({escape(', '.join(over))})." if over else "")
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
    parts += ["## Accelerator over CPU (Q7)", "", _md(speed) if len(speed) else
              "No file here holds both cpu and accelerator results for the same case.", ""]
    scaling = scaling_table(f)
    if len(scaling):
        parts += ["## Data-parallel scaling", "", "One epoch of every image across the ranks (DDP; gloo "
                  "on the cpu, nccl on cuda), the slowest rank's time. `strong`: the global batch fixed "
                  "and split across the ranks; `weak`: each rank's batch fixed. `efficiency`: images/s over "
                  "ranks x one rank's images/s (same batch and threads per rank); one rank with 2 threads "
                  "is there to show what two ranks cost against two threads. `all-reduce share`: steps x "
                  "one isolated all-reduce of the gradient over the epoch time, an upper bound of the "
                  "communication DDP could not hide behind the backward pass.", "",
                  _md(scaling.assign(**{"efficiency": scaling["efficiency"].map(_pct),
                                        "all-reduce share": scaling["all-reduce share"].map(_pct)})), ""]
    tta = tta_table(f)
    without = [m for m in results.machines if m not in set(tta["machine"])]
    parts += ["## Time to accuracy", "", _md(tta), ""]
    parts += [f"Not run on {escape(', '.join(without))}.", ""] if without and len(tta) else []
    matrix = machine_matrix(f, baseline)
    if len(matrix):
        base = baseline or f["machine"].iloc[0]
        parts += ["## Across machines", "", "Images per second per case, on the same workload (images "
                  f"per round), and each machine's throughput over {escape(base)}'s (>1: faster). A case one "
                  "machine did not run is marked `not run`; time to accuracy is compared above.", "",
                  _matrix_md(matrix, results), ""]
    parts += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    if results.problems or results.notes:
        parts += ["", "## Files and entries passed over", ""]
        parts += [f"- {escape(p)}" for p in [*results.problems, *results.notes]]
    return "\n".join(parts) + "\n"


def _pct(x) -> str:
    return "" if x is None or pd.isna(x) else f"{x:.1%}"


def flat_csv(results: Results) -> str:
    """The frame as CSV, without the raw per-round data."""
    return results.frame.drop(columns=["data"]).to_csv(index=False)


def _baseline(results: Results, baseline: str | None) -> str | None:
    """The machine the others are compared with: checked before anything is drawn."""
    if baseline is not None and baseline not in results.machines:
        raise ResultError(f"--baseline {baseline!r} is not among the machines: {', '.join(results.machines)}")
    return baseline


def write_report(results: Results, out: Path, baseline: str | None = None, force: bool = False) -> list[Path]:
    """report.md, results.csv and the plots into `out`, all or none; returns the paths written.

    Refuses, before drawing anything, an `out` that cannot be written or that holds a
    report already (unless `force`); never writes through a symlink planted there.
    """
    from . import plots
    from .files import check_writable, write_files
    baseline = _baseline(results, baseline)
    inputs = {Path(p).resolve() for p in results.frame["file"].unique()}
    clash = [n for n in FILES if (out / n).resolve() in inputs]
    if clash:
        raise ResultError(f"{out / clash[0]} is one of the input files; choose another --out")
    check_writable(out, list(FILES), force)
    matrix = machine_matrix(results.frame, baseline)
    base = baseline or (results.frame["machine"].iloc[0] if len(results.frame) else None)
    drawn = {"throughput.png": plots.throughput_vs_batch(results.frame),
             "scaling.png": plots.scaling(scaling_table(results.frame)),
             "training.png": plots.training_bars(results.frame),
             "loaders.png": plots.loader_bars(results.frame),
             "machines.png": plots.machine_bars(matrix, base) if len(matrix) else None}
    contents = {out / name: plots.png(fig) for name, fig in drawn.items() if fig is not None}
    names = [p.name for p in contents]
    contents[out / "results.csv"] = flat_csv(results).encode()
    contents[out / "report.md"] = render_markdown(results, baseline, names).encode()
    write_files(contents)
    return [out / "report.md", out / "results.csv", *(out / n for n in names)]
