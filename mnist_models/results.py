"""Result files -> one checked DataFrame: what `report` and `compare` read.

    from mnist_models.results import load_results
    results = load_results(["results/epyc-2core.json"])   # .frame, .machines, .problems

Each file is read once and every entry checked (required fields, types, finite positive
times, known operations); an entry that fails is dropped and named with its file and
index, a file with nothing usable is named, and nothing here raises on what a file holds.
No torch here.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .files import UsageError
from .hardware import SHOWN_FLAGS, cpu_native_bf16, vector_isa

KEY = ["model", "device", "operation", "loader", "variant", "precision", "batch_size", "world_size", "scaling",
       "threads_per_rank"]  # the last three: ddp cases' (1, "", 0 for the others)
MATCH = [*KEY, "samples"]  # a case and its workload (images per round): what is compared
OPERATIONS = ("train", "infer", "tta", "ddp")
STATS = ["median", "mean", "min", "max", "stddev", "q1", "q3", "iqr", "rounds"]
FIGURES = ["samples", "samples_per_second", "gflops", "flops_per_sample", "test_accuracy", "final_loss",
           "cold_seconds", "peak_rss_mb", "device_peak_memory_mb", "params", "macs_per_sample",
           "torch_threads", "harness_overhead_fraction", "epochs_to_target", "reached",
           "target_accuracy", "scaling_efficiency", "allreduce_share", "global_batch", "per_rank_batch"]
SHOWN_PROBLEMS = 20  # per file; the rest are counted


class ResultError(UsageError):
    """A result file that cannot be used, named with what is wrong."""


@dataclass
class Results:
    """What load_results found: one row per case, the machines, and what it passed over."""

    frame: pd.DataFrame
    machines: dict[str, dict] = field(default_factory=dict)  # label -> machine facts
    problems: list[str] = field(default_factory=list)  # files and entries left out, one line each
    notes: list[str] = field(default_factory=list)  # facts ignored; the cases are still used


def _short(value) -> str:
    text = repr(value) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# what a field must be: (test, what the message says it expected)
KINDS = {
    "name": (lambda v: isinstance(v, str) and 0 < len(v) <= 200, "a non-empty name"),
    "count": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**53,
              "a positive whole number"),
    "seconds": (lambda v: _is_number(v) and v > 0, "a positive number of seconds"),
    "number": (lambda v: v is None or _is_number(v), "a number"),
    "fraction": (lambda v: v is None or (_is_number(v) and 0 <= v <= 1), "a number from 0 to 1"),
    "bools": (lambda v: v is None or (isinstance(v, list) and all(isinstance(x, bool) for x in v)),
              "a list of true/false"),
    "counts": (lambda v: v is None or (isinstance(v, list) and all(KINDS["count"][0](x) for x in v)),
               "a list of positive whole numbers"),
    "flag": (lambda v: v is None or isinstance(v, bool), "true or false"),
}
REQUIRED = {"model": "name", "device": "name", "operation": "name", "batch_size": "count",
            "loader": "name", "variant": "name", "precision": "name", "samples": "count"}
OPTIONAL = {"samples_per_second": "number", "gflops": "number", "flops_per_sample": "number",
            "test_accuracy": "fraction", "final_loss": "number", "cold_seconds": "number",
            "peak_rss_mb": "number", "device_peak_memory_mb": "number", "cuda_peak_memory_mb": "number",
            "params": "number",
            "macs_per_sample": "number", "torch_threads": "number", "harness_overhead_fraction": "number",
            "target_accuracy": "fraction", "epochs_to_target": "counts", "reached": "bools",
            "native": "flag", "world_size": "number", "scaling_efficiency": "number",
            "allreduce_share": "fraction", "threads_per_rank": "number", "global_batch": "number",
            "per_rank_batch": "number"}
TIMES = ("median", "min", "max", "q1", "q3")


def _entry_problem(b) -> str | None:
    """Why one `benchmarks` entry of ours cannot be used, or None."""
    info, stats = b.get("extra_info"), b.get("stats")
    if not isinstance(stats, dict):
        return f"stats is {_short(stats)}, expected an object with the round times"
    for name, kind in [*REQUIRED.items(), *OPTIONAL.items()]:
        value = info.get(name)
        if (name in REQUIRED or value is not None) and not KINDS[kind][0](value):
            return f"extra_info.{name} is {_short(value)}, expected {KINDS[kind][1]}"
    if info["operation"] not in OPERATIONS:
        return f"extra_info.operation is {_short(info['operation'])}, expected one of {', '.join(OPERATIONS)}"
    for name in TIMES:
        if not KINDS["seconds"][0](stats.get(name)):
            return f"stats.{name} is {_short(stats.get(name))}, expected a positive number of seconds"
    data = stats.get("data")
    if not (isinstance(data, list) and data and all(KINDS["seconds"][0](x) for x in data)):
        return f"stats.data is {_short(data)}, expected a list of positive round times in seconds"
    if stats.get("rounds") != len(data):
        return f"stats.rounds is {_short(stats.get('rounds'))} but stats.data holds {len(data)} rounds"
    return None


def _ours(b) -> bool:
    info = b.get("extra_info") if isinstance(b, dict) else None
    return isinstance(info, dict) and "model" in info and "operation" in info


def read_result(path: str | Path) -> tuple[dict, list[str]]:
    """One pytest-benchmark JSON written by `pytest bench`: the document with only its usable
    entries, and a line per entry left out; ResultError when nothing in it is usable."""
    path = Path(path)
    try:
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise ResultError(f"{path}: cannot read it ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultError(f"{path}: not valid JSON, truncated or corrupt ({exc}); "
                          "write it again with pytest bench --benchmark-json") from None
    except RecursionError:
        raise ResultError(f"{path}: JSON nested too deeply to be a result file") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ResultError(f"{path}: not a pytest-benchmark result (no 'benchmarks' list)")
    kept, problems, seen, foreign = [], [], {}, 0
    for i, b in enumerate(doc["benchmarks"]):
        if not _ours(b):
            foreign += 1
            continue
        why = _entry_problem(b)
        key = None if why else tuple(b["extra_info"].get(k) for k in MATCH)
        if key in seen:
            why = f"a second entry for {_short(b.get('param'))} (first: benchmarks[{seen[key]}])"
        if why:
            problems.append(f"{path}: benchmarks[{i}]: {why}; entry dropped")
            continue
        seen[key] = i
        kept.append(b)
    if foreign:
        problems.append(f"{path}: {foreign} entr{'y' if foreign == 1 else 'ies'} without mnist-bench fields "
                        "(extra_info lacks model/operation: another suite's, or a case cut off by Ctrl-C) dropped")
    if not kept:
        raise ResultError(f"{path}: no usable mnist-bench case"
                          + (f" ({problems[0].split(': ', 1)[1]})" if problems else "")
                          + "; pass files written by pytest bench --benchmark-json")
    if len(problems) > SHOWN_PROBLEMS:
        problems = problems[:SHOWN_PROBLEMS] + [f"{path}: ... and {len(problems) - SHOWN_PROBLEMS} "
                                                "more entries dropped"]
    return {**doc, "benchmarks": kept}, problems


def machine_facts(doc: dict, path: Path | str = "") -> tuple[dict, list[str]]:
    """A file's machine_info.mnist_bench, completed from pytest-benchmark's own machine_info
    (py-cpuinfo's flags, family, model, stepping) where the file predates those fields,
    and the notes on what had to be ignored."""
    notes = []
    info = doc.get("machine_info")
    if not isinstance(info, dict):
        notes += [f"{path}: machine_info is {_short(info)}, expected an object; machine facts ignored"] \
            if info is not None else []
        info = {}
    facts = info.get("mnist_bench")
    if not isinstance(facts, dict):
        notes.append(f"{path}: machine_info.mnist_bench is {_short(facts)}, expected an object; "
                     "machine facts ignored")
        facts = {}
    facts, cpu = dict(facts), info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
    flags = {f.lower() for f in cpu.get("flags", ()) if isinstance(f, str)}
    if "cpu_flags" not in facts and flags:
        facts.update(cpu_family=cpu.get("family"), cpu_model_number=cpu.get("model"),
                     cpu_stepping=cpu.get("stepping"), cpu_flags=[f for f in SHOWN_FLAGS if f in flags],
                     cpu_bf16_native=cpu_native_bf16(flags),
                     cpu_capability=f"{vector_isa(flags)} (from flags)")
    peaks = facts.get("peak_gflops")
    good = {k: v for k, v in peaks.items() if isinstance(k, str) and _is_number(v) and v > 0} \
        if isinstance(peaks, dict) else {}
    if peaks is not None and good != peaks:
        notes.append(f"{path}: machine_info.mnist_bench.peak_gflops holds {_short(peaks)}; "
                     "only positive numbers are used")
    facts["peak_gflops"] = good
    if not isinstance(facts.get("label"), str) or not facts["label"].strip():
        facts["label"] = Path(path).stem
    facts["quick"] = facts.get("quick") is True
    commit = doc.get("commit_info")
    facts["commit"] = str(commit.get("id", ""))[:7] or None if isinstance(commit, dict) else None
    facts["date"] = str(doc.get("datetime") or "")[:10] or None
    return facts, notes


def _rows(doc: dict, machine: str, path: Path, facts: dict) -> list[dict]:
    peaks = facts["peak_gflops"]
    rows = []
    for b in doc["benchmarks"]:
        info, stats = b["extra_info"], b["stats"]
        row = {"machine": machine, "file": str(path), "case": str(b.get("param") or b.get("name")),
               **{k: info.get(k) for k in KEY}, **{k: stats.get(k) for k in STATS},
               "world_size": info.get("world_size") or 1, "scaling": info.get("scaling") or "",
               "threads_per_rank": info.get("threads_per_rank") or 0,
               **{k: info.get(k) for k in FIGURES}, "data": stats["data"]}
        row["device_peak_memory_mb"] = info.get("device_peak_memory_mb", info.get("cuda_peak_memory_mb"))
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


COLUMNS = ["machine", "file", "case", *KEY, *STATS, *FIGURES, "data", "native", "peak_fraction",
           "peak_over", "flops_3x"]


def load_results(paths: list[str | Path], include_quick: bool = False) -> Results:
    """Every usable file into one frame; files and entries left out are listed in
    `problems`, ignored facts in `notes`; nothing raises on what a file holds.

    Quick runs (`--quick`: a few thousand images per round) are left out, and listed, when
    full runs are among the files, unless `include_quick`.
    """
    docs, problems, notes = [], [], []
    for path in paths:
        try:
            doc, dropped = read_result(path)
        except ResultError as exc:
            problems.append(str(exc))
            continue
        facts, ignored = machine_facts(doc, path)
        docs.append((Path(path), doc, facts))
        problems += dropped
        notes += ignored
    if not include_quick and not all(f["quick"] for _, _, f in docs):
        problems += [f"{p}: a --quick run, left out beside full runs (pass --include-quick to "
                     "report it; its cases are compared only with runs of the same workload)"
                     for p, _, f in docs if f["quick"]]
        docs = [d for d in docs if not d[2]["quick"]]
    labels = [f["label"] for _, _, f in docs]
    machines, rows = {}, []
    for (path, doc, facts), label in zip(docs, labels):
        machine = label if labels.count(label) == 1 else f"{label} ({path.stem})"
        machines[machine] = facts
        rows += _rows(doc, machine, path, facts)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return Results(frame.assign(setup=_setup, workload=workload), machines, problems, notes)


def _setup(frame: pd.DataFrame) -> pd.Series:
    """A short label for the loop: 'resident', 'seed loader', 'plain loop', 'cuda graph',
    + ' bf16', + ' (emulated)' where the device has no bf16 instructions."""
    loop = np.select([frame["loader"] == "seed", frame["variant"] == "plain", frame["variant"] == "graphs"],
                     ["seed loader", "plain loop", "cuda graph"], "resident")
    emulated = np.where(frame["native"].eq(False), " (emulated)", "")
    return (pd.Series(loop, index=frame.index, dtype=object)
            + np.where(frame["precision"] == "bf16", " bf16", "") + emulated)


def workload(frame: pd.DataFrame) -> pd.Series:
    """What one round of a case processes, e.g. '60,000 images' (quick runs: '4,096 images')."""
    return frame["samples"].map(lambda n: f"{int(n):,} images", na_action="ignore").astype(object)
