"""The roofline's memory side checked on this machine, and each tuned case against its bound.

    python experiments/roofline.py --machine-label NAME --results results/NAME.json --out results/fast/NAME/roofline.md

First the two probes, as a run records them. Then three memory-bound passes, each far
beyond the last-level cache, whose bytes are counted as reporting/roofline.py counts
the layers they stand for: a ReLU (read and write every element), a 2x2 max-pool
forward in channels_last (read the input, write a quarter of it) and a fused Adam step
(ADAM_BYTES a parameter). Each is timed in turn with the triad, best of ROUNDS, and
its bound is its bytes at the best bandwidth the triad showed: a pass reaching at least 1/FACTOR of its
bound says the memory side of the roofline holds here. Last, every tuned train and
infer case of the result file given, against its attainable images/s (the report's
`of attainable`), with the cases under half of it named.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from mnist_models.files import write_files
from mnist_models.machine.devices import timed
from mnist_models.machine.probe import probe, triad_bandwidth_gbs
from mnist_models.machine.process import tune_malloc
from mnist_models.reporting.markdown import md_table, pct
from mnist_models.reporting.results import load_results
from mnist_models.reporting.roofline import ADAM_BYTES

ROUNDS, FACTOR, ELEMENTS = 7, 2.0, 2**26  # rounds per pass; the stated factor; 256 MiB of fp32


def passes() -> dict:
    """name -> (what it stands for, bytes as the roofline counts them, the pass)."""
    x = torch.rand(ELEMENTS)
    out = torch.empty_like(x)
    images = torch.rand(ELEMENTS // (16 * 28 * 28), 16, 28, 28).contiguous(memory_format=torch.channels_last)
    pool = torch.nn.MaxPool2d(2)
    params = [torch.nn.Parameter(torch.rand(ELEMENTS // 4))]
    params[0].grad = torch.rand(ELEMENTS // 4)
    adam = torch.optim.Adam(params, lr=1e-3, fused=True)
    adam.step()  # the moments exist from here on
    return {
        "ReLU, out of place": ("an activation layer", 8 * ELEMENTS, lambda: torch.clamp_min(x, 0, out=out)),
        "2x2 max-pool forward, channels_last": (
            "a pool layer in inference",
            4 * images.numel() * 5 // 4,
            lambda: pool(images),
        ),
        "fused Adam step": ("the optimizer entry", ADAM_BYTES * params[0].numel(), adam.step),
    }


def calibrate(bandwidth: float) -> pd.DataFrame:
    rows, work = [], passes()
    best = {name: float("inf") for name in [*work, "triad"]}
    for _ in range(ROUNDS):  # in turn, so a slow spell falls on all of them
        for name, (_, _, fn) in work.items():
            fn()
            best[name] = min(best[name], timed(fn, "cpu")[1])
        best["triad"] = min(best["triad"], 1 / triad_bandwidth_gbs("cpu", seconds=0.2))
    bandwidth = max(bandwidth, 1 / best["triad"])  # the best the triad did, here or in the probe
    for name, (stands_for, moved, _) in work.items():
        bound_s = moved / (bandwidth * 1e9)
        rows.append(
            {
                "pass": name,
                "stands for": stands_for,
                "MiB counted": round(moved / 2**20),
                "best s": round(best[name], 4),
                "bound s": round(bound_s, 4),
                "of its bound": pct(bound_s / best[name]),
                f"within {FACTOR:g}x": "yes" if bound_s / best[name] >= 1 / FACTOR else "no",
            }
        )
    return pd.DataFrame(rows)


def cases(path: str) -> pd.DataFrame:
    f = load_results([path]).frame
    f = f[f["operation"].isin(["train", "infer"]) & (f["variant"] == "tuned") & (f["loader"] == "resident")]
    table = f[
        [
            "operation",
            "model",
            "batch_size",
            "precision",
            "samples_per_second",
            "attainable",
            "attainable_fraction",
            "bound_by",
        ]
    ].sort_values(["operation", "model", "batch_size", "precision"])

    def count(x) -> str:
        return "" if pd.isna(x) else f"{x:,.0f}"

    return table.assign(
        attainable=table["attainable"].map(count), attainable_fraction=table["attainable_fraction"].map(pct)
    ).rename(
        columns={
            "batch_size": "batch",
            "samples_per_second": "images/s",
            "attainable": "attainable images/s",
            "attainable_fraction": "of attainable",
            "bound_by": "bound by",
        }
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--machine-label", required=True)
    p.add_argument("--results", required=True, help="this machine's result file")
    p.add_argument("--out", default="results/fast/roofline.md", help="the markdown file to write")
    args = p.parse_args()
    tune_malloc()  # as the suite runs: freed memory kept, so a pass pays no page faults
    ceilings = probe({"cpu": ("fp32",)})
    peak, bandwidth = ceilings["peak_gflops"]["cpu_fp32"], ceilings["bandwidth_gbs"]["cpu"]
    table = calibrate(bandwidth)
    tuned = cases(args.results)
    lines: list[str] = []
    say = lines.append
    say("# The roofline on this machine\n")
    say(
        f"Made by `python experiments/roofline.py --machine-label {args.machine_label} --results "
        f"{args.results} --out {args.out}` on {args.machine_label}, {time.strftime('%Y-%m-%d')}, "
        f"{torch.get_num_threads()} torch threads. Probes here: {peak:,.1f} GFLOP/s fp32 matmul, "
        f"{bandwidth:,.1f} GB/s triad.\n"
    )
    say("## Memory-bound passes against their bound\n")
    say(
        f"Each pass far beyond the last-level cache, best of {ROUNDS} rounds taken in turn with the triad; "
        "bytes as `mnist_models/reporting/roofline.py` counts the layer the pass stands for. The stated "
        f"factor: a pass reaches at least 1/{FACTOR:g} of its bound.\n"
    )
    say(md_table(table))
    say(
        "\nThe triad is counted as STREAM counts it, 12 bytes an element, though the cache reads each "
        "line of its destination before writing it: a pass that writes in place (the Adam step) moves "
        "no such extra line, and can pass 100% of a bound set by the triad."
    )
    say(f"\n## Tuned cases against their attainable bound ({args.results})\n")
    say(
        "The file's own probes set each bound (the report's `of attainable`). A cache that keeps a "
        "small batch's activations between layers moves less than the roofline counts, so a share "
        "above 100% is possible there.\n"
    )
    say(md_table(tuned))
    under = tuned[tuned["of attainable"].map(lambda s: bool(s) and float(s.rstrip("%")) < 50)]
    say(
        f"\n{len(under)} of {len(tuned)} tuned cases run under half of their bound"
        + (
            ": " + ", ".join(f"{r.operation} {r.model} bs{r.batch} {r.precision}" for r in under.itertuples()) + "."
            if len(under)
            else "."
        )
    )
    write_files({Path(args.out): ("\n".join(lines) + "\n").encode()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
