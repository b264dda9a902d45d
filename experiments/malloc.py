"""glibc's default allocator against machine.process.tune_malloc, side by side.

    python experiments/malloc.py > results/fast/malloc.md

mallopt cannot be undone inside a process, so every run is a fresh process: for each
case, PROCESSES pairs (default, tuned) alternate, and each process trains EPOCHS
epochs, each from a fresh model as a benchmark round does, counting minor page faults.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

CASES = {
    "cnn bs256 fp32": ("cnn", 256, "fp32"),
    "cnn bs256 bf16": ("cnn", 256, "bf16"),
    "cnn bs1024 fp32": ("cnn", 1024, "fp32"),
    "mlp bs64 fp32": ("mlp", 64, "fp32"),
}
SETTINGS = ("default", "tuned")  # MNIST_BENCH_MALLOC for the child
EPOCHS, PROCESSES = 3, 3


def child(case: str) -> None:
    import torch

    from mnist_models.core.config import TrainConfig
    from mnist_models.core.data import ResidentLoader, load_split
    from mnist_models.core.train import Trainer
    from mnist_models.machine.process import tune_malloc

    state = tune_malloc()
    model, batch_size, precision = CASES[case]
    cpu, cfg = torch.device("cpu"), TrainConfig(model=model, batch_size=batch_size, precision=precision)
    batches = ResidentLoader(load_split(train=True), batch_size)
    rounds = []
    for _ in range(EPOCHS):
        trainer = Trainer(cfg, len(batches), cpu)
        faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        trainer.epoch(batches)
        rounds.append(
            {
                "seconds": time.perf_counter() - start,
                "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / len(batches),
            }
        )
    print(json.dumps({"malloc": state, "rounds": rounds}))


def main() -> None:
    runs = {(case, s): [] for case in CASES for s in SETTINGS}
    for case in CASES:
        for i in range(PROCESSES):
            for setting in SETTINGS:
                env = {**os.environ, "MNIST_BENCH_MALLOC": setting}
                out = subprocess.run(
                    [sys.executable, __file__, case], env=env, check=True, capture_output=True, text=True
                ).stdout
                runs[case, setting] += json.loads(out.splitlines()[-1])["rounds"]
                print(f"{case}: process {i + 1} {setting}", file=sys.stderr, flush=True)
    print("# glibc's default allocator vs tune_malloc\n")
    print(
        f"Made by `python experiments/malloc.py > results/fast/malloc.md`: per case, {PROCESSES} "
        f"pairs of fresh processes alternating (default, tuned), each training {EPOCHS} epochs of "
        "60,000 images from a fresh model per epoch, on the cpu. `default`: "
        "`MNIST_BENCH_MALLOC=default`, glibc as the platform set it; `tuned`: `machine.process.tune_malloc()`.\n"
    )
    print("| case | malloc | median epoch s | epochs (s) | page faults per step (median) | speed-up |")
    print("|---|---|---:|---|---:|---:|")
    for case in CASES:
        medians = {s: statistics.median(r["seconds"] for r in runs[case, s]) for s in SETTINGS}
        for s in SETTINGS:
            rounds = runs[case, s]
            epochs = ", ".join(f"{r['seconds']:.2f}" for r in rounds)
            print(
                f"| {case} | {s} | {medians[s]:.3f} | {epochs} "
                f"| {statistics.median(r['faults'] for r in rounds):,.0f} "
                f"| {medians['default'] / medians[s]:.2f}x |"
            )


if __name__ == "__main__":
    child(sys.argv[1]) if len(sys.argv) > 1 else main()
