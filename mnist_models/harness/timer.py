"""The template every benchmark case's timer follows, whatever its operation (operations.py,
ddp_timer.py):

    timer = make_timer(case, opts, Data.load(opts, "cpu"))   # prepare(): what lasts across rounds
    cold = timer.cold_round()                                # one uncounted round from a fresh model
    benchmark.pedantic(timer.target, setup=timer.setup, rounds=opts.rounds)
    benchmark.extra_info.update(timer.extra_info(median, cold))   # finish(), then figures()
    timer.close()
    timer.failure(benchmark.extra_info)                      # None, or why the case's work went wrong

setup() builds what a round starts from, outside the clock; target() times step() between
synchronized clock reads; finish() measures what the case measures once, after its rounds;
figures() only computes from what was measured; close() frees what the case held and puts
back what it changed (cuDNN's autotuning flag).
"""

from __future__ import annotations

import contextlib
import statistics
import time
import warnings
from dataclasses import dataclass

import torch

from ..core.data import Split, load_split
from ..core.models import count_params, create_model, macs_per_sample
from ..machine.devices import device_class, native_bf16, peak_memory_mb, reset_peak_memory, sync, timed
from ..machine.process import peak_rss_mb
from ..reporting.schema import BF16_WEIGHTS
from .cases import BenchOptions, Case
from .workload import case_hash


@dataclass
class Data:
    """Resident splits on one device, loaded once per session."""

    train: Split
    test: Split

    @classmethod
    def load(cls, opts: BenchOptions, device: str) -> Data:
        return cls(load_split(opts.root, True, device), load_split(opts.root, False, device))


class CaseTimer:
    """One case: prepare() once, setup() and target() per round, finish() once, close()."""

    def __init__(self, case: Case, opts: BenchOptions, data: Data | None):
        self.case, self.opts = case, opts
        self.device = torch.device(case.device)
        self.cfg = case.config(opts)
        self.inner: list[float] = []  # the target's own synchronized seconds per round
        self._cudnn_benchmark = torch.backends.cudnn.benchmark
        if self.device.type == "cuda":  # cuDNN (and MIOpen on ROCm): autotune conv kernels; the cold round pays
            torch.backends.cudnn.benchmark = True
        self.prepare(data)

    def prepare(self, data: Data | None) -> None:
        """What the case holds across its rounds (batches; a data-parallel case's worker group)."""

    @property
    def samples(self) -> int:
        """Images one round processes: the training images (the test images for infer)."""
        return self.cfg.training_images

    def setup(self) -> None:
        """What a round starts from (a fresh model), built outside the clock."""
        sync(self.device)

    def target(self) -> None:
        start = time.perf_counter()
        own = self.step()
        sync(self.device)
        self.inner.append(own if own is not None else time.perf_counter() - start)

    def step(self) -> float | None:
        """One round of the operation; the seconds it timed itself (a data-parallel round: the
        slowest rank's epoch), or None to be timed by target()."""
        raise NotImplementedError

    def cold_round(self) -> float:
        """Time one round from a fresh model (lazy init, autotune) that is not counted."""
        reset_peak_memory(self.device)
        self.setup()
        with self._first_compile():
            _, seconds = timed(self.target, self.device)
        self.inner.clear()
        self.reset()
        return seconds

    def warm(self) -> float:
        """An uncounted round for runs that interleave cases (run --score): it warms what a
        round uses (lazy init, the allocator, a compile kept for the rounds after it, not
        reset as cold_round's is), through warm_step(); its seconds."""
        self.setup()
        _, seconds = timed(self.warm_step, self.device)
        self.inner.clear()
        self.reset()
        return seconds

    def warm_step(self) -> None:
        """What warm() runs: a whole round, unless the operation has a cheaper one that warms as much."""
        self.target()

    def _first_compile(self) -> contextlib.AbstractContextManager:
        """A compiled case's cold round compiles as a machine's first run would: past
        inductor's caches on disk, which an earlier run (or case) may have filled, and past
        the graphs dynamo holds from earlier cases in this process."""
        if not self.cfg.compile:
            return contextlib.nullcontext()
        import torch._dynamo  # noqa: PLC0415 (dynamo: seconds to load, for compiled cases only)
        import torch._inductor.config  # noqa: PLC0415 (dynamo: seconds to load, for compiled cases only)

        torch._dynamo.reset()  # nor graphs an earlier case compiled in this process
        stack = contextlib.ExitStack()
        stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", message="dynamo_pgo force disabled")  # what was asked for
        stack.enter_context(torch._inductor.config.patch(force_disable_caches=True))
        return stack

    def reset(self) -> None:
        """Forget what the cold round recorded."""

    def finish(self) -> dict:
        """After the timed rounds, once: what the case measures at its end (test accuracy)."""
        return {}

    def close(self) -> None:
        """Free what the case holds beyond its rounds, and put back the flags it set."""
        torch.backends.cudnn.benchmark = self._cudnn_benchmark

    def extra_info(self, median: float | None, cold: float) -> dict:
        """Every axis and derived figure of this case, for benchmark.extra_info."""
        c, model, finished = self.case, create_model(self.case.model), self.finish()
        median = median or statistics.median(self.inner)
        info = {
            "model": c.model,
            "device": c.device,
            "operation": c.operation,
            "batch_size": c.batch_size,
            "loader": c.loader,
            "variant": c.variant,
            "precision": c.precision,
            "native": c.precision == "fp32" or native_bf16(c.device),
            "samples": self.samples,
            "workload": case_hash(c, self.opts, device_class(c.device)),
            "params": count_params(model),
            "macs_per_sample": macs_per_sample(model),
            "peak_rss_mb": peak_rss_mb(),
            "torch_threads": torch.get_num_threads(),
            "channels_last": self.cfg.channels_last,
            "fused": self.cfg.fused,
            "compiled": self.cfg.compile,
            "dtype": self.dtype(),
            "cold_seconds": round(cold, 4),
            **self.figures(model, median, finished),
        }
        if self.device.type != "cpu" and "device_peak_memory_mb" not in info:
            info["device_peak_memory_mb"], note = peak_memory_mb(self.device)
            info.update({"device_peak_memory_note": note} if note else {})
        if self.cfg.compile:  # what the cold round spent over a timed one: torch.compile's work, mostly
            info["compile_seconds"] = round(max(cold - median, 0.0), 4)
        info["harness_overhead_fraction"] = round(max(median - statistics.median(self.inner), 0) / median, 6)
        return info

    def failure(self, info: dict) -> str | None:
        """Why the case's work went wrong, from what it recorded (None: it did not). Speed is
        never judged here."""
        return None

    def dtype(self) -> str:
        """The numbers the case computes in: float32, bf16 autocast over fp32 weights, or bf16 weights."""
        if self.case.precision != "bf16":
            return "float32"
        return BF16_WEIGHTS if self.cfg.bf16_weights else "bfloat16 autocast"

    def figures(self, model: torch.nn.Module, median: float, finished: dict) -> dict:
        """The operation's own figures, from the rounds' median and what finish() measured."""
        return {}

    def throughput(self, flops_per_sample: int, median: float) -> dict:
        return {
            "flops_per_sample": flops_per_sample,
            "samples_per_second": round(self.samples / median, 1),
            "gflops": round(flops_per_sample * self.samples / median / 1e9, 2),
        }
