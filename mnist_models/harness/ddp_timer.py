"""The benchmark's data-parallel cases, driven from the pytest process: a worker group
(ddp_worker.py) that torchrun starts once per case and keeps up across rounds.

    pytest bench --devices cpu --world-sizes 1,2 -k ddp

The pytest process hosts a torch.distributed.TCPStore and writes one command per step
("setup", "epoch", "finish", "stop"); rank 0 answers each on the store. A round's time is
the slowest rank's epoch, between barriers, after a device synchronize. The group's start
(torchrun, every rank's torch import and data) happens once, outside every clock.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import subprocess
import tempfile

import torch
import torch.distributed as dist

from ..core.models import training_macs_per_sample
from ..distributed.launch import torchrun_command
from ..distributed.training import BACKENDS
from .cases import Case
from .timer import CaseTimer, Data

STEP_WAIT = datetime.timedelta(seconds=1)  # how often the controller checks the group is alive


class DdpTimer(CaseTimer):
    """A data-parallel case, driven from the pytest process; close() ends its group."""

    def prepare(self, data: Data | None) -> None:  # its ranks load their own splits
        """Start the case's worker group (torchrun, every rank's torch import and data), once."""
        self.backend, self.sent = BACKENDS[self.case.device], 0
        self.store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
        self.log = tempfile.TemporaryFile(mode="w+")
        spec = json.dumps({"case": dataclasses.asdict(self.case), "quick": self.opts.quick, "root": self.opts.root})
        self.proc = subprocess.Popen(
            torchrun_command(
                self.case.world_size,
                "mnist_models.harness.ddp_worker",
                ["--store", f"127.0.0.1:{self.store.port}", "--spec", spec],
            ),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=_worker_env(self.case),
        )

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

    def step(self) -> float:
        self.result = self.command("epoch")
        return self.result["seconds"]  # the slowest rank's, between barriers

    def finish(self) -> dict:
        return self.command("finish")

    def figures(self, model: torch.nn.Module, median: float, finish: dict) -> dict:
        c, world = self.case, self.case.world_size
        memory = {} if self.device.type == "cpu" else {"device_peak_memory_mb": finish["device_peak_memory_mb"]}
        return {
            **self.throughput(2 * training_macs_per_sample(model), median),
            **memory,
            "final_loss": round(self.result["loss"], 5),
            "test_accuracy": finish["accuracy"],
            "world_size": world,
            "backend": self.backend,
            "scaling": c.scaling,
            "global_batch": self.cfg.batch_size,
            "per_rank_batch": self.cfg.batch_size // world,
            "threads_per_rank": c.threads or 1,
            "allreduce_share": round(min(1.0, finish["allreduce_seconds"] * self.result["steps"] / median), 4)
            if world > 1
            else 0.0,
        }

    def close(self) -> None:
        """Stop the group (every rank leaves its loop), or kill it if it does not stop."""
        super().close()
        if self.proc.poll() is None:
            self.store.set(f"cmd/{self.sent}", "stop")
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _worker_env(case: Case) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(case.threads or 1), "PYTHONUNBUFFERED": "1"}
