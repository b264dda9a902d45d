"""ab's contract 0, frozen: the worker for a side whose code predates the contract (it has no
harness/ab_side.py), so that `ab` still judges a change against such a main.

The driver runs this file's text with the side's interpreter (`python -c`), from the side's
checkout or from a folder of its own for an installed environment, so every import below
of `mnist_models` is the side's, and this file itself imports nothing of the driver's.
It reaches into what those versions' cases offered: BenchOptions, cases(), make_run(),
a run's setup(), batches, trainer or model, extra_info() and close(), and core.train.infer.
Never edit it to follow today's internals: those sides do not change. Sides with a contract
run their own ab_side.py.

Protocol: one JSON object per line each way; the side's own printing goes to stderr.
    {"op": "start", "cases": [...], "threads": 1, "images": {"train": 1024, "infer": 2048},
     "label": "base", "root": null}
        -> {"code": ".../mnist_models/__init__.py", "cold": {case: seconds}}
    {"op": "size", "images": {case: n}}             -> {"images": {case: n}}
    {"op": "round", "case": "train-mlp-cpu-bs64"}   -> {"seconds": 0.21}
    {"op": "finish", "rounds": {case: [seconds...]}} -> {"entries": [...], "machine": {...}}
        (a case without rounds, of a run stopped early, is left out)
    {"op": "count", "cases": [...], "images": {...}} -> {"steps": {case: k}}
        (under callgrind: counted between torch's toggles, one dump per case)
Any failure -> {"error": "..."} and the worker exits.
"""

import json
import os
import statistics
import sys
import time


def _cases(opts, wanted):
    from mnist_models.harness.cases import cases

    known = {c.id: c for op in ("train", "infer") for c in cases(opts, op)}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ValueError(
            f"unknown case(s) {', '.join(unknown)}; choose train or infer cases on the cpu, "
            f"e.g. {', '.join(list(known)[:3])}"
        )
    return [known[w] for w in wanted]


def _options(msg):
    from mnist_models.harness.cases import BenchOptions

    return BenchOptions(
        devices=("cpu",), quick=True, label=msg["label"], root=msg.get("root"), precisions=("fp32", "bf16")
    )


def _work(run, case, images):
    """A round's work on a run just set up: `images` worth of training steps (train) or of
    inference batches (infer), whole batches; returns (the callable, the images it does)."""
    from mnist_models.core.train import infer

    steps = max(1, images // case.batch_size)
    if case.operation == "train":
        epoch = list(run.batches["train"])
        batches = [epoch[i % len(epoch)] for i in range(steps)]  # past the split's end: from its start again
        return (lambda: run.trainer.epoch(batches)), steps * case.batch_size
    x = run.batches["test"].split.x
    x = x[: steps * case.batch_size] if steps * case.batch_size < len(x) else x
    passes = max(1, steps * case.batch_size // len(x))  # a fast model's round: the test split again

    def work():
        for _ in range(passes):
            infer(run.model, x, case.batch_size, case.precision)

    return work, passes * len(x)


def _prepare(threads):
    """As the benchmark prepares its process: the allocator tuned, the thread count fixed."""
    import torch

    try:
        from mnist_models.machine.process import tune_malloc

        tune_malloc()
    except ImportError:  # a side from before the allocator was tuned
        pass
    torch.set_num_threads(threads)


class Side:
    def __init__(self, msg):
        _prepare(msg["threads"])
        from mnist_models.harness.run import Data
        from mnist_models.harness.runs import make_run

        self.opts = _options(msg)
        self.cases = {c.id: c for c in _cases(self.opts, msg["cases"])}
        self.images = {case: msg["images"][c.operation] for case, c in self.cases.items()}
        data = Data.load(self.opts, "cpu")
        self.runs = {case: make_run(c, self.opts, data) for case, c in self.cases.items()}
        self.done = {}
        self.cold = {case: self.round(case) for case in self.runs}  # uncounted: lazy init, allocations

    def round(self, case):
        run, c = self.runs[case], self.cases[case]
        run.setup()  # a fresh model and optimizer, outside the clock, as in the benchmark
        work, self.done[case] = _work(run, c, self.images[case])
        start = time.perf_counter()
        out = work()
        seconds = time.perf_counter() - start
        if c.operation == "train":
            run.result = out  # the last epoch's loss, which the run's figures report
        return seconds

    def finish(self, rounds):
        from mnist_models.machine.facts import build_machine_facts
        from mnist_models.reporting.schema import FORMAT

        entries = []
        for case, run in self.runs.items():
            if not rounds.get(case):  # a run stopped before this case's first pair: not kept
                run.close()
                continue
            run.inner[:] = rounds[case]
            info = run.extra_info(statistics.median(rounds[case]), self.cold[case])
            images, median = self.done[case], statistics.median(rounds[case])
            info.update(
                samples=images,
                samples_per_second=round(images / median, 1),
                gflops=round(info["flops_per_sample"] * images / median / 1e9, 2),
            )
            entries.append({"case": case, "group": run.case.group, "extra_info": info})
            run.close()
        return {"entries": entries, "machine": build_machine_facts(self.opts.label, format=FORMAT)}


def count(msg):
    """Instructions per case: one warm round, then one round of `images` counted between
    torch's callgrind toggles, each case's count dumped on its own."""
    import subprocess

    import torch

    _prepare(1)
    from mnist_models.harness.run import Data
    from mnist_models.harness.runs import make_run

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
        run = make_run(case, opts, data)
        run.setup()
        work, images = _work(run, case, msg["images"][case.operation])
        work()  # warm, uncounted: lazy init and first allocations
        torch._C._valgrind_toggle()
        work()
        torch._C._valgrind_toggle_and_dump_stats()
        steps[case.id] = -(-images // case.batch_size)
        run.close()
    return {"steps": steps, "code": _code()}


def _code():
    import mnist_models

    return os.path.realpath(mnist_models.__file__)


def main():
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # the side's prints (and torch's) to stderr
    side = None
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg["op"] == "start":
                side = Side(msg)
                reply = {"code": _code(), "cold": side.cold}
            elif msg["op"] == "size":  # the images of each case's round from now on
                side.images.update(msg["images"])
                reply = {"images": side.images}
            elif msg["op"] == "round":
                reply = {"seconds": side.round(msg["case"])}
            elif msg["op"] == "finish":
                reply = side.finish(msg["rounds"])
            elif msg["op"] == "count":
                reply = count(msg)
            else:
                raise ValueError(f"unknown op {msg['op']!r}")
        except Exception as exc:  # the driver names the side and stops both
            out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
            return 3
        out.write(json.dumps(reply) + "\n")
        if msg["op"] in ("finish", "count"):
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
