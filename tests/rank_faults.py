"""Entry points for real data-parallel faults in tests: a rank that raises, a rank that hangs."""


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


def hanging() -> None:
    """Rank 1 never reaches the all-reduce that rank 0 waits for (a 5 s timeout)."""
    import datetime
    import time

    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=5))
    dist.barrier()
    if dist.get_rank() == 1:
        time.sleep(120)
    dist.all_reduce(torch.ones(4))
