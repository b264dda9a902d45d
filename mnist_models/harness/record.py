"""What a benchmark run's JSON records beyond pytest-benchmark's own: the machine's facts
(stable from run to run, so pytest-benchmark's --benchmark-compare sees one machine), the
run's facts and the matmul and bandwidth probes (at the document's top level,
`mnist_bench`), every case's axes as plain `params` (so `pytest-benchmark compare
--group-by param:model` works), the
scaling efficiencies, and the copy written after every case that survives a crash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from ..files import write_files
from ..machine.facts import build_machine_facts
from ..reporting.schema import FORMAT, scaling_efficiencies
from .cases import BenchOptions

_RUN = pytest.StashKey[dict]()  # the run's facts and probe, measured once per session
_PARTIAL = pytest.StashKey[dict]()
_BUSY = pytest.StashKey[dict]()  # the CPU times at the run's start
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
        from ..machine.probe import probe

        config.stash[_RUN] = {
            "format": FORMAT,
            "quick": opts.quick,
            "rounds": opts.rounds,
            **probe(opts.probe_plan(), say),
            **busy(config, say),
        }
    return config.stash[_RUN]


def start_clock(config) -> None:
    """How busy the machine is, measured from here to the run's end (busy())."""
    from ..machine.process import cpu_snapshot

    config.stash[_BUSY] = cpu_snapshot()


def busy(config, say: Callable[[str], None]) -> dict:
    """{"busy": load average, steal and others' CPU share since start_clock()}, said when
    the machine was not quiet."""
    if _BUSY not in config.stash:
        return {}
    from ..machine.process import busy_since, not_quiet

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
    ours = [b for b in output_json["benchmarks"] if "operation" in b.get("extra_info", {})]
    for b in ours:
        b["params"] = plain_params(b, opts.label)
    ddp = [b["extra_info"] for b in ours if b["extra_info"]["operation"] == "ddp"]
    for info, efficiency in zip(ddp, scaling_efficiencies(ddp)):
        info["scaling_efficiency"] = efficiency


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
    doc = config.hook.pytest_benchmark_generate_json(
        config=config, benchmarks=session.benchmarks, include_data=True, **cache
    )
    for b in doc["benchmarks"]:
        b["params"] = plain_params(b, opts.label)
    doc["mnist_bench"] = {"format": FORMAT, "quick": opts.quick, "rounds": opts.rounds, "partial": True}
    write_files({path.with_name(path.name + ".partial"): json.dumps(doc, default=str).encode()})


def drop_unstarted(session) -> list:
    """pytest-benchmark's list without a case stopped (Ctrl-C) before its first round,
    whose empty statistics would crash pytest-benchmark's own JSON writer."""
    session.benchmarks[:] = [b for b in session.benchmarks if b.stats.data]
    return session.benchmarks
