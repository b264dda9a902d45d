"""Where a data-parallel CNN step's time goes on the cpu: torch.profiler on rank 0 of 2
(gloo, 1 thread a rank), beside the same step on one rank, at the global batch 256.

    python experiments/ddp_profile.py > results/ddp/profile-cnn-bs256.md   # about a minute

Each run trains STEPS steps after WARMUP; the table lists rank 0's operators by self CPU
time. What the two-rank step adds over half the one-rank step is DDP's share: the
all-reduce (gloo's work in the backward pass) and the per-step overhead.
"""

from __future__ import annotations

WARMUP, STEPS, BATCH = 5, 30, 256


def rank_main(world: int) -> tuple[float, str]:
    import time

    import torch.distributed as dist
    from torch.profiler import ProfilerActivity, profile

    from mnist_models.core.config import TrainConfig
    from mnist_models.distributed.training import join

    rank = join(TrainConfig(model="cnn", batch_size=BATCH, device="cpu"), "cpu", threads=1)
    batches = iter(rank.batches)
    trainer = rank.trainer()
    for _ in range(WARMUP):
        trainer.step(*next(batches))
    dist.barrier()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        begin = time.perf_counter()
        for _ in range(STEPS):
            trainer.step(*next(batches))
        took = (time.perf_counter() - begin) / STEPS
    dist.destroy_process_group()
    return took, prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)


def run(world: int) -> tuple[float, str]:
    from mnist_models.distributed.launch import launch

    return launch(rank_main, (world,), nproc=world, run_id=f"profile-{world}")


def main() -> None:
    from mnist_models.machine.cpu import cpu_facts

    cpu = cpu_facts()
    one, one_table = run(1)
    two, two_table = run(2)
    print(
        f"# A data-parallel CNN step on the cpu, profiled\n\nMade by `python experiments/ddp_profile.py > "
        f"results/ddp/profile-cnn-bs256.md` on {cpu['cpu_model']} family {cpu['cpu_family']} (epyc-zen5-2core's "
        f"class): the CNN at global batch {BATCH}, {STEPS} steps after {WARMUP}, 1 thread a rank, gloo.\n"
    )
    print("| ranks | per-rank batch | seconds a step | images/s | efficiency |\n|---:|---:|---:|---:|---:|")
    print(f"| 1 | {BATCH} | {one:.4f} | {BATCH / one:,.0f} | 100% |")
    print(f"| 2 | {BATCH // 2} | {two:.4f} | {BATCH / two:,.0f} | {one / (2 * two):.0%} |\n")
    print(
        f"Two ranks each take {two * 1e3:.1f} ms a step for half the images, against "
        f"{one * 1e3 / 2:.1f} ms for half of one rank's step: {(two - one / 2) * 1e3:.1f} ms a step "
        "that DDP adds (the rows below say which operators hold it).\n"
    )
    print(f"## Rank 0 of 2\n\n```\n{two_table}\n```\n\n## One rank\n\n```\n{one_table}\n```")


if __name__ == "__main__":
    main()
