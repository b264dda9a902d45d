"""One rank of a data-parallel benchmark case's worker group: started by torchrun for
ddp_timer.DdpTimer, it answers the controller's commands on a torch.distributed.TCPStore.

    python -m torch.distributed.run --nproc-per-node 2 ... -m mnist_models.harness.ddp_worker \\
        --store 127.0.0.1:PORT --spec '{"case": {...}, "quick": false, "root": null}'

Commands: "setup" (a fresh model on every rank), "epoch" (one timed epoch), "finish"
(evaluate, measure the all-reduce), "stop"; rank 0 answers each on the store.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time

import torch
import torch.distributed as dist

from ..core.data import ResidentLoader
from ..distributed.training import join, timed_epoch
from ..machine.devices import peak_memory_mb, sync
from .cases import BenchOptions, Case


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
    rank = join(case.config(opts), case.device, case.threads or 1)
    host, port = store_address.rsplit(":", 1)
    store = dist.TCPStore(host, int(port), is_master=False, timeout=datetime.timedelta(seconds=60))
    try:
        trainer, step = None, 0
        while True:
            store.wait([f"cmd/{step}"])
            command = store.get(f"cmd/{step}").decode()
            if command == "stop":
                break
            reply: dict = {}
            if command == "setup":
                trainer = rank.trainer()
                sync(rank.device)
            elif command == "epoch":
                assert trainer is not None, "the controller sets up before an epoch"
                reply = {**timed_epoch(trainer, rank.batches, rank.device), "steps": len(rank.batches)}
            elif command == "finish":
                assert trainer is not None, "the controller sets up before it finishes"
                reply = {"allreduce_seconds": _allreduce_seconds(trainer, rank.device)}
                if rank.place.rank == 0:
                    reply.update(trainer.evaluate(ResidentLoader(rank.test, rank.cfg.eval_batch_size, shuffle=False)))
                    reply["device_peak_memory_mb"], reply["device_peak_memory_note"] = peak_memory_mb(rank.device)
            if rank.place.rank == 0:
                store.set(f"done/{step}", json.dumps(reply))
            step += 1
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description="one rank of a benchmark case's worker group")
    parser.add_argument("--store", required=True)
    parser.add_argument("--spec", required=True)
    args = parser.parse_args()
    spec = json.loads(args.spec)
    serve(args.store, Case(**spec["case"]), BenchOptions(quick=spec["quick"], root=spec["root"]))


if __name__ == "__main__":
    main()
