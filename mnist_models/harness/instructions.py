"""Instruction counts, the deterministic signal beside the clock: each side's worker runs
under callgrind, with instrumentation off while torch imports (the import alone is most of
the cost) and on only for the cases; each case's round is counted between torch's own
valgrind toggles (what torch.utils.benchmark's collect_callgrind uses) and dumped apart.

    counts = count_sides(sides, (1, 1), ["train-mlp-cpu-bs64"], root=None, images={"train": 256, "infer": 512})
    counts[0]["train-mlp-cpu-bs64"]   # {"instructions": 21_000_000, "steps": 4, "per_step": 5_250_000}

Single-threaded, so no thread's spinning is counted. It cannot see GPU kernels, memory
bandwidth, cache misses or page faults: a change that only moves those shows on the clock.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import RunError
from .ab_workers import WAIT, Worker

IMAGES = {"train": 256, "infer": 512}  # counted per case: 4 steps at batch 64, 2 batches at 256


def unavailable() -> str | None:
    """Why instructions cannot be counted here, or None."""
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    if missing:
        return (
            f"{' and '.join(missing)} not found, so no instruction counts (install valgrind, "
            "e.g. apt-get install valgrind); the clock alone decides"
        )
    return None


def _totals(folder: Path) -> list[int]:
    """The instruction totals of each dump callgrind wrote, in dump order (part 0, the
    uncollected rest of the process, left out)."""
    dumps = sorted(
        (p for p in folder.iterdir() if re.fullmatch(r"cg\.\d+\.\d+", p.name)),
        key=lambda p: int(p.name.rsplit(".", 1)[1]),
    )
    totals = []
    for dump in dumps:
        match = re.search(r"^(?:totals|summary): (\d+)", dump.read_text(errors="replace"), re.M)
        totals.append(int(match.group(1)) if match else 0)
    return totals


def count_sides(
    sides,
    contracts: tuple[int, int],
    cases: list[str],
    root: str | None,
    images: dict[str, int] = IMAGES,
    progress: Callable[[str], None] = lambda line: None,
) -> list[dict]:
    """Both sides counted at once (the counts do not depend on what else runs): per side,
    {case: {"instructions", "steps", "per_step"}}."""
    prefix = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no", "--quiet"]
    with tempfile.TemporaryDirectory(prefix="mnist-bench-callgrind-") as tmp:
        folders = [Path(tmp, side.name) for side in sides]
        workers = []
        progress(f"counting instructions under callgrind, both sides at once ({len(cases)} cases)")
        try:
            for side, contract, folder in zip(sides, contracts, folders):
                folder.mkdir()
                dump = f"--callgrind-out-file={folder}/cg.%p"
                workers.append(Worker(side, 1, [*prefix, dump], pin=False, contract=contract))
            for w in workers:  # both messages first: the two run side by side
                w.send(op="count", cases=cases, label=w.side.name, root=root, images=images)
            replies = [w.reply(WAIT["count"]) for w in workers]
        finally:
            for w in workers:
                w.close()
        out = []
        for side, folder, reply in zip(sides, folders, replies):
            totals = _totals(folder)
            if len(totals) != len(cases) or not all(totals):
                raise RunError(
                    f"the {side.name} side's callgrind dumps hold {len(totals)} counts for "
                    f"{len(cases)} cases; instrumentation did not start"
                )
            out.append(
                {
                    case: {
                        "instructions": n,
                        "steps": reply["steps"][case],
                        "per_step": round(n / reply["steps"][case]),
                    }
                    for case, n in zip(cases, totals)
                }
            )
        return out
