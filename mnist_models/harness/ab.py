"""`mnist-bench ab BASE NEW`: two versions of the code, timed round by round in one run.

    python -m mnist_models ab ../main . --out runs/ab --json ab.json

Each side (a checkout, or an installed environment's folder or python) runs its own code in
worker processes that speak the side's ab contract (ab_side.py; ab_workers.py). The driver
asks for one round at a time, never two at once, in ABBA order per case (base then new,
then new then base, ...), so a drift in the machine's speed falls on both sides alike and
each pair of rounds is judged by its ratio (reporting/paired.py). The pairs are spread over
many short-lived processes a side, as pyperf spreads its values: each process fixes one
memory layout and allocator state, a bias that a long-lived process would carry into every
round; a block of pairs runs on a fresh pair of processes, and the verdict takes each
block as one unit, so that bias is noise the interval sees. Both sides run the same threads,
pinned to the same CPU. Then, where valgrind is installed, each side counts the
instructions of a few steps of the CPU cases under callgrind (instructions.py).
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RunError, UsageError
from .ab_workers import FIRST_IMAGES, Side, Worker
from .cases import BenchOptions, Case, cases
from .instructions import count_sides, unavailable

if TYPE_CHECKING:  # pandas only once a run is judged: cli start-up imports this module
    import pandas as pd

# The CI set: training, which a change to the step slows, and inference beside it as the control.
CASES = (
    "train-mlp-cpu-bs64",
    "train-mlp-cpu-bs256",
    "train-cnn-cpu-bs64",
    "train-cnn-cpu-bs256",
    "infer-mlp-cpu-bs256",
    "infer-cnn-cpu-bs256",
)
COUNTED = ("train-mlp-cpu-bs64", "train-cnn-cpu-bs64", "infer-mlp-cpu-bs256", "infer-cnn-cpu-bs256")


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


def starts(block: int) -> tuple[int, int]:
    """Which side's worker starts first in a block: base and new in turn, so that what the
    first-started process has over the second (or the second over the first) falls on
    both sides alike instead of on one, as it did when base always started first."""
    return (0, 1) if block % 2 == 0 else (1, 0)


def blocks(pairs: int, processes: int) -> list[int]:
    """The process block of each pair: `pairs` split over `processes` blocks as evenly as
    whole ABBA quads allow (an even count a block where it can be), in order."""
    per = [pairs // processes + (1 if b < pairs % processes else 0) for b in range(processes)]
    return [b for b, n in enumerate(per) for _ in range(n)]


@dataclass
class Timed:
    """What the clock part measured: per side, each case's rounds; each pair's block; the
    last block's workers' descriptions of what they timed."""

    rounds: list[dict[str, list[float]]] = field(default_factory=lambda: [{}, {}])
    blocks: list[int] = field(default_factory=list)  # per pair
    described: list[dict] = field(default_factory=list)  # per side: {"entries": [...], "machine": {...}}
    code: list[str] = field(default_factory=lambda: ["", ""])
    images: dict[str, int] = field(default_factory=dict)  # per case, a round's


def time_sides(checked: Plan, progress: Callable[[str], None] = lambda line: None, timed: Timed | None = None) -> Timed:
    """Size the rounds on a first base worker, then every block of pairs on a fresh pair of
    workers, case by case within each pair; the last block's workers describe the rounds.
    `timed` is filled as rounds finish, so a stop keeps what was timed."""
    opts, sides = checked.opts, checked.sides
    wanted = list(opts.cases)
    timed = timed if timed is not None else Timed()
    timed.rounds = [{c: [] for c in wanted}, {c: [] for c in wanted}]
    progress(f"sizing the rounds on the base side ({sides[0].path})")
    sizer = _worker(checked, 0)
    try:
        first = {c: FIRST_IMAGES[known_cases()[c].operation] for c in wanted}
        sizer.start(wanted, first, opts.root, opts.label)
        took = {c: sizer.round(c) for c in wanted}
    finally:
        sizer.close()
    timed.images = sizes(wanted, took, FIRST_IMAGES, opts.seconds)
    order, per_pair = abba(opts.pairs), blocks(opts.pairs, opts.workers)
    for block in range(opts.workers):
        workers: dict[int, Worker] = {}
        try:
            for s in starts(block):  # one after the other: no start overlaps a round
                workers[s] = _worker(checked, s)
                workers[s].start(wanted, timed.images, opts.root, opts.label)
                timed.code[s] = workers[s].code
            _distinct(sides, timed.code)  # before any round is spent on it
            for i in [i for i, b in enumerate(per_pair) if b == block]:
                for case in wanted:
                    for s in order[i]:
                        timed.rounds[s][case].append(workers[s].round(case))
                timed.blocks.append(block)
                progress(f"pair {i + 1}/{opts.pairs} timed (process pair {block + 1}/{opts.workers})")
            if block == opts.workers - 1:
                timed.described = [workers[s].describe(timed.rounds[s]) for s in range(2)]
        finally:
            for w in workers.values():
                w.close()
    return timed


def _worker(checked: Plan, s: int) -> Worker:
    return Worker(checked.sides[s], checked.opts.threads, contract=checked.contracts[s])


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
    pairs: int = 96  # rounds per side and case, in ABBA pairs
    seconds: float = 0.15  # about how long one round lasts (its images are sized to it)
    threads: int = 1  # torch threads in both workers: one, so no thread waits on a busy vCPU
    workers: int = 12  # processes per side, one fresh pair per block of pairs: a process's own
    #                    luck (memory layout) becomes noise the interval sees, not a bias
    threshold: float = 0.02  # clock: slower when surely above this
    detect: float = 0.05  # clock: the change it promises to see; a case that could not is undecided
    instruction_threshold: float = 0.01  # instructions per step: slower above this
    instructions: bool = True  # count them where valgrind is installed
    label: str = ""  # machine label in both result files (default: hostname)
    root: str | None = None  # MNIST root (None: $MNIST_ROOT or ./datasets)


@dataclass
class AbResult:
    table: pd.DataFrame  # reporting.paired's verdict frame, clock rows then instruction rows
    docs: list[dict]  # per side, a result document that compare and report read
    notes: list[str]  # what the run could not do or see, one line each
    busy: dict


@dataclass(frozen=True)
class Plan:
    """The options checked and resolved, before any side starts or any file is written."""

    opts: AbOptions
    sides: tuple[Side, Side]
    contracts: tuple[int, int]  # the ab contract each side speaks (0: its code predates the contract)
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
    from ..core.data import ensure_mnist  # noqa: PLC0415 (cli start-up imports this)

    ensure_mnist(opts.root)  # here, a usage error; inside a side's worker, it would read as that side failing
    _bounded(opts)
    if opts.workers > opts.pairs:
        raise UsageError(
            f"--workers {opts.workers} is more than --pairs {opts.pairs}: each process pair times at "
            "least one pair; lower --workers or raise --pairs"
        )
    contracts = (sides[0].contract(), sides[1].contract())
    return Plan(opts, sides, contracts, [c for c in counted if c not in compiled], compiled)


HOURS = 24  # the clock's rounds of one run at most (pairs x cases x 2 sides x seconds): a day
MOST_WORKERS = 64  # process pairs at most; each loads torch and MNIST, one after another


def _bounded(opts: AbOptions) -> None:
    """UsageError for a number beyond what one run can do: rounds past HOURS of clock time,
    more threads than the CPUs this process may use, more than MOST_WORKERS process pairs."""
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
            f"--workers {opts.workers:,}: at most {MOST_WORKERS} process pairs (each loads torch and MNIST, "
            "one after another)"
        )


def run_ab(checked: Plan, progress: Callable[[str], None] = lambda line: None) -> AbResult:
    """Time both sides on the clock, then count their instructions; judge every case."""
    import pandas as pd  # noqa: PLC0415 (cli start-up imports this)

    from ..machine.process import busy_since, cpu_snapshot, not_quiet  # noqa: PLC0415 (cli start-up imports this)
    from ..reporting.paired import judge_counts, judge_pairs  # noqa: PLC0415 (cli start-up imports this)

    opts, sides, counted = checked.opts, checked.sides, checked.counted
    notes, before, timed = [], cpu_snapshot(), Timed()
    with _kept_on_stop(sides, timed, opts, before):
        time_sides(checked, progress, timed)
    busy = busy_since(before)
    notes += [line for line in [not_quiet(busy)] if line]
    table = judge_pairs(
        {c: (timed.rounds[0][c], timed.rounds[1][c]) for c in opts.cases},
        opts.threshold,
        opts.detect,
        blocks=timed.blocks,
    )
    counts: list[dict] = [{}, {}]  # per side: each case's instructions
    why = None if opts.instructions else "instruction counts not asked for (--no-instructions)"
    why = why or (None if counted else "no case to count (--counted is empty)")
    why = why or unavailable()
    if not why:
        try:
            with _kept_on_stop(sides, timed, opts, before):
                counts = count_sides(sides, checked.contracts, counted, opts.root, progress=progress)
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
    docs = [side_document(side, timed, s, counts[s], opts, busy) for s, side in enumerate(sides)]
    return AbResult(table, docs, notes, busy)


@contextlib.contextmanager
def _kept_on_stop(sides: tuple[Side, Side], timed: Timed, opts: AbOptions, before: dict) -> Iterator[None]:
    """A stop (Ctrl-C, SIGTERM) inside: the pairs that finished ride on it as each side's result
    document, marked partial (`stop.docs`), for the caller to keep."""
    try:
        yield
    except KeyboardInterrupt as stop:
        kept = _complete_pairs(timed)
        if kept is not None:
            from ..machine.process import busy_since  # noqa: PLC0415 (cli start-up imports this)

            busy = busy_since(before)
            docs = [side_document(side, kept, s, {}, opts, busy, partial=True) for s, side in enumerate(sides)]
            stop.docs = docs  # type: ignore[attr-defined]  # an exception takes any attribute; cli/ab.py reads it
        raise


def _complete_pairs(timed: Timed) -> Timed | None:
    """What a stopped run keeps: each case's complete pairs (both sides timed), described by the
    workers where they did, else from the case alone; None where no pair finished."""
    done = {c: min(len(timed.rounds[0][c]), len(timed.rounds[1][c])) for c in timed.rounds[0]}
    if not any(done.values()):
        return None
    rounds = [{c: r[c][: done[c]] for c in r if done[c]} for r in timed.rounds]
    described = timed.described or [
        {"entries": [_entry(c, timed.images.get(c, 0), rounds[s][c]) for c in rounds[s]], "machine": {}}
        for s in range(2)
    ]
    described = [{**d, "entries": [e for e in d["entries"] if e["case"] in rounds[s]]} for s, d in enumerate(described)]
    return Timed(rounds=rounds, blocks=timed.blocks, described=described, code=timed.code, images=timed.images)


def _entry(case: str, images: int, rounds: list[float]) -> dict:
    """A case's entry from what the driver knows of it (a stop left no worker to describe it)."""
    c = known_cases()[case]
    median = statistics.median(rounds)
    info = {
        "model": c.model,
        "device": c.device,
        "operation": c.operation,
        "batch_size": c.batch_size,
        "loader": c.loader,
        "variant": c.variant,
        "precision": c.precision,
        "samples": images or c.batch_size,
        "samples_per_second": round((images or c.batch_size) / median, 1),
    }
    return {"case": case, "group": c.group, "extra_info": info}


def side_document(
    side: Side, timed: Timed, s: int, counts: dict, opts: AbOptions, busy: dict, partial: bool = False
) -> dict:
    """One side's rounds as a result file of the suite's own shape (compare and report read it);
    `partial`: a stopped run's, holding the pairs that finished (`partial: true` says so)."""
    from .record import commit_info, document  # noqa: PLC0415 (cli start-up imports this)

    entries = []
    for entry in timed.described[s]["entries"]:
        case, info = entry["case"], dict(entry["extra_info"])
        if case in counts:
            info.update(
                instructions=counts[case]["instructions"],
                instructions_per_step=counts[case]["per_step"],
                instruction_steps=counts[case]["steps"],
            )
        entries.append({"case": case, "group": entry["group"], "extra_info": info, "rounds": timed.rounds[s][case]})
    machine = {**timed.described[s]["machine"], "label": opts.label or socket.gethostname()}
    if not timed.described[s]["machine"]:  # a stop left no worker to say: this process's facts
        from ..machine.facts import build_machine_facts  # noqa: PLC0415 (cli start-up imports this)

        machine = build_machine_facts(machine["label"])
    run = {
        **timed.described[s].get("run", {}),  # the side's workload and models (a side with a contract)
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
    return document(entries, machine, run, commit_info(side.pythonpath) if side.pythonpath else {}, "mnist-bench ab")
