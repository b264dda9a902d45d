"""Entry points for real data-parallel faults in tests: a rank that raises."""
import os


def raising() -> None:
    import datetime
    import torch
    import torch.distributed as dist
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=30))
    dist.barrier()
    if dist.get_rank() == 1:
        raise ValueError("a planted fault")
    t = torch.ones(4)
    for _ in range(3):
        dist.all_reduce(t)
