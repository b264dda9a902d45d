"""A score in about three minutes: `mnist-bench run --score LABEL` runs just the score's cases,
in interleaved passes (every case once a pass, in a new shuffled order), so the machine's
drift falls on every case alike and shows between passes; it adds passes until the score's
interval is at most GOAL wide on each side or its budget ends, and says which. The budget
is the whole command's (ScoreRun.started: the process's start); a case of short rounds runs
a block of them each pass (BLOCK; training, one: once()), their mean the pass's round.

    score_run(ScoreRun(label="laptop"), say=print)    # -> results/laptop.json, an ordinary result file

The interval (reporting/drift.pass_interval) takes each pass as one score: the passes'
mean, with half their range, the machine's own movement during the run. The sentinel is
timed between cases as in the full run, and the file records both.
"""

from __future__ import annotations

import math
import random
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..core.data import ensure_mnist
from ..errors import UsageError
from ..files import check_writable, json_bytes, one_writer, write_files
from ..machine.facts import build_machine_facts
from ..machine.probe import probe
from ..machine.process import busy_since, cpu_snapshot, not_quiet, tune_malloc
from ..machine.sentinel import Trajectory
from ..reporting.drift import pass_interval
from ..reporting.fields import OPERATIONS
from ..reporting.results import load_results
from ..reporting.score import in_set, scores
from .cases import PLANS, BenchOptions, Case, cases, skip_reason
from .operations import make_timer
from .record import commit_info, document, workload_facts
from .timer import CaseTimer, Data

GOAL = 0.03  # stop adding passes once the interval's half-width is at most this (3%)
BUDGET = 180.0  # seconds the whole command may take, by default
FEWEST = 3  # passes before an interval exists
AFTER = 6.0  # seconds kept for what follows the last pass: the models' test accuracy, the file, the score's line
SLACK = 1.1  # the next pass may take this much longer than the slowest so far
BLOCK = 0.5  # seconds a case takes at least, each pass: a round of a fraction of a second is noise


@dataclass(frozen=True)
class ScoreRun:
    label: str = field(default_factory=socket.gethostname)  # names results/LABEL.json
    budget: float = BUDGET  # seconds for the whole run
    goal: float = GOAL  # the interval's half-width that is enough
    root: str | None = None  # MNIST root (None: $MNIST_ROOT or ./datasets)
    force: bool = False  # replace an existing result file
    folder: Path = Path("results")
    devices: tuple[str, ...] = ("cpu", "accel")
    seed: int = 0  # the passes' shuffled orders
    started: float | None = None  # when the command began (time.time(); None: as score_run starts)

    @property
    def out(self) -> Path:
        return self.folder / f"{self.label}.json"


def score_cases(opts: BenchOptions) -> list[Case]:
    """The score's reference set on this machine: the resident tuned cases of every scored
    operation, at the operation's score_batches where a round is of images."""
    return [
        c
        for name, op in OPERATIONS.items()
        if op.scored and name in PLANS
        for c in cases(opts, name)
        if c.variant == "tuned" and c.loader == "resident" and in_set(name, c.batch_size)
    ]


def _pass_log(rounds: dict[str, list[float]], p: int) -> float:
    """A pass's log speed over every case (minus the mean log round time): its spread over
    the passes is the score's, whatever the reference."""
    return -sum(math.log(r[p]) for r in rounds.values()) / len(rounds)


@dataclass
class Passes:
    """What the passes timed: each case's rounds (one a pass), and why they stopped."""

    rounds: dict[str, list[float]]  # a case's round a pass: the mean of its block's rounds
    stopped: str = ""
    block: dict[str, int] = field(default_factory=dict)  # rounds a pass, per case, fixed in pass 1 (time_block)

    @property
    def count(self) -> int:
        return min(len(r) for r in self.rounds.values()) if self.rounds else 0

    def half_width(self) -> float:
        return pass_interval([_pass_log(self.rounds, p) for p in range(self.count)])[1]


def once(timer: CaseTimer) -> int | None:
    """A training case runs one round a pass (None: a block, as BLOCK decides): the bf16
    check compares fp32's and bf16's last rounds, which must be the same epoch of the same
    data order."""
    return 1 if timer.case.operation == "train" else None


def time_block(timer: CaseTimer, rounds: int | None) -> tuple[float, int]:
    """`rounds` rounds of a case back to back (None: as many as BLOCK seconds take, at least
    one): the mean round, and how many."""
    start, done = time.monotonic(), 0
    while done < (rounds or 1) or (rounds is None and time.monotonic() - start < BLOCK):
        timer.setup()
        timer.target()
        done += 1
    return statistics.fmean(timer.inner[-done:]), done


def run_passes(
    timers: dict[str, CaseTimer], run: ScoreRun, deadline: float, trajectory: Trajectory, say: Callable[[str], None]
) -> Passes:
    """Pass after pass of every case in a shuffled order, until the interval is narrow enough
    or the next pass (SLACK x the slowest so far, then AFTER) would end after the deadline. A
    case runs a block of rounds a pass (but training, once()), as many as BLOCK took in the
    first pass, as pytest-benchmark's iterations: its pass's round is their mean."""
    order, shuffle = list(timers), random.Random(run.seed)
    passes, took = Passes({case: [] for case in timers}), 0.0
    while True:
        start = time.monotonic()
        shuffle.shuffle(order)
        for i, case in enumerate(order):
            if i % 6 == 0:
                trajectory.mark()
            mean, passes.block[case] = time_block(timers[case], passes.block.get(case, once(timers[case])))
            passes.rounds[case].append(mean)
        took = max(took, time.monotonic() - start)
        half = passes.half_width()
        say(
            f"pass {passes.count}: {time.monotonic() - start:.0f} s"
            + (f", interval +-{math.expm1(half):.1%}" if math.isfinite(half) else "")
        )
        if passes.count >= FEWEST and half <= math.log1p(run.goal):
            passes.stopped = (
                f"the interval reached +-{math.expm1(half):.1%} (at most +-{run.goal:.0%}) in {passes.count} passes"
            )
            return passes
        if time.monotonic() + SLACK * took + AFTER > deadline and passes.count >= FEWEST:
            passes.stopped = (
                f"the budget of {run.budget:.0f} s ended after {passes.count} passes, the interval at "
                f"+-{math.expm1(half):.1%} (the goal +-{run.goal:.0%})"
            )
            return passes


def score_run(run: ScoreRun, say: Callable[[str], None] = print) -> Path:
    """The score's cases in passes into run.out; one run at a time per result file."""
    with one_writer(run.out, option="LABEL"):
        check_writable(run.folder, [run.out.name], run.force, option="LABEL (or --force)")
        return _score_run(run, say)


def keep_compiled_graphs(cases: int) -> None:
    """Interleaved, the compiled cases take turns: dynamo must keep every case's graphs (a
    batch and its last partial batch, fp32 and bf16), beyond its default of 8 a function,
    or each round would compile again."""
    import torch._dynamo  # noqa: PLC0415 (dynamo: seconds to load, only as a score run starts)

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 4 * cases)


def _score_run(run: ScoreRun, say: Callable[[str], None]) -> Path:
    # the budget is the whole command's, its start-up (python, torch) included
    began = time.monotonic() - (time.time() - run.started if run.started is not None else 0.0)
    ensure_mnist(run.root)
    tune_malloc()
    opts = BenchOptions(devices=run.devices, label=run.label, root=run.root, rounds=0)
    chosen = [c for c in score_cases(opts) if skip_reason(c, opts) is None]
    if not chosen:
        raise UsageError("none of the score's cases can run here; see `mnist-bench run` for why each skips")
    before, trajectory = cpu_snapshot(), Trajectory()
    say(f"mnist-bench: the score's {len(chosen)} cases in passes, for at most {run.budget:.0f} s")
    facts = probe(opts.probe_plan(), say)
    data = {d: Data.load(opts, d) for d in dict.fromkeys(c.device for c in chosen)}
    keep_compiled_graphs(len(chosen))
    timers = {c.id: make_timer(c, opts, data[c.device]) for c in chosen}
    try:
        cold = {case: timer.warm() for case, timer in timers.items()}
        say(f"mnist-bench: warmed every case in {time.monotonic() - began:.0f} s")
        passes = run_passes(timers, run, began + run.budget, trajectory, say)
        trajectory.mark()
        entries = []
        for case, timer in timers.items():
            timer.inner[:] = passes.rounds[case]
            info = {**timer.extra_info(None, cold[case]), "pass_rounds": passes.block[case]}
            entries.append({"case": case, "group": timer.case.group, "extra_info": info, "rounds": passes.rounds[case]})
            failed = timer.failure(info)
            if failed:
                say(f"mnist-bench: warning: {case}: {failed}")
    finally:
        for timer in timers.values():
            timer.close()
    busy = busy_since(before)
    for line in [not_quiet(busy)]:
        if line:
            say(f"mnist-bench: warning: {line}")
    run_facts = {
        **workload_facts(opts),
        "quick": False,
        "rounds": passes.count,
        "passes": passes.count,
        "stopped": passes.stopped,
        **facts,
        "busy": busy,
        "trajectory": trajectory.record(),
    }
    doc = document(
        entries, build_machine_facts(run.label), run_facts, commit_info(Path.cwd()), "mnist-bench run --score"
    )
    write_files({run.out: json_bytes(doc)})
    took = time.monotonic() - began
    say(f"mnist-bench: {passes.stopped}; wrote {run.out} in {took:.0f} s")
    if took > run.budget:
        why = (
            f"the {FEWEST} passes an interval needs do not fit it on this machine"
            if passes.count == FEWEST
            else "the last pass was slower than the ones before it"
        )
        say(f"mnist-bench: warning: the run took {took:.0f} s, over its budget of {run.budget:.0f} s: {why}")
    say(f"mnist-bench: {score_line(run.out)}")
    return run.out


def score_line(path: Path) -> str:
    """The run's score and interval in one line, with what the run saw of the machine's drift."""
    table = scores(load_results([path]).frame)
    ranked = table[table["ranked"]]
    if ranked.empty:
        return f"no score: {'; '.join(n for n in table['note'] if n) or 'no case of the reference set'}"
    r = ranked.iloc[0]
    note = f"; {r['note']}" if r["note"] else ""
    return (
        f"score {r['score']:,.0f} [{r['low']:,.0f} - {r['high']:,.0f}] against workload v{r['version']}'s "
        f"reference, over {r['cases']} of {r['of']} cases{note}"
    )
