"""The benchmark's data-parallel cases: a worker group that torchrun starts once per case
and keeps up across rounds, and the Run that drives it from the pytest process.

    pytest bench --devices cpu --world-sizes 1,2 -k ddp

The pytest process hosts a torch.distributed.TCPStore and writes one command per step
("setup": a fresh model on every rank; "epoch": one timed epoch; "finish": evaluate and
measure the all-reduce; "stop"); rank 0 answers each on the store. A round's time is the
slowest rank's epoch, between barriers, after a device synchronize. The group's start
(torchrun, every rank's torch import and data) happens once, outside every clock.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import subprocess
import sys
import tempfile
import time

import torch
import torch.distributed as dist

from .cases import BenchOptions, Case
from .runner import Run
from .timing import sync

STEP_WAIT = datetime.timedelta(seconds=1)  # how often the controller checks the group is alive


def _allreduce_seconds(trainer, device, repeats: int = 20) -> float:
    """The quickest of `repeats` all-reduces of a gradient's size, alone: what each step
    adds at most (DDP overlaps it with the backward pass, in buckets); the quickest, since
    a rank that another process delays adds its wait to every other's."""
    grad = torch.zeros(sum(p.numel() for p in trainer.model.parameters()), device=device)
    times = []
    for _ in range(repeats):
        dist.barrier()
        begin = time.perf_counter()
        dist.all_reduce(grad)
        sync(device)
        times.append(time.perf_counter() - begin)
    return min(times)


def serve(store_address: str, case: Case, opts: BenchOptions) -> None:
    """One rank of a case's worker group: answer the controller's commands until "stop"."""
    from .data import ResidentLoader
    from .devices import peak_memory_mb
    from .distributed import ShardedLoader, ddp_trainer, per_rank, resident, start, timed_epoch
    from .timing import tune_malloc
    tune_malloc()
    host, port = store_address.rsplit(":", 1)
    place, device = start(case.device, case.threads or 1)
    store = dist.TCPStore(host, int(port), is_master=False, timeout=datetime.timedelta(seconds=60))
    try:
        global_cfg = case.config(opts)
        cfg = per_rank(global_cfg, place.world)
        train, test = resident(global_cfg, device)
        batches = ShardedLoader(train, cfg.batch_size, place.rank, place.world, cfg.seed)
        trainer, step = None, 0
        while True:
            store.wait([f"cmd/{step}"])
            command = store.get(f"cmd/{step}").decode()
            if command == "stop":
                break
            reply: dict = {}
            if command == "setup":
                trainer = ddp_trainer(cfg, len(batches), device)
                sync(device)
            elif command == "epoch":
                reply = {**timed_epoch(trainer, batches, device), "steps": len(batches)}
            elif command == "finish":
                reply = {"allreduce_seconds": _allreduce_seconds(trainer, device)}
                if place.rank == 0:
                    reply.update(trainer.evaluate(ResidentLoader(test, cfg.eval_batch_size, shuffle=False)))
                    reply["device_peak_memory_mb"], reply["device_peak_memory_note"] = peak_memory_mb(device)
            if place.rank == 0:
                store.set(f"done/{step}", json.dumps(reply))
            step += 1
    finally:
        dist.destroy_process_group()


class DdpRun(Run):
    """A data-parallel case, driven from the pytest process; close() ends its group."""

    def __init__(self, case: Case, opts: BenchOptions, data=None):
        from .distributed import BACKENDS
        from .ddp import free_port
        self.case, self.opts, self.device = case, opts, torch.device(case.device)
        self.cfg, self.inner, self.sent = case.config(opts), [], 0
        self.backend = BACKENDS[case.device]
        self.store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
        self.log = tempfile.TemporaryFile(mode="w+")
        spec = json.dumps({"case": dataclasses.asdict(case), "quick": opts.quick, "root": opts.root})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(case.world_size),
             "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port(0)}", "--max-restarts", "0",
             "-m", "mnist_models.ddp_bench", "--store", f"127.0.0.1:{self.store.port}", "--spec", spec],
            stdout=self.log, stderr=subprocess.STDOUT, env=_worker_env(case))

    def command(self, name: str) -> dict:
        """Send one command to every rank and wait for rank 0's answer, as long as the group
        lives: a dead or failed rank ends the wait with its group's last words."""
        self.store.set(f"cmd/{self.sent}", name)
        done, self.sent = f"done/{self.sent}", self.sent + 1
        while True:
            try:
                self.store.wait([done], STEP_WAIT)
                return json.loads(self.store.get(done))
            except RuntimeError:  # the wait timed out (DistStoreError): is the group still there?
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.case.id}: the worker group stopped ({self._last_words()})") from None

    def _last_words(self) -> str:
        self.log.seek(0)
        lines = [line.strip() for line in self.log if "Error" in line or "rank" in line]
        return lines[-1] if lines else f"torchrun exit code {self.proc.returncode}"

    def setup(self) -> None:
        self.command("setup")

    def target(self) -> None:
        self.result = self.command("epoch")
        self.inner.append(self.result["seconds"])

    def figures(self, model: torch.nn.Module, median: float) -> dict:
        from .models import training_macs_per_sample
        finish = self.command("finish")
        c, world = self.case, self.case.world_size
        memory = {} if self.device.type == "cpu" else {"device_peak_memory_mb": finish["device_peak_memory_mb"]}
        return {**self.throughput(2 * training_macs_per_sample(model), median), **memory,
                "final_loss": round(self.result["loss"], 5), "test_accuracy": finish["accuracy"],
                "world_size": world, "backend": self.backend, "scaling": c.scaling,
                "global_batch": self.cfg.batch_size, "per_rank_batch": self.cfg.batch_size // world,
                "threads_per_rank": c.threads or 1,
                "allreduce_share": round(min(1.0, finish["allreduce_seconds"] * self.result["steps"] / median), 4)
                if world > 1 else 0.0}

    def close(self) -> None:
        """Stop the group (every rank leaves its loop), or kill it if it does not stop."""
        if self.proc.poll() is None:
            self.store.set(f"cmd/{self.sent}", "stop")
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _worker_env(case: Case) -> dict:
    import os
    return {**os.environ, "OMP_NUM_THREADS": str(case.threads or 1), "PYTHONUNBUFFERED": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description="one rank of a benchmark case's worker group")
    parser.add_argument("--store", required=True)
    parser.add_argument("--spec", required=True)
    args = parser.parse_args()
    spec = json.loads(args.spec)
    serve(args.store, Case(**spec["case"]), BenchOptions(quick=spec["quick"], root=spec["root"]))


if __name__ == "__main__":
    main()
