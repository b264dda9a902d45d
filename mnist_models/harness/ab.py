"""`mnist-bench ab BASE NEW`: two versions of the code, timed round by round in one run.

    python -m mnist_models ab ../main . --out runs/ab --json ab.json

Each side (a checkout, or an installed environment's folder or python) gets one long-lived
worker process that imports its own code and loads MNIST once (ab_worker.py). The driver
asks them for one round at a time, never both at once, in ABBA order per case (base then
new, then new then base, ...), so a drift in the machine's speed falls on both sides alike
and each pair of rounds is judged by its ratio (reporting/paired.py). Both workers run the
same number of threads. Then, where valgrind is installed, each side counts the
instructions of a few steps of the CPU cases under callgrind (instructions.py).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RunError, UsageError
from .cases import BenchOptions, Case, cases
from .workers import Side, Worker

# The CI set: training, which a change to the step slows, and inference beside it as the control.
CASES = (
    "train-mlp-cpu-bs64",
    "train-mlp-cpu-bs256",
    "train-cnn-cpu-bs64",
    "train-cnn-cpu-bs256",
    "infer-mlp-cpu-bs256",
    "infer-cnn-cpu-bs256",
)
FIRST_IMAGES = {"train": 1024, "infer": 2048}  # the round that sizes the rest (sizes())
COUNTED = ("train-mlp-cpu-bs64", "train-cnn-cpu-bs64", "infer-mlp-cpu-bs256", "infer-cnn-cpu-bs256")
HOURS = 24  # the clock's rounds of one run at most (pairs x cases x 2 sides x seconds): a day
MOST_WORKERS = 16  # processes a side; each loads torch and MNIST (~0.5 GB) and starts after the last


def known_cases() -> dict[str, Case]:
    """Every CPU train and infer case a side can time, fp32 and bf16, by id."""
    opts = BenchOptions(devices=("cpu",), precisions=("fp32", "bf16"), quick=True)
    return {c.id: c for op in ("train", "infer") for c in cases(opts, op)}


def sizes(cases: list[str], took: dict[str, float], images: dict[str, int], seconds: float) -> dict[str, int]:
    """Images per round for each case, so that a round lasts about `seconds` (whole batches;
    at most a split): `took` is the base side's seconds for a round of `images`."""
    known, out = known_cases(), {}
    for case in cases:
        batch = known[case].batch_size
        most = 60_000  # a split's images (inference passes over the test split again)
        n = images[known[case].operation] * seconds / max(took[case], 1e-6)
        out[case] = int(min(most, max(batch, round(n / batch) * batch)))
    return out


def abba(pairs: int) -> list[tuple[int, int]]:
    """The side order of each pair: (0, 1) base first, then (1, 0), alternating."""
    return [(0, 1) if i % 2 == 0 else (1, 0) for i in range(pairs)]


@dataclass
class Timed:
    """What the clock part measured: per side, each case's rounds, and the worker's entries."""

    rounds: list[dict[str, list[float]]] = field(default_factory=lambda: [{}, {}])
    finished: list[dict] = field(default_factory=list)  # per side: {"entries": [...], "machine": {...}}
    code: list[str] = field(default_factory=list)
    partial: bool = False  # stopped early: the rounds are the complete pairs of those timed


def time_sides(
    sides: tuple[Side, Side],
    cases: list[str],
    pairs: int,
    threads: int,
    root: str | None,
    images: dict,
    seconds: float,
    per_side: int = 1,
    progress: Callable[[str], None] = lambda line: None,
    timed: Timed | None = None,
) -> Timed:
    """Every case's pairs, case by case within each pair index, from `per_side` workers a side
    started one after another (so no start overlaps a round); pair i runs on workers
    (i // 2) % per_side, so each ABBA block stays on one pair of processes. Filled into
    `timed` as it goes; stopped (Ctrl-C, SIGTERM), it holds the pairs that finished (_stopped)."""
    timed = timed if timed is not None else Timed()
    timed.rounds = [{c: [] for c in cases}, {c: [] for c in cases}]
    workers: list[list[Worker]] = [[], []]
    try:
        for k in range(per_side):
            for s, side in enumerate(sides):
                progress(f"starting the {side.name} side ({side.path}), worker {k + 1}/{per_side}")
                workers[s].append(Worker(side, threads))
                code = workers[s][-1].ask(
                    op="start", cases=cases, threads=threads, label=side.name, root=root, images=images
                )["code"]
                timed.code += [code] if k == 0 else []
        _distinct(sides, timed.code)  # before any round is spent on it
        first = workers[0][0]
        sized = sizes(cases, {c: first.ask(op="round", case=c)["seconds"] for c in cases}, images, seconds)
        for w in workers[0] + workers[1]:
            w.ask(op="size", images=sized)
        for i, order in enumerate(abba(pairs)):
            k = (i // 2) % per_side
            for case in cases:
                for s in order:
                    timed.rounds[s][case].append(workers[s][k].ask(op="round", case=case)["seconds"])
            progress(f"pair {i + 1}/{pairs} timed")
        timed.finished = [w[0].ask(op="finish", rounds=timed.rounds[s]) for s, w in enumerate(workers)]
    except KeyboardInterrupt:
        _stopped(timed, workers)
        raise
    finally:
        for w in workers[0] + workers[1]:
            w.close()
    return timed


def _stopped(timed: Timed, workers: list[list[Worker]]) -> None:
    """After a stop during the rounds: each case's complete pairs, finished by each side's
    first worker (the entries a result file needs), so that they can be kept. Nothing where
    no pair was complete or a side cannot answer."""
    if timed.finished:
        return
    done = {c: min(len(timed.rounds[0][c]), len(timed.rounds[1][c])) for c in timed.rounds[0]}
    kept = [{c: rounds[c][: done[c]] for c in rounds if done[c]} for rounds in timed.rounds]
    if not kept[0] or not all(workers):
        return
    try:
        for w in workers[0] + workers[1]:
            w.drain()
        timed.finished = [w[0].ask(op="finish", rounds=kept[s]) for s, w in enumerate(workers)]
    except RunError:
        return
    timed.rounds, timed.partial = kept, True


def _distinct(sides: tuple[Side, Side], code: list[str]) -> None:
    """Refuse two sides at different paths that imported the same mnist_models."""
    if Path(sides[0].path).resolve() != Path(sides[1].path).resolve() and code[0] == code[1]:
        raise UsageError(
            f"both sides imported the same code ({code[0]}): the environment's installed "
            "mnist_models shadows a checkout; pass two checkouts, or two environments"
        )


@dataclass(frozen=True)
class AbOptions:
    base: str  # a checkout or an installed environment
    new: str
    cases: tuple[str, ...] = CASES  # timed on the clock
    counted: tuple[str, ...] | None = None  # counted in instructions where valgrind is installed
    #                                           (None: those of COUNTED that are timed)
    pairs: int = 40  # rounds per side and case, in ABBA pairs
    seconds: float = 0.15  # about how long one round lasts (its images are sized to it)
    threads: int = 1  # torch threads in both workers: one, so no thread waits on a busy vCPU
    workers: int = 2  # processes per side, taking turns by ABBA block: a process's own luck
    #                   (memory layout) becomes noise the interval sees, not a bias
    threshold: float = 0.02  # clock: slower when surely above this
    detect: float = 0.05  # clock: the change it promises to see; a case that could not is undecided
    instruction_threshold: float = 0.01  # instructions per step: slower above this
    instructions: bool = True  # count them where valgrind is installed
    label: str = ""  # machine label in both result files (default: hostname)
    root: str | None = None  # MNIST root (None: $MNIST_ROOT or ./datasets)


@dataclass
class AbResult:
    table: object  # reporting.paired's verdict frame, clock rows then instruction rows
    docs: list[dict]  # per side, a result document that compare and report read
    notes: list[str]  # what the run could not do or see, one line each
    busy: dict


@dataclass(frozen=True)
class Plan:
    """The options checked and resolved, before any side starts or any file is written."""

    opts: AbOptions
    sides: tuple[Side, Side]
    counted: list[str]  # the cases counted in instructions
    uncounted: tuple[str, ...] = ()  # cases of COUNTED left out: they compile here (COMPILED_NOTE)


# inductor builds kernels for the vector instructions /proc/cpuinfo lists, and callgrind's
# virtual cpu stops at AVX2: a compiled case dies of an illegal instruction under it
COMPILED_NOTE = "runs under torch.compile here, whose kernels callgrind cannot run"


def plan(opts: AbOptions) -> Plan:
    """Find both sides, check the options together and MNIST under the root: a UsageError
    names the first problem."""
    sides = (Side.find("base", opts.base), Side.find("new", opts.new))
    counted = [c for c in COUNTED if c in opts.cases] if opts.counted is None else list(opts.counted)
    unknown = [c for c in counted if c not in opts.cases]
    if unknown and opts.instructions:
        raise UsageError(f"--counted {', '.join(unknown)}: count only cases that are timed (--cases)")
    known = known_cases()
    compiled = tuple(c for c in counted if c in known and known[c].compiles) if opts.instructions else ()
    if compiled and opts.counted is not None:
        raise UsageError(f"--counted {', '.join(compiled)}: {COMPILED_NOTE}; count cases that run eager")
    if opts.detect <= opts.threshold:
        raise UsageError(
            f"--detect {opts.detect:.1%} must be above --threshold {opts.threshold:.1%}: a case is "
            "slower only when surely above the threshold, so no smaller change can be seen"
        )
    _bounded(opts)
    from ..core.data import ensure_mnist

    ensure_mnist(opts.root)  # here, a usage error; inside a side's worker, it would read as that side failing
    return Plan(opts, sides, [c for c in counted if c not in compiled], compiled)


def _bounded(opts: AbOptions) -> None:
    """UsageError for a number beyond what one run can do: rounds past HOURS of clock time,
    more threads than the CPUs this process may use, more than MOST_WORKERS workers a side."""
    per_pair = len(opts.cases) * 2 * opts.seconds  # seconds of rounds a pair takes
    if opts.pairs * per_pair > HOURS * 3600:
        raise UsageError(
            f"--pairs {opts.pairs:,} would be about {opts.pairs * per_pair / 3600:,.0f} hours of rounds "
            f"({len(opts.cases)} cases x 2 sides x --seconds {opts.seconds:g}), over ab's {HOURS} hours; "
            f"pass at most {int(HOURS * 3600 / per_pair):,} pairs"
        )
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if opts.threads > cpus:
        raise UsageError(
            f"--threads {opts.threads:,} is more than the {cpus} CPUs this process may use, whose "
            f"threads would wait on each other; pass at most {cpus}"
        )
    if opts.workers > MOST_WORKERS:
        raise UsageError(
            f"--workers {opts.workers:,}: at most {MOST_WORKERS} a side (each loads torch and MNIST, "
            "one after another, before the first round)"
        )


def run_ab(checked: Plan, progress: Callable[[str], None] = lambda line: None) -> AbResult:
    """Time both sides on the clock, then count their instructions; judge every case."""
    import pandas as pd

    from ..machine.process import busy_since, cpu_snapshot, not_quiet
    from ..reporting.paired import judge_counts, judge_pairs

    opts, sides, counted = checked.opts, checked.sides, checked.counted
    notes, before, timed = [], cpu_snapshot(), Timed()
    with _kept_on_stop(sides, timed, opts, before):
        time_sides(
            sides,
            list(opts.cases),
            opts.pairs,
            opts.threads,
            opts.root,
            FIRST_IMAGES,
            opts.seconds,
            opts.workers,
            progress,
            timed,
        )
    busy = busy_since(before)
    notes += [line for line in [not_quiet(busy)] if line]
    table = judge_pairs({c: (timed.rounds[0][c], timed.rounds[1][c]) for c in opts.cases}, opts.threshold, opts.detect)
    counts = [{}, {}]
    why = None if opts.instructions else "instruction counts not asked for (--no-instructions)"
    why = why or (None if counted else "no case to count (--counted is empty)")
    from .instructions import count_sides, unavailable

    why = why or unavailable()
    if not why:
        try:
            with _kept_on_stop(sides, timed, opts, before):
                counts = count_sides(sides, counted, opts.root, progress=progress)
        except RunError as exc:  # the clock's verdicts stand; the counts are absent, and why
            why, counts = f"no instruction counts: {exc}", [{}, {}]
    notes += [f"{case} is timed, not counted: it {COMPILED_NOTE}" for case in checked.uncounted]
    if why:
        notes.append(why)
    else:
        table = pd.concat(
            [
                table,
                judge_counts(
                    {c: (counts[0][c]["per_step"], counts[1][c]["per_step"]) for c in counted},
                    opts.instruction_threshold,
                ),
            ],
            ignore_index=True,
        )
    docs = [document(side, timed, s, counts[s], opts, busy) for s, side in enumerate(sides)]
    return AbResult(table, docs, notes, busy)


@contextlib.contextmanager
def _kept_on_stop(sides: tuple[Side, Side], timed: Timed, opts: AbOptions, before) -> Iterator[None]:
    """A stop (Ctrl-C, SIGTERM) inside: the rounds that finished ride on it as each side's
    result document, marked partial (`stop.docs`), for the caller to keep."""
    try:
        yield
    except KeyboardInterrupt as stop:
        if timed.finished:
            from ..machine.process import busy_since

            busy = busy_since(before)
            stop.docs = [document(side, timed, s, {}, opts, busy, partial=True) for s, side in enumerate(sides)]
        raise


def _stats(data: list[float]) -> dict:
    """pytest-benchmark's statistics of one case's rounds."""
    import statistics

    q1, _, q3 = statistics.quantiles(data, n=4) if len(data) > 1 else (data[0], 0, data[0])
    mean = statistics.fmean(data)
    return {
        "min": min(data),
        "max": max(data),
        "mean": mean,
        "stddev": statistics.stdev(data) if len(data) > 1 else 0.0,
        "median": statistics.median(data),
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "rounds": len(data),
        "iterations": 1,
        "ops": 1 / mean,
        "total": sum(data),
        "data": data,
    }


def _commit(side: Side) -> dict:
    """The side's git commit, where it is a checkout with git at hand."""
    if not side.pythonpath:
        return {}
    try:
        head = subprocess.run(
            ["git", "-C", side.pythonpath, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30
        )
        dirty = subprocess.run(
            ["git", "-C", side.pythonpath, "status", "--porcelain"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {"id": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())} if head.returncode == 0 else {}


def document(
    side: Side, timed: Timed, s: int, counts: dict, opts: AbOptions, busy: dict, partial: bool = False
) -> dict:
    """One side's rounds as a result file of the suite's own shape (compare and report read it);
    `partial`: a stopped run's, holding the pairs that finished (`partial: true` says so)."""
    import datetime
    import socket

    from ..reporting.schema import FORMAT
    from .record import plain_params

    finished = timed.finished[s]
    machine = {**finished["machine"], "label": opts.label or socket.gethostname()}
    benchmarks = []
    for entry in finished["entries"]:
        case, info = entry["case"], dict(entry["extra_info"])
        if case in counts:
            info.update(
                instructions=counts[case]["instructions"],
                instructions_per_step=counts[case]["per_step"],
                instruction_steps=counts[case]["steps"],
            )
        b = {
            "group": entry["group"],
            "name": f"test_{info['operation']}[{case}]",
            "fullname": f"mnist-bench ab::{case}",
            "param": case,
            "stats": _stats(timed.rounds[s][case]),
            "options": {},
            "extra_info": info,
        }
        benchmarks.append({**b, "params": plain_params(b, machine["label"])})
    run = {
        "format": FORMAT,
        "quick": True,
        "rounds": max(map(len, timed.rounds[s].values())) if partial else opts.pairs,
        **({"partial": True} if partial else {}),
        "busy": busy,
        "ab": {
            "side": side.name,
            "path": side.path,
            "code": timed.code[s],
            "threads": opts.threads,
            "pairs": opts.pairs,
            "workers": opts.workers,
        },
    }
    return {
        "machine_info": {"mnist_bench": machine},
        "commit_info": _commit(side),
        "benchmarks": benchmarks,
        "datetime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "version": "mnist-bench ab",
        "mnist_bench": run,
    }
