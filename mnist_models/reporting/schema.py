"""The result file's format: what a case entry holds, the format version, one upgrade that
brings every older shape to the current one, and the checks an entry must pass.

    doc, dropped = read_result("results/epyc-2core.json")   # upgraded, checked entries only
    facts, notes = read_machine_facts(doc, path)

What each field holds is declared once, in fields.py. A result file is pytest-benchmark's
JSON; mnist-bench's own fields are each entry's
`extra_info`, the machine's facts in `machine_info.mnist_bench` (whose `format` says which
shape the file is in) and, at the top level, the run's own facts and its matmul probe in
`mnist_bench` (format 3 on: kept out of machine_info, which pytest-benchmark compares between
runs). Format 1 (no `format` field): files made before it was recorded, the committed ones
among them; format 2 kept the run's facts in machine_info; pytest-benchmark autosave files
leave `stats.data` out. Everything after read_result knows FORMAT alone. No torch here.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from ..errors import UsageError
from ..machine.cpu import SHOWN_FLAGS, vector_isa
from ..machine.devices import native_bf16
from .fields import ENTRY, FORMAT, KEY, KINDS, OPERATIONS, RUN_FACTS, SHORTEST, _is_number

BF16_WEIGHTS = "bfloat16 weights"  # extra_info.dtype of inference over bf16 weights (no autocast)
HARDWARE = (
    "cpu_model",
    "cpu_family",
    "cpu_model_number",
    "logical_cores",
    "accelerator",
    "accelerator_name",
)  # the machine facts that tell two machines apart
UNRECORDED = {
    "eval_every": 1.0,
    "eval_from": None,
    "cycle_epochs": None,
    "label_smoothing": 0.0,
    "dropout": None,
    "seed": 0,
}  # what a recipe ran where files made before a field was recorded lack it
SHOWN_PROBLEMS = 20  # per file; the rest are counted
LEGACY_MODELS = Path(__file__).parent / "reference" / "models-format3.json"  # the layers files before format 4 ran
RENAMED_LOADERS = {"seed": "notebook"}  # format 4 named the notebook's loader for what it is


class ResultError(UsageError):
    """A result file that cannot be used, named with what is wrong."""


def upgrade(doc: dict) -> dict:
    """The document in FORMAT, whatever format it was written in (in place; returned).

    Format 4's `run --score` timed one round a case each pass (no `pass_rounds`).
    Format 3 called the notebook's loader `seed` (and its case ids end so), recorded no
    workload version (version 1: before versions) and no layers of the models (the ones
    those versions ran are LEGACY_MODELS). Format 2 kept the run's facts (quick, rounds,
    partial, the probe) in machine_info.
    Format 1 differs besides in: GPU facts named gpu_*; no CPU flags of our own (pytest-benchmark's
    py-cpuinfo block has them); cases without `native`, `device_peak_memory_mb` (once
    `cuda_peak_memory_mb`), `flops_per_sample` (a training step then counted as 3x the
    forward pass: `flops_3x`); autosave files without `stats.data`.
    """
    info = as_object(doc.get("machine_info"))
    facts = info.get("mnist_bench")
    version = facts.get("format", 1) if isinstance(facts, dict) else FORMAT
    if isinstance(facts, dict) and version < 2:
        _upgrade_facts(facts, as_object(info.get("cpu")))
    if isinstance(facts, dict) and version < 3:  # the run's facts move out of machine_info
        run = doc.setdefault("mnist_bench", {}) if isinstance(doc.get("mnist_bench", {}), dict) else {}
        for key in RUN_FACTS:
            if key in facts:
                run.setdefault(key, facts.pop(key))
    cpu_native = facts.get("cpu_bf16_native") if isinstance(facts, dict) else None
    ours = [b for b in doc["benchmarks"] if isinstance(b, dict) and isinstance(b.get("extra_info"), dict)]
    for b in ours:
        e = b["extra_info"]
        if "cuda_peak_memory_mb" in e:
            e.setdefault("device_peak_memory_mb", e.pop("cuda_peak_memory_mb"))
        e.setdefault("flops_3x", e.get("operation") == "train" and e.get("flops_per_sample") is None)
        if "native" not in e:
            e["native"] = True if e.get("precision") == "fp32" else cpu_native if e.get("device") == "cpu" else None
        if isinstance(b.get("stats"), dict):
            b["stats"].setdefault("data", None)
    if isinstance(facts, dict) and version < 4:
        _upgrade_to_4(doc, ours)
    if isinstance(facts, dict):
        facts["format"] = FORMAT
    return doc


def _upgrade_to_4(doc: dict, ours: list[dict]) -> None:
    for b in ours:
        e = b["extra_info"]
        if e.get("loader") in RENAMED_LOADERS:
            old, new = e["loader"], RENAMED_LOADERS[e["loader"]]
            e["loader"] = new
            for key in ("param", "name"):  # train-mlp-cpu-bs64-seed -> ...-notebook
                if isinstance(b.get(key), str):
                    b[key] = b[key].replace(f"-{old}", f"-{new}")
        if isinstance(b.get("params"), dict) and b["params"].get("loader") in RENAMED_LOADERS:
            b["params"]["loader"] = RENAMED_LOADERS[b["params"]["loader"]]
    run = doc.get("mnist_bench")
    if isinstance(run, dict):
        run.setdefault("workload_version", 1)
        run.setdefault("models", legacy_models())


@functools.lru_cache(maxsize=1)
def _legacy_models() -> str:
    return LEGACY_MODELS.read_text()


def legacy_models() -> dict:
    """The layers of the models that files before format 4 ran (they recorded none)."""
    return json.loads(_legacy_models())


def _upgrade_facts(facts: dict, cpu: dict) -> None:
    for key in [k for k in facts if isinstance(k, str) and k.startswith("gpu_")]:
        facts.setdefault("accelerator_" + key.removeprefix("gpu_"), facts.pop(key))
    if "accelerator_compute_capability" in facts:
        facts.setdefault("accelerator_capability", facts.pop("accelerator_compute_capability"))
    if facts.get("accelerator_name") and "accelerator" not in facts:
        facts["accelerator"] = "cuda"  # format 1 knew no other
    flags = {f.lower() for f in cpu.get("flags", ()) if isinstance(f, str)}
    if "cpu_flags" not in facts and flags:
        facts.update(
            cpu_family=cpu.get("family"),
            cpu_model_number=cpu.get("model"),
            cpu_stepping=cpu.get("stepping"),
            cpu_flags=[f for f in SHOWN_FLAGS if f in flags],
            cpu_bf16_native=native_bf16("cpu", flags),
            cpu_capability=f"{vector_isa(flags)} (from flags)",
        )


def as_object(value) -> dict:
    """`value` where it is a JSON object (a dict), else an empty one."""
    return value if isinstance(value, dict) else {}


def _short(value) -> str:
    text = repr(value) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_seconds(v) -> bool:
    return _is_number(v) and v >= SHORTEST


TIMES = ("median", "min", "max", "q1", "q3")


def _entry_problem(b) -> str | None:
    """Why one `benchmarks` entry of ours cannot be used, or None."""
    info, stats = b.get("extra_info"), b.get("stats")
    if not isinstance(stats, dict):
        return f"stats is {_short(stats)}, expected an object with the round times"
    for field in ENTRY:
        value = info.get(field.name)
        if (field.required or value is not None) and not KINDS[field.kind][0](value):
            return f"extra_info.{field.name} is {_short(value)}, expected {KINDS[field.kind][1]}"
    if info["operation"] not in OPERATIONS:
        return (
            f"extra_info.operation is {_short(info['operation'])}, an operation this mnist-bench does not know "
            f"({', '.join(OPERATIONS)}); read it with the version that wrote it"
        )
    for name in TIMES:
        if not _is_seconds(stats.get(name)):
            return (
                f"stats.{name} is {_short(stats.get(name))}, expected a positive number of seconds, "
                f"{SHORTEST:g} or more"
            )
    data = stats.get("data")
    if data is None:  # an autosave file: the quartiles stand for the rounds
        return (
            None
            if KINDS["count"][0](stats.get("rounds"))
            else f"stats.rounds is {_short(stats.get('rounds'))}, expected a positive whole number"
        )
    if not (isinstance(data, list) and data and all(_is_seconds(x) for x in data)):
        return f"stats.data is {_short(data)}, expected a list of positive round times in seconds, {SHORTEST:g} or more"
    if stats.get("rounds") != len(data):
        return f"stats.rounds is {_short(stats.get('rounds'))} but stats.data holds {len(data)} rounds"
    return None


def recipe_name(info: dict) -> str:
    """A time-to-accuracy case's recipe in one line ("" for other cases): two runs of a case
    did the same work only where these agree."""
    recipe = info.get("recipe")
    if not isinstance(recipe, dict):
        return ""

    def shown(v) -> str:  # 1 and 1.0 alike
        return f"{v:g}" if _is_number(v) else str(v)

    r = {**UNRECORDED, **recipe}
    cycle = "" if r["cycle_epochs"] is None else f" over {shown(r['cycle_epochs'])} epochs"
    extras = [f"label smoothing {shown(r['label_smoothing'])}"] if r["label_smoothing"] else []
    extras += [] if r["dropout"] is None else [f"dropout {shown(r['dropout'])}"]
    first = "" if r["eval_from"] is None else f" from epoch {shown(r['eval_from'])}"
    extras += [f"seeds from {shown(r['seed'])}"] if r["seed"] else []
    return ", ".join(
        [
            f"{shown(r.get('epochs'))} epochs at bs{shown(r.get('batch_size'))}",
            f"lr {shown(r.get('lr'))}",
            f"{r.get('optimizer')} {r.get('schedule')}{cycle}",
            *extras,
            f"evaluated every {shown(r['eval_every'])} epochs{first}",
        ]
    )


def _ours(b) -> bool:
    info = b.get("extra_info") if isinstance(b, dict) else None
    return isinstance(info, dict) and "model" in info and "operation" in info


def _parse(path: Path) -> dict:
    try:
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise ResultError(f"{path}: cannot read it ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultError(
            f"{path}: not valid JSON, truncated or corrupt ({exc}); write it again with pytest bench --benchmark-json"
        ) from None
    except RecursionError:
        raise ResultError(f"{path}: JSON nested too deeply to be a result file") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ResultError(f"{path}: not a pytest-benchmark result (no 'benchmarks' list)")
    return doc


def read_result(path: str | Path) -> tuple[dict, list[str]]:
    """One pytest-benchmark JSON written by `pytest bench`, upgraded to FORMAT: the document
    with only its usable entries, and a line per entry left out; ResultError when nothing
    in it is usable."""
    path = Path(path)
    doc = _parse(path)
    facts = doc["machine_info"].get("mnist_bench") if isinstance(doc.get("machine_info"), dict) else None
    if isinstance(facts, dict) and "format" in facts and not KINDS["count"][0](facts["format"]):
        raise ResultError(
            f"{path}: machine_info.mnist_bench.format is {_short(facts['format'])}, expected a "
            "whole number; write the file again with pytest bench --benchmark-json"
        )
    doc = upgrade(doc)
    kept, problems, foreign = [], [], 0
    seen: dict[tuple | None, int] = {}  # an entry's key: its index
    for i, b in enumerate(doc["benchmarks"]):
        if not _ours(b):
            foreign += 1
            continue
        why = _entry_problem(b)
        key = None if why else tuple(b["extra_info"].get(k) for k in (*KEY, "samples"))  # one entry a case
        if key in seen:
            why = f"a second entry for {_short(b.get('param'))} (first: benchmarks[{seen[key]}])"
        if why:
            problems.append(f"{path}: benchmarks[{i}]: {why}; entry dropped")
            continue
        seen[key] = i
        kept.append(b)
    if foreign:
        problems.append(
            f"{path}: {foreign} entr{'y' if foreign == 1 else 'ies'} without mnist-bench fields "
            "(extra_info lacks model/operation: another suite's, or a case cut off by Ctrl-C) dropped"
        )
    if not kept:
        raise ResultError(
            f"{path}: no usable mnist-bench case"
            + (f" ({problems[0].split(': ', 1)[1]})" if problems else "")
            + "; pass files written by pytest bench --benchmark-json"
        )
    if len(problems) > SHOWN_PROBLEMS:
        problems = problems[:SHOWN_PROBLEMS] + [
            f"{path}: ... and {len(problems) - SHOWN_PROBLEMS} more entries dropped"
        ]
    return {**doc, "benchmarks": kept}, problems


def read_machine_facts(doc: dict, path: Path | str = "") -> tuple[dict, list[str]]:
    """An upgraded file's machine_info.mnist_bench, with what the report needs always there
    (label, quick, commit, date, positive peaks and bandwidths only), and the notes on what was ignored."""
    notes = []
    info = doc.get("machine_info")
    if not isinstance(info, dict):
        notes += (
            [f"{path}: machine_info is {_short(info)}, expected an object; machine facts ignored"]
            if info is not None
            else []
        )
        info = {}
    facts = info.get("mnist_bench")
    if not isinstance(facts, dict):
        notes.append(f"{path}: machine_info.mnist_bench is {_short(facts)}, expected an object; machine facts ignored")
        facts = {}
    run = as_object(doc.get("mnist_bench"))
    facts = {**facts, **{k: run[k] for k in RUN_FACTS if k in run}}
    for probed in ("peak_gflops", "bandwidth_gbs"):  # bandwidth: absent from files made before its probe
        values = facts.get(probed)
        good = (
            {k: v for k, v in values.items() if isinstance(k, str) and _is_seconds(v)}
            if isinstance(values, dict)
            else {}
        )
        if values is not None and good != values:
            notes.append(
                f"{path}: machine_info.mnist_bench.{probed} holds {_short(values)}; only positive numbers are used"
            )
        facts[probed] = good
    for name in HARDWARE:  # compared as they are: a plain value or nothing
        if not isinstance(facts.get(name), (str, int, float, bool, type(None))):
            notes.append(
                f"{path}: machine_info.mnist_bench.{name} is {_short(facts[name])}, expected a name or number; ignored"
            )
            facts[name] = None
    if not isinstance(facts.get("label"), str) or not facts["label"].strip():
        facts["label"] = Path(path).stem
    facts["quick"] = facts.get("quick") is True
    commit = doc.get("commit_info")
    facts["commit"] = str(commit.get("id", ""))[:7] or None if isinstance(commit, dict) else None
    facts["date"] = str(doc.get("datetime") or "")[:10] or None
    return facts, notes
