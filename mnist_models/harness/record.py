"""What a benchmark run's JSON records beyond pytest-benchmark's own: the machine's facts
(stable from run to run, so pytest-benchmark's --benchmark-compare sees one machine), the
run's facts, the workload's version and fingerprint, the models' layers and the matmul and
bandwidth probes (at the document's top level, `mnist_bench`), every case's axes as plain
`params` (so `pytest-benchmark compare --group-by param:model` works), and the copy written
after every case that survives a crash. Rounds timed outside pytest (ab, run --score) are
written in the same shape by document().
"""

from __future__ import annotations

import datetime
import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ..core.models import create_model, layer_table
from ..files import write_files
from ..machine.facts import build_machine_facts
from ..machine.probe import probe
from ..machine.process import busy_since, cpu_snapshot, not_quiet
from ..machine.sentinel import Trajectory
from ..reporting.drift import movement
from ..reporting.fields import FORMAT
from ..reporting.stats import stats_of
from .cases import BenchOptions
from .workload import VERSION, fingerprint

_RUN = pytest.StashKey[dict]()  # the run's facts and probe, measured once per session
_PARTIAL = pytest.StashKey[dict]()
_BUSY = pytest.StashKey[dict]()  # the CPU times at the run's start
_TRAJECTORY = pytest.StashKey[Trajectory]()  # the sentinel's speed before each case
AXES = (
    "operation",
    "model",
    "device",
    "batch_size",
    "precision",
    "loader",
    "variant",
    "world_size",
    "scaling",
    "threads_per_rank",
)


def machine_facts(opts: BenchOptions) -> dict:
    return build_machine_facts(opts.label, format=FORMAT)


def run_facts(config, opts: BenchOptions, say: Callable[[str], None]) -> dict:
    """The run's facts, the matmul probe of each precision it used on each device present,
    and each device's bandwidth probe."""
    if _RUN not in config.stash:
        config.stash[_RUN] = {
            **workload_facts(opts),
            "quick": opts.quick,
            "rounds": opts.rounds,
            **probe(opts.probe_plan(), say),
            **busy(config, say),
            **trajectory(config),
        }
        line = moved_line(config.stash[_RUN])
        if line:
            say(f"warning: {line}")
    return config.stash[_RUN]


def workload_facts(opts: BenchOptions) -> dict:
    """The format, the workload's version and fingerprint, and each model's layers as measured
    (the roofline's costs): what every result file records of the software it ran."""
    return {
        "format": FORMAT,
        "workload_version": VERSION,
        "workload_fingerprint": fingerprint(),
        "models": {name: layer_table(create_model(name)) for name in opts.models},
    }


def start_clock(config) -> None:
    """How busy the machine is, and how fast, measured from here to the run's end (busy(),
    mark_speed())."""
    config.stash[_BUSY] = cpu_snapshot()
    config.stash[_TRAJECTORY] = Trajectory()


def mark_speed(config) -> None:
    """The sentinel's speed now, before a case: the run's trajectory (machine/sentinel.py)."""
    if _TRAJECTORY in config.stash:
        config.stash[_TRAJECTORY].mark()


def trajectory(config) -> dict:
    """{"trajectory": the sentinel's marks} once the run marked any."""
    found = config.stash.get(_TRAJECTORY, None)
    if found is None or not found.points:
        return {}
    found.mark()  # and at the end
    return {"trajectory": found.record()}


MOVED = 0.05  # a run whose speed moved more than this is named on the console


def moved_line(facts: dict) -> str | None:
    """A warning when the machine's speed moved during the run more than MOVED."""
    moved = movement((facts.get("trajectory") or {}).get("points"))
    if moved is None or moved < math.log1p(MOVED):
        return None
    return (
        f"this machine's speed moved {math.expm1(moved):.0%} during the run (the sentinel timed between "
        "cases); its score's interval is widened by it, and a repeat run may read differently"
    )


def busy(config, say: Callable[[str], None]) -> dict:
    """{"busy": load average, steal and others' CPU share since start_clock()}, said when
    the machine was not quiet."""
    if _BUSY not in config.stash:
        return {}
    facts = busy_since(config.stash[_BUSY])
    line = not_quiet(facts)
    if line:
        say(f"warning: {line}")
    return {"busy": facts}


def plain_params(entry: dict, label: str) -> dict:
    """A case's axes as plain values, and the machine, for pytest-benchmark's grouping and CSV."""
    info = entry.get("extra_info", {})
    return {"machine": label, **{k: info[k] for k in AXES if k in info}}


def finish_json(config, output_json: dict, opts: BenchOptions, say: Callable[[str], None] = print) -> None:
    """Everything record.py adds, into the document pytest-benchmark is about to write."""
    output_json["mnist_bench"] = run_facts(config, opts, say)
    for b in output_json["benchmarks"]:
        if "operation" in b.get("extra_info", {}):
            b["params"] = plain_params(b, opts.label)


def write_partial(config, path: Path, opts: BenchOptions) -> None:
    """The cases finished so far, as pytest-benchmark would write them, to PATH.partial:
    what survives a crash or a kill that leaves pytest-benchmark no time to write PATH.
    No probe; `partial: true` says so."""
    session = getattr(config, "_benchmarksession", None)  # pytest-benchmark's own session
    if session is None or not drop_unstarted(session):
        return
    cache = config.stash.setdefault(_PARTIAL, {})
    if not cache:
        cache["machine_info"] = {"mnist_bench": machine_facts(opts)}
        cache["commit_info"] = config.hook.pytest_benchmark_generate_commit_info(config=config)
        cache["run"] = {**workload_facts(opts), "quick": opts.quick, "rounds": opts.rounds, "partial": True}
    run = cache["run"]
    doc = config.hook.pytest_benchmark_generate_json(
        config=config,
        benchmarks=session.benchmarks,
        include_data=True,
        machine_info=cache["machine_info"],
        commit_info=cache["commit_info"],
    )
    for b in doc["benchmarks"]:
        b["params"] = plain_params(b, opts.label)
    doc["mnist_bench"] = run
    write_files({path.with_name(path.name + ".partial"): json.dumps(doc, default=str).encode()})


def document(entries: list[dict], machine: dict, run: dict, commit: dict, tool: str) -> dict:
    """A result file of rounds timed outside pytest (`ab`, `run --score`), in the shape
    pytest-benchmark writes, each case's statistics its own (reporting.stats): every entry
    {"case", "group", "extra_info", "rounds"}; `run` the top level's mnist_bench facts."""
    benchmarks = []
    for entry in entries:
        case, info = entry["case"], entry["extra_info"]
        b = {
            "group": entry["group"],
            "name": f"test_case[{case}]",
            "fullname": f"{tool}::{case}",
            "param": case,
            "stats": stats_of(entry["rounds"]),
            "options": {},
            "extra_info": info,
        }
        benchmarks.append({**b, "params": plain_params(b, machine["label"])})
    return {
        "machine_info": {"mnist_bench": {**machine, "format": FORMAT}},
        "commit_info": commit,
        "benchmarks": benchmarks,
        "datetime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "version": tool,
        "mnist_bench": {"format": FORMAT, **run},
    }


def commit_info(folder: str | Path) -> dict:
    """The git commit of the checkout at `folder` and whether its tree is dirty ({} without git)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30
        )
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {"id": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())} if head.returncode == 0 else {}


def drop_unstarted(session) -> list:
    """pytest-benchmark's list without a case stopped (Ctrl-C) before its first round,
    whose empty statistics would crash pytest-benchmark's own JSON writer."""
    session.benchmarks[:] = [b for b in session.benchmarks if b.stats.data]
    return session.benchmarks
