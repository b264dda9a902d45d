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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .drift import level, movement
from .fields import COLUMNS as FIGURES
from .fields import KEY, KEY_DEFAULTS, OPERATIONS
from .roofline import UncostedLayer, bound, layers_of
from .schema import BF16_WEIGHTS, ResultError, as_object, read_machine_facts, read_result, recipe_name

STATS = ["median", "mean", "min", "max", "stddev", "q1", "q3", "iqr", "rounds"]
DERIVED = ["scaling_efficiency", "peak_fraction", "peak_over", "attainable", "attainable_fraction", "bound_by"]
RUN = ["workload_version", "workload_fingerprint", "passes", "moved", "level", "node"]  # the run's, on each of its rows
COLUMNS = ["machine", "file", "case", *KEY, "recipe", *STATS, *FIGURES, "data", *DERIVED, *RUN, "commit", "run_at"]
NO_BANDWIDTH = "no bandwidth probe"  # bound_by of a file whose run made no bandwidth probe


@dataclass
class Results:
    """What load_results found: one row per case, the machines, and what it passed over."""

    frame: pd.DataFrame
    machines: dict[str, dict] = field(default_factory=dict)  # label -> machine facts
    problems: list[str] = field(default_factory=list)  # files and entries left out, one line each
    notes: list[str] = field(default_factory=list)  # facts ignored; the cases are still used


def _rows(doc: dict, machine: str, path: Path, facts: dict) -> list[dict]:
    peaks, models = facts["peak_gflops"], facts.get("models") or {}
    trajectory = as_object(facts.get("trajectory"))
    run = {
        "workload_version": facts.get("workload_version") or 1,
        "workload_fingerprint": facts.get("workload_fingerprint") or "",
        "passes": facts.get("passes") or 0,
        "moved": movement(trajectory.get("points")),
        "level": level(trajectory.get("points")),
        "node": (doc.get("machine_info") or {}).get("node") if isinstance(doc.get("machine_info"), dict) else None,
    }
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
            **{k: info.get(k) or default for k, default in KEY_DEFAULTS.items()},
            **{k: stats.get(k) for k in STATS},
            **{k: info.get(k) for k in FIGURES},
            "data": stats["data"] or [],
            "recipe": recipe_name(info),
            "workload": info.get("workload") or "",  # "": a file made before cases were hashed
            **run,
        }
        peak = peaks.get(f"{row['device']}_{row['precision']}")
        fraction = row["gflops"] / peak if peak and row["gflops"] else None
        # above 100% of the probe is impossible: the probe (or the FLOP count) is wrong there
        row["peak_fraction"] = fraction if fraction is not None and fraction <= 1 else None
        row["peak_over"] = fraction is not None and fraction > 1
        bandwidth, bf16_weights = facts["bandwidth_gbs"].get(row["device"]), info.get("dtype") == BF16_WEIGHTS
        row.update(_roofline(row, models.get(row["model"]), peak, bandwidth, bf16_weights))
        rows.append(row)
    for row, efficiency in zip([r for r in rows if r["operation"] == "ddp"], scaling_efficiencies(rows)):
        row["scaling_efficiency"] = efficiency
    return rows


def scaling_efficiencies(rows: list[dict]) -> list[float | None]:
    """Each data-parallel case's scaling efficiency, in the order of the ddp rows of `rows`
    (one file's): its images/s over world size x the images/s of one rank of the same family
    (model, device, batch, threads); None where the file has no one-rank case."""

    def family(row: dict) -> tuple:
        return row["model"], row["device"], row["batch_size"], row["threads_per_rank"]

    ddp = [r for r in rows if r["operation"] == "ddp"]
    one = {family(r): r["samples_per_second"] for r in ddp if r["world_size"] == 1}
    return [
        round(r["samples_per_second"] / (r["world_size"] * one[family(r)]), 4)
        if one.get(family(r)) and r["samples_per_second"]
        else None
        for r in ddp
    ]


def _roofline(row: dict, layers: list | None, peak: float | None, bandwidth: float | None, bf16_weights: bool) -> dict:
    """A case's attainable images/s, its share of it, and what bounds it, where its operation
    has a roofline (`bf16_weights`: the case ran over bf16 weights)."""
    none = {"attainable": None, "attainable_fraction": None, "bound_by": None}
    operation = OPERATIONS.get(row["operation"])
    if operation is None or operation.roofline is None or not row["batch_size"]:
        return none
    if not layers:
        return {**none, "bound_by": "no layers recorded"}
    if not peak or not bandwidth:
        return {**none, "bound_by": NO_BANDWIDTH if peak else "no matmul probe"}
    try:
        b = bound(
            layers_of(layers),
            operation.roofline,
            int(row["batch_size"]),
            row["precision"],
            peak,
            bandwidth,
            bf16_weights,
        )
    except UncostedLayer as exc:
        return {**none, "bound_by": str(exc)}
    speed = row["samples_per_second"]
    return {
        "attainable": b.images_per_second,
        "attainable_fraction": speed / b.images_per_second if speed else None,
        "bound_by": f"{b.layer} ({b.kind})",
    }


def load_results(paths: Iterable[str | Path], include_quick: bool = False) -> Results:
    """Every usable file into one frame; files and entries left out are listed in
    `problems`, ignored facts in `notes`; nothing raises on what a file holds.

    Quick runs (`--quick`: a few thousand images per round) are left out, and listed, when
    full runs are among the files, unless `include_quick`.
    """
    docs, problems, notes, read = [], [], [], set()
    contents: dict[str, str | Path] = {}  # a file's digest: the first path read with it
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
