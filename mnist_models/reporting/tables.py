"""The report's tables, each a function of the results frame (or Results): what report.md
shows, with labels made here from the frame's categories. No torch here.

    train_table(load_results(paths).frame)
"""

from __future__ import annotations

import pandas as pd

from . import labels
from .results import Results
from .schema import ResultError

BF16_UNITS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16", "bf16": "Arm BF16"}  # cpu flag -> its name


def machine_table(results: Results) -> pd.DataFrame:
    """The facts that tell machines apart, a column per machine."""

    def join(items) -> str:
        return ", ".join(items) or "not recorded"

    def column(f: dict) -> dict[str, str]:
        cpu = f"{f.get('cpu_model', '?')}"
        if f.get("cpu_family") is not None:
            cpu += f" (family {f['cpu_family']}, model {f.get('cpu_model_number')}, stepping {f.get('cpu_stepping')})"
        units = [name for flag, name in BF16_UNITS.items() if flag in (f.get("cpu_flags") or [])]
        words: dict[object, str] = {
            True: f"native ({', '.join(units)})" if units else "native",
            False: "emulated (no AVX512-BF16, AMX or Arm BF16)",
        }
        bf16 = words.get(f.get("cpu_bf16_native"), "not recorded")
        accel = _accelerator(f)
        sizes = f.get("peak_probe_size") or {}
        peaks = [
            f"{k.replace('_', ' ')} {v:,.1f}" + (f" ({sizes[k]})" if k in sizes else "")
            for k, v in (f.get("peak_gflops") or {}).items()
        ]
        bandwidth = [f"{k} {v:,.1f}" for k, v in f.get("bandwidth_gbs", {}).items()]
        run = "quick" if f.get("quick") else "full"
        return {
            "CPU": cpu,
            "vector ISA (torch)": f.get("cpu_capability") or "not recorded",
            "bf16 on the CPU": bf16,
            "CPU flags": join(f.get("cpu_flags") or []),
            "cores": f"{f.get('physical_cores')} physical, {f.get('logical_cores')} logical; "
            f"{f.get('torch_threads')} torch threads",
            "caches (per core; L3 shared)": join(f"{k} {v}" for k, v in (f.get("cpu_caches") or {}).items()),
            "RAM": f"{f.get('ram_gb')} GB",
            "accelerator": accel,
            "software": f"torch {f.get('torch')}, Python {f.get('python', '?')}, {f.get('os', '?')}",
            "matmul peak GFLOP/s (size)": join(peaks),
            "triad bandwidth GB/s": ", ".join(bandwidth) or "not probed (the file's run made no bandwidth probe)",
            "run": f"{run}, {f.get('rounds')} rounds; {f.get('date') or '?'}, commit {f.get('commit') or '?'}",
        }

    table = pd.DataFrame({label: column(f) for label, f in results.machines.items()})
    return table.rename_axis("").reset_index()


def _accelerator(f: dict) -> str:
    """One line for a machine's accelerator, from its accelerator_* facts."""

    def get(key: str):
        return f.get(f"accelerator_{key}")

    name = get("name")
    if not name:
        return "none"
    kind = f.get("accelerator", "cuda")
    bf16 = {True: "native", False: "emulated or not checked"}.get(get("bf16_native"), "?")
    parts = [
        f"{get('count')}x {name} ({kind})",
        f"{get('memory_gb')} GB",
        f"capability {get('capability') or '?'}",
        f"{get('runtime') or ''} driver {get('driver') or '?'}".strip(),
        f"bf16 {bf16}",
    ]
    return ", ".join(parts)


def operation_table(frame: pd.DataFrame, operation: str, seconds: str, extra: list[str]) -> pd.DataFrame:
    """One operation's cases: time, throughput and share of the matmul peak (+ extra columns)."""
    t = frame[frame["operation"] == operation]
    t = t.assign(setup=labels.setup(t))
    out = t[
        [
            "machine",
            "model",
            "device",
            "batch_size",
            "setup",
            "median",
            "samples_per_second",
            "peak_fraction",
            "attainable_fraction",
            "bound_by",
            *extra,
        ]
    ]
    out = out.rename(
        columns={
            "median": seconds,
            "samples_per_second": "images/s",
            "peak_fraction": "of peak",
            "attainable_fraction": "of attainable",
            "bound_by": "bound by",
            "test_accuracy": "test acc",
            "batch_size": "batch",
        }
    )
    return out.sort_values(["machine", "model", "device", "batch", "setup"])


def train_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Training epoch time, throughput, accuracy and share of the matmul peak per case."""
    return operation_table(frame, "train", "epoch s", ["test_accuracy"])


def infer_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Inference pass time, throughput and share of the matmul peak per case."""
    return operation_table(frame, "infer", "pass s", [])


def speedup_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Accelerator-over-CPU speedup (cpu median / accelerator median) per machine, case and
    batch size, for each accelerator type (cuda, mps, xpu) a machine ran."""
    key = ["machine", "operation", "model", "loader", "variant", "precision", "batch_size", "samples"]
    wide = frame.pivot_table(index=key, columns="device", values="median", aggfunc="first")
    accels = [d for d in wide.columns if d != "cpu"]
    if "cpu" not in wide.columns or not accels:
        return pd.DataFrame()
    rows = [
        wide[["cpu", d]].dropna().set_axis(["cpu s", "accelerator s"], axis=1).assign(accelerator=d) for d in accels
    ]
    out = pd.concat(rows).reset_index()
    out["speedup"] = out["cpu s"] / out["accelerator s"]
    return out.rename(columns={"samples": "images/round"})


def scaling_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Data-parallel cases: images/s per world size, and the scaling efficiency recorded
    with them (schema.scaling_efficiencies: images/s over world size x one rank's images/s,
    same run, model, device, batch and threads)."""
    d = frame[frame["operation"] == "ddp"]
    if d.empty:
        return d
    out = d[
        [
            "machine",
            "model",
            "device",
            "scaling",
            "world_size",
            "threads_per_rank",
            "global_batch",
            "per_rank_batch",
            "median",
            "samples_per_second",
            "scaling_efficiency",
            "allreduce_share",
        ]
    ]
    return out.rename(
        columns={
            "world_size": "ranks",
            "threads_per_rank": "threads",
            "median": "epoch s",
            "global_batch": "global batch",
            "per_rank_batch": "per-rank batch",
            "samples_per_second": "images/s",
            "allreduce_share": "all-reduce share",
            "scaling_efficiency": "efficiency",
        }
    ).sort_values(["machine", "model", "device", "threads", "scaling", "ranks"])


def accelerator_epochs(frame: pd.DataFrame) -> pd.DataFrame:
    """Accelerator training epochs (resident loader, fp32): what the study quotes for Q7
    when the machine it runs on has none."""
    f = frame[
        (frame["operation"] == "train")
        & (frame["device"] != "cpu")
        & (frame["loader"] == "resident")
        & (frame["precision"] == "fp32")
    ]
    return f[["machine", "model", "device", "batch_size", "variant", "median", "samples_per_second"]].rename(
        columns={"median": "epoch s", "samples_per_second": "images/s"}
    )


def tta_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Seconds to the target per machine and recipe: the median, the extremes, and MLPerf's
    spread (of the rounds, the fastest and the slowest dropped and the rest averaged; blank
    where a seed missed the target)."""
    t = frame[frame["operation"] == "tta"]
    t = t.assign(
        setup=labels.setup(t),
        trimmed=[trimmed_mean(d) if r is not None and all(r) else None for d, r in zip(t["data"], t["reached"])],
    )
    return t[
        [
            "machine",
            "model",
            "device",
            "setup",
            "recipe",
            "target_accuracy",
            "median",
            "trimmed",
            "min",
            "max",
            "epochs_to_target",
            "reached",
        ]
    ].rename(
        columns={
            "median": "median s",
            "trimmed": "MLPerf mean s",
            "min": "best s",
            "max": "worst s",
            "target_accuracy": "target",
        }
    )


def trimmed_mean(rounds) -> float | None:
    """MLPerf's score over runs: the fastest and slowest dropped, the rest averaged (None under 3)."""
    rounds = sorted(rounds)
    return sum(rounds[1:-1]) / (len(rounds) - 2) if len(rounds) >= 3 else None


def compile_table(frame: pd.DataFrame) -> pd.DataFrame:
    """What torch.compile buys: each compiled case beside the same case's tuned eager run,
    with the compile the cold round paid."""
    cases = ["machine", "operation", "model", "device", "precision", "batch_size", "samples"]
    f = frame[frame["operation"].isin(["train", "infer"]) & frame["loader"].eq("resident")]
    compiled, eager = f[f["variant"] == "compiled"], f[f["variant"] == "tuned"]
    both = compiled.merge(eager[[*cases, "samples_per_second"]], on=cases, suffixes=("", "_eager"))
    both = both.assign(speedup=both["samples_per_second"] / both["samples_per_second_eager"])
    return both[
        [
            "machine",
            "operation",
            "model",
            "device",
            "precision",
            "batch_size",
            "samples_per_second_eager",
            "samples_per_second",
            "speedup",
            "compile_seconds",
        ]
    ].rename(
        columns={
            "batch_size": "batch",
            "samples_per_second_eager": "eager images/s",
            "samples_per_second": "compiled images/s",
            "compile_seconds": "compile s",
        }
    )


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
    wide = f.pivot_table(index=["case", "samples"], columns="machine", values="samples_per_second", aggfunc="first")
    wide = wide.reindex(columns=machines)
    ratios = wide.div(wide[base], axis=0).drop(columns=base).add_suffix(f" vs {base}")
    return pd.concat([wide.add_suffix(" images/s"), ratios], axis=1).reset_index()
