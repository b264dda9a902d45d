"""ab's worker contract, version CONTRACT: the few calls `mnist-bench ab` makes of one side's
code, implemented by that side for itself, so a refactor of the harness never breaks the
gate that judges it. The driver starts `python -m mnist_models.harness.ab_side` in the
side's checkout or environment; everything below uses the side's own internals.

One JSON object per line each way; the side's own printing goes to stderr.

    {"op": "hello"}                                    -> {"contract": 1, "code": ".../mnist_models/__init__.py"}
    {"op": "start", "cases": [...], "threads": 1, "images": {case: n}, "root": null, "label": "base"}
                                                       -> {"cold": {case: seconds}}
    {"op": "round", "case": "train-mlp-cpu-bs64"}      -> {"seconds": 0.15}
    {"op": "describe", "rounds": {case: [seconds...]}} -> {"entries": [...], "machine": {...}}
    {"op": "count", "cases": [...], "images": {"train": 256, "infer": 512}, "root": null}
                                                       -> {"steps": {case: k}}   (under callgrind)

A round is `images` worth of training steps (train) or inference batches (infer) of a case
from a fresh model, whole batches. Any failure -> {"error": "..."} and the worker exits.
A driver that meets another contract number refuses the side in one line (ab_workers.py).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import torch

import mnist_models

from ..core.train import infer
from ..machine.facts import build_machine_facts
from ..machine.process import tune_malloc
from ..reporting.fields import FORMAT
from .cases import BenchOptions, Case, cases
from .operations import InferTimer, TrainTimer, make_timer
from .record import workload_facts
from .timer import CaseTimer, Data

CONTRACT = 1


def _options(msg: dict) -> BenchOptions:
    return BenchOptions(
        devices=("cpu",), quick=True, label=msg.get("label") or "ab", root=msg.get("root"), precisions=("fp32", "bf16")
    )


def _cases(opts: BenchOptions, wanted: list[str]) -> list[Case]:
    known = {c.id: c for op in ("train", "infer") for c in cases(opts, op)}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ValueError(f"unknown case(s) {', '.join(unknown)}; this side times train and infer cases on the cpu")
    return [known[w] for w in wanted]


def _work(timer: CaseTimer, case: Case, images: int):
    """A round's work on a timer just set up: (the callable, the images it does)."""
    steps = max(1, images // case.batch_size)
    if isinstance(timer, TrainTimer):
        epoch = list(timer.batches["train"])
        batches = [epoch[i % len(epoch)] for i in range(steps)]  # past the split's end: from its start again
        return (lambda: timer.trainer.epoch(batches)), steps * case.batch_size
    if not isinstance(timer, InferTimer):
        raise ValueError(f"{case.id}: this side times train and infer cases only")
    x = timer.resident("test").split.x
    x = x[: steps * case.batch_size] if steps * case.batch_size < len(x) else x
    passes = max(1, steps * case.batch_size // len(x))  # a fast model's round: the test split again

    def work():
        for _ in range(passes):
            infer(timer.model, x, case.batch_size, case.precision)

    return work, passes * len(x)


class Side:
    """The cases' timers in this process, MNIST loaded once, each case cold-run once."""

    def __init__(self, msg: dict):
        tune_malloc()
        torch.set_num_threads(msg["threads"])
        self.opts = _options(msg)
        self.cases = {c.id: c for c in _cases(self.opts, msg["cases"])}
        self.images = dict(msg["images"])
        data = Data.load(self.opts, "cpu")
        self.timers = {case: make_timer(c, self.opts, data) for case, c in self.cases.items()}
        self.done: dict[str, int] = {}
        self.cold = {case: self.round(case) for case in self.timers}  # uncounted: lazy init, allocations

    def round(self, case: str) -> float:
        timer, c = self.timers[case], self.cases[case]
        timer.setup()  # a fresh model and optimizer, outside the clock, as in the benchmark
        work, self.done[case] = _work(timer, c, self.images[case])
        start = time.perf_counter()
        out = work()
        seconds = time.perf_counter() - start
        if isinstance(timer, TrainTimer):
            timer.result = out  # the last epoch's loss, which the timer's figures report
        return seconds

    def describe(self, rounds: dict[str, list[float]]) -> dict:
        entries = []
        for case, timer in self.timers.items():
            timer.inner[:] = rounds[case]
            median = statistics.median(rounds[case])
            info = timer.extra_info(median, self.cold[case])
            images = self.done[case]
            info.update(
                samples=images,
                samples_per_second=round(images / median, 1),
                gflops=round(info["flops_per_sample"] * images / median / 1e9, 2),
            )
            entries.append({"case": case, "group": timer.case.group, "extra_info": info})
            timer.close()
        return {
            "entries": entries,
            "machine": build_machine_facts(self.opts.label, format=FORMAT),
            "run": workload_facts(self.opts),
        }


def count(msg: dict) -> dict:
    """Instructions per case: one warm round, then one round of `images` counted between
    torch's callgrind toggles, each case's count dumped on its own."""
    tune_malloc()
    torch.set_num_threads(1)
    if not torch._C._valgrind_supported_platform():
        raise RuntimeError(
            "this torch was built without valgrind support (USE_VALGRIND), so it cannot toggle callgrind's counting"
        )
    opts = _options(msg)
    chosen = _cases(opts, msg["cases"])
    data = Data.load(opts, "cpu")
    turned = subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())], capture_output=True, text=True)
    if turned.returncode:
        raise RuntimeError(f"callgrind_control --instr=on failed: {turned.stderr.strip() or turned.stdout.strip()}")
    steps = {}
    for case in chosen:
        timer = make_timer(case, opts, data)
        timer.setup()
        work, images = _work(timer, case, msg["images"][case.operation])
        work()  # warm, uncounted: lazy init and first allocations
        torch._C._valgrind_toggle()
        work()
        torch._C._valgrind_toggle_and_dump_stats()
        steps[case.id] = -(-images // case.batch_size)
        timer.close()
    return {"steps": steps}


def _answer(side: Side | None, msg: dict) -> tuple[dict, Side | None]:
    op = msg.get("op")
    if op == "hello":
        return {"contract": CONTRACT, "code": os.path.realpath(mnist_models.__file__)}, side
    if op == "start":
        side = Side(msg)
        return {"cold": side.cold}, side
    if op in ("round", "describe"):
        if side is None:
            raise ValueError(f"{op} before start")
        if op == "round":
            return {"seconds": side.round(msg["case"])}, side
        return side.describe(msg["rounds"]), side
    if op == "count":
        return count(msg), side
    raise ValueError(f"unknown op {op!r}; contract {CONTRACT} knows hello, start, round, describe, count")


def main() -> int:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # the side's prints (and torch's) to stderr
    side = None
    for line in sys.stdin:
        try:
            reply, side = _answer(side, json.loads(line))
        except Exception as exc:  # the driver names the side and stops both
            out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
            return 3
        out.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
