"""The machine facts a result file carries (machine_info["mnist_bench"]): built here, once,
and read back by reporting.schema.read_machine_facts.

    from mnist_models.machine.facts import build_machine_facts
    build_machine_facts("laptop", probe={"cpu": ("fp32",)}, say=print)
"""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Callable

import psutil

from .cpu import cpu_facts
from .devices import accelerator, accelerator_facts, native_bf16
from .probe import probe as probe_ceilings
from .process import malloc_state, oversubscribed


def build_machine_facts(
    label: str | None = None,
    probe: dict[str, tuple[str, ...]] | None = None,
    say: Callable[[str], None] = lambda line: None,
    **run,
) -> dict:
    """What a reader needs to weigh results from this machine against another's.

    `probe`: device -> precisions whose matmul peak to measure, with each device's
    bandwidth (None: no probe).
    `run`: facts of the run itself (quick, rounds, format), recorded beside the machine's.
    """
    import torch  # noqa: PLC0415 (machine: torch only inside functions)
    import torchvision  # noqa: PLC0415 (machine: torch only inside functions)

    info = {
        "label": label or socket.gethostname(),
        **cpu_facts(),
        "cpu_bf16_native": native_bf16("cpu"),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda if accelerator() == "cuda" else None,  # the GPU's runtime, with one
        "torch_threads": torch.get_num_threads(),
        "threads_over_cores": oversubscribed() is not None,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "malloc": malloc_state(),
        **accelerator_facts(),
        **run,
    }
    if probe is not None:
        info.update(probe_ceilings(probe, say))
    return info
