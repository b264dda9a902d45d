"""torch.profiler's table of a few training steps of one benchmark case on the cpu.

python -m mnist_models profile --model cnn --batch-size 256 --steps 50
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..core.config import TRAIN_SIZE
from ..errors import EXIT_OK, UsageError
from ..machine.process import tune_malloc
from .cases import BenchOptions, Case


@dataclass(frozen=True)
class ProfileOptions:
    """The profile command's choices: one training case and how many of its steps."""

    model: str = "cnn"
    batch_size: int = 256
    precision: str = "fp32"
    variant: str = "tuned"  # tuned, plain, or knobs joined by +
    steps: int = 50  # training steps profiled (after one uncounted epoch of them)
    root: str | None = None  # MNIST root (None: $MNIST_ROOT or ./datasets)
    command: str = "python -m mnist_models profile"  # quoted above the table

    def case(self) -> Case:
        """The case profiled; UsageError for an unknown variant knob or more images than MNIST has."""
        images = self.steps * self.batch_size
        if images > TRAIN_SIZE:
            raise UsageError(
                f"{self.steps} steps of batch {self.batch_size} need {images:,} images, more than "
                f"MNIST's {TRAIN_SIZE:,}; lower --steps or --batch-size"
            )
        case = Case("train", self.model, "cpu", self.batch_size, self.precision, variant=self.variant)
        case.overrides()  # raises on unknown variant knobs
        if "cuda_graphs" in case.knobs:
            raise UsageError(
                f"profile runs on the cpu and CUDA graphs need a CUDA device; "
                f"drop cuda_graphs from --variant (got {self.variant!r})"
            )
        return case


def profile_case(opts: ProfileOptions, say: Callable[[str], None] = print) -> int:
    """Print torch.profiler's table, sorted by self CPU time, of opts.steps training steps."""
    case = opts.case()
    from torch.profiler import ProfilerActivity, profile  # noqa: PLC0415 (torch: after the options are checked)

    from .operations import make_timer  # noqa: PLC0415 (torch: after the options are checked)
    from .timer import Data  # noqa: PLC0415 (torch: after the options are checked)

    tune_malloc()  # before any tensor: freed memory kept for the next step
    bench = BenchOptions(root=opts.root)
    data = Data.load(bench, "cpu")
    run = make_timer(case, bench, Data(data.train.take(opts.steps * opts.batch_size), data.test))
    try:
        run.cold_round()
        run.setup()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run.target()
    finally:
        run.close()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    say(
        f"# {opts.command}\n# case {case.id}, {opts.steps} training steps, torch.profiler, "
        f"sorted by self CPU time\n{table}"
    )
    return EXIT_OK
