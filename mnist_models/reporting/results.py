"""Result files -> one checked DataFrame: what `report`, `compare` and the study read.

    from mnist_models.reporting.results import load_results
    results = load_results(["results/epyc-2core.json"])   # .frame, .machines, .problems

Each file is read once (its copies under other names are named and passed over), upgraded
to the current format and every entry checked (schema.py); an entry that fails is dropped
and named with its file and index, a file with nothing usable is named, and nothing here
raises on what a file holds. The frame holds numbers and
categories only; labels are made where they are drawn (labels.py). No torch here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .roofline import LAYERS, bound
from .schema import BF16_WEIGHTS, KEY, ResultError, read_machine_facts, read_result, recipe_name

STATS = ["median", "mean", "min", "max", "stddev", "q1", "q3", "iqr", "rounds"]
FIGURES = [
    "samples",
    "samples_per_second",
    "gflops",
    "flops_per_sample",
    "test_accuracy",
    "final_loss",
    "cold_seconds",
    "compile_seconds",
    "peak_rss_mb",
    "device_peak_memory_mb",
    "params",
    "macs_per_sample",
    "torch_threads",
    "harness_overhead_fraction",
    "epochs_to_target",
    "reached",
    "target_accuracy",
    "scaling_efficiency",
    "allreduce_share",
    "global_batch",
    "per_rank_batch",
    "native",
    "compiled",
    "flops_3x",
    "instructions",
    "instructions_per_step",
    "instruction_steps",
]
COLUMNS = [
    "machine",
    "file",
    "case",
    *KEY,
    "recipe",
    *STATS,
    *FIGURES,
    "data",
    "peak_fraction",
    "peak_over",
    "attainable",
    "attainable_fraction",
    "bound_by",
    "commit",
    "run_at",
]
NO_BANDWIDTH = "no bandwidth probe"  # bound_by of a file whose run made no bandwidth probe


@dataclass
class Results:
    """What load_results found: one row per case, the machines, and what it passed over."""

    frame: pd.DataFrame
    machines: dict[str, dict] = field(default_factory=dict)  # label -> machine facts
    problems: list[str] = field(default_factory=list)  # files and entries left out, one line each
    notes: list[str] = field(default_factory=list)  # facts ignored; the cases are still used


def _rows(doc: dict, machine: str, path: Path, facts: dict) -> list[dict]:
    peaks = facts["peak_gflops"]
    rows = []
    for b in doc["benchmarks"]:
        info, stats = b["extra_info"], b["stats"]
        row = {
            "machine": machine,
            "file": str(path),
            "case": str(b.get("param") or b.get("name")),
            "commit": facts["commit"],
            "run_at": str(doc.get("datetime") or ""),
            **{k: info.get(k) for k in KEY},
            **{k: stats.get(k) for k in STATS},
            "world_size": info.get("world_size") or 1,
            "scaling": info.get("scaling") or "",
            "threads_per_rank": info.get("threads_per_rank") or 0,
            **{k: info.get(k) for k in FIGURES},
            "data": stats["data"] or [],
            "recipe": recipe_name(info),
        }
        peak = peaks.get(f"{row['device']}_{row['precision']}")
        fraction = row["gflops"] / peak if peak and row["gflops"] else None
        # above 100% of the probe is impossible: the probe (or the FLOP count) is wrong there
        row["peak_fraction"] = fraction if fraction is not None and fraction <= 1 else None
        row["peak_over"] = fraction is not None and fraction > 1
        row.update(_roofline(row, peak, facts["bandwidth_gbs"].get(row["device"]), info.get("dtype") == BF16_WEIGHTS))
        rows.append(row)
    return rows


def _roofline(row: dict, peak: float | None, bandwidth: float | None, bf16_weights: bool) -> dict:
    """A training or inference case's attainable images/s, its share of it, and what bounds it
    (`bf16_weights`: the case ran over bf16 weights)."""
    if row["operation"] not in ("train", "infer") or row["model"] not in LAYERS or not row["batch_size"]:
        return {"attainable": None, "attainable_fraction": None, "bound_by": None}
    if not peak or not bandwidth:
        return {
            "attainable": None,
            "attainable_fraction": None,
            "bound_by": NO_BANDWIDTH if peak else "no matmul probe",
        }
    b = bound(row["model"], row["operation"], int(row["batch_size"]), row["precision"], peak, bandwidth, bf16_weights)
    speed = row["samples_per_second"]
    return {
        "attainable": b.images_per_second,
        "attainable_fraction": speed / b.images_per_second if speed else None,
        "bound_by": f"{b.layer} ({b.kind})",
    }


def load_results(paths: list[str | Path], include_quick: bool = False) -> Results:
    """Every usable file into one frame; files and entries left out are listed in
    `problems`, ignored facts in `notes`; nothing raises on what a file holds.

    Quick runs (`--quick`: a few thousand images per round) are left out, and listed, when
    full runs are among the files, unless `include_quick`.
    """
    docs, problems, notes, read, contents = [], [], [], set(), {}
    for path in paths:
        if Path(path).resolve() in read:  # its rounds counted twice would be pooled as two runs
            problems.append(f"{path}: given twice; read once")
            continue
        read.add(Path(path).resolve())
        digest = _digest(path)
        if digest in contents:  # a copy under another name: the same rounds, not another run
            problems.append(f"{path}: the same content as {contents[digest]}, a copy; read once")
            continue
        if digest is not None:
            contents[digest] = path
        try:
            doc, dropped = read_result(path)
        except ResultError as exc:
            problems.append(str(exc))
            continue
        facts, ignored = read_machine_facts(doc, path)
        docs.append((Path(path), doc, facts))
        problems += dropped
        notes += ignored
    if not include_quick and not all(f["quick"] for _, _, f in docs):
        problems += [
            f"{p}: a --quick run, left out beside full runs (pass --include-quick to "
            "include it; its cases are compared only with runs of the same workload)"
            for p, _, f in docs
            if f["quick"]
        ]
        docs = [d for d in docs if not d[2]["quick"]]
    machines, rows = {}, []
    for path, doc, facts in docs:
        machine = _machine_name(path, facts["label"], docs)
        machines[machine] = facts
        rows += _rows(doc, machine, path, facts)
    return Results(pd.DataFrame(rows, columns=COLUMNS), machines, problems, notes)


def _digest(path: str | Path) -> str | None:
    """The file's content hash (None where it cannot be read: read_result says why)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _machine_name(path: Path, label: str, docs: list) -> str:
    """The label, where one file has it; else the label and the file's stem, or its path
    where two files of that label share a stem (a result file beside its frozen copy)."""
    paths = [p for p, _, f in docs if f["label"] == label]
    if len(paths) == 1:
        return label
    return f"{label} ({path.stem})" if [p.stem for p in paths].count(path.stem) == 1 else f"{label} ({path})"
