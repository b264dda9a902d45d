"""The ablate command's output: ablation.json and fast.md, the five speed targets beside
their goals and every comparison's table, from an ablation run (ablation.py) and a
benchmark file.

    python -m mnist_models ablate --out results/fast --bench results/epyc-2core.json

The targets name the comparisons and variants they read by the objects in ablation.py,
so renaming one renames it here too. No torch here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import EXIT_OK, UsageError
from ..files import json_bytes, write_files
from ..machine.process import tune_malloc
from ..reporting.markdown import md_table, pct
from ..reporting.results import Results, load_results
from .ablation import (
    BF16_TUNED,
    CNN_BF16,
    CNN_FP32,
    CNN_INFER,
    INFER_BF16_TUNED,
    MLP_BS64,
    MLP_PRECISION_PAIRS,
    Comparison,
    ablate,
)
from .cases import BenchOptions


def ablation_frame(doc: dict) -> pd.DataFrame:
    """An ablation run's records, with each variant's speed relative to its baseline.

    `speedup` divides medians; `best speedup` divides each variant's quickest round, which
    a shared machine's slow spells (they only ever add time) cannot reach.
    """
    f = pd.DataFrame(doc["records"])
    f["best"] = f["data"].map(min)
    base = f[f["variant"] == f["baseline"]].set_index("comparison")
    f["speedup"] = f["comparison"].map(base["median"]) / f["median"]
    f["best speedup"] = f["comparison"].map(base["best"]) / f["best"]
    peaks = doc["machine"].get("peak_gflops", {})
    share = [g / peaks[f"cpu_{p}"] if peaks.get(f"cpu_{p}") else None for g, p in zip(f["gflops"], f["precision"])]
    f["of peak"] = [x if x is not None and x <= 1 else None for x in share]  # above the probe: the probe is wrong
    return f


# What a bf16 path on the cpu must reach against today's tuned one, by the cpu's class
# (a matrix engine, else AVX-512 bf16); a cpu that emulates bf16 has no goal
BF16_GOALS = (("amx_bf16", "a matrix engine (AMX)", 2.0), ("avx512_bf16", "AVX-512 bf16", 1.3))
INFER_GOALS = (("amx_bf16", "a matrix engine (AMX)", 3.0),)  # the same for bf16 CNN inference
TTA_GOALS = {"cnn": 3.0, "mlp": 0.5}  # seconds to each recipe's target, the median of its seeds


def targets(ablation: pd.DataFrame, bench: pd.DataFrame, flags=()) -> pd.DataFrame:
    """The speed targets: measured value beside its goal, and whether it was met (a target
    whose comparison or case the run left out is left out too). `flags`: the cpu's flags
    (machine facts' cpu_flags), which set the bf16 goals."""

    def best(comparison: Comparison, precision: str = "fp32", by: str = "speedup") -> pd.Series:
        part = ablation[(ablation["comparison"] == comparison.name) & (ablation["precision"] == precision)]
        return part.loc[part[by].idxmax()]

    def rounds(comparison: Comparison) -> str:
        top = best(comparison, by="best speedup")
        return f"; best rounds {top['best speedup']:.2f}x ({top['variant']})"

    def ran(comparison: Comparison) -> bool:
        return bool((ablation["comparison"] == comparison.name).any())

    rows = []
    if ran(MLP_BS64):
        mlp = best(MLP_BS64)
        rows.append(
            (
                "1. MLP bs64 training vs the seed loop",
                f"{mlp['speedup']:.2f}x ({mlp['variant']}){rounds(MLP_BS64)}",
                "10x (8x at least)",
                mlp["speedup"] >= 10,
                mlp["speedup"] >= 8,
            )
        )
    if ran(CNN_FP32):
        cnn = best(CNN_FP32)
        rows.append(
            (
                "2. CNN bs256 fp32 vs plain NCHW loop",
                f"{cnn['speedup']:.2f}x ({cnn['variant']}, {cnn['of peak']:.0%} of fp32 peak){rounds(CNN_FP32)}",
                "1.4x",
                cnn["speedup"] >= 1.4,
                cnn["speedup"] >= 1.4,
            )
        )
    if ran(CNN_BF16):
        bf = ablation[ablation["comparison"] == CNN_BF16.name].set_index("variant")
        fp32, bf16 = bf.loc[CNN_BF16.baseline], bf.loc[BF16_TUNED.name]
        bf16_met = bf16["speedup"] >= 1.5 and abs(bf16["test_accuracy"] - fp32["test_accuracy"]) <= 0.003
        rows.append(
            (
                "3. CNN bf16 vs fp32 (test acc after one epoch)",
                f"{bf16['speedup']:.2f}x, {bf16['test_accuracy']:.2%} vs {fp32['test_accuracy']:.2%}; "
                f"best rounds {bf16['best speedup']:.2f}x",
                "1.5x, within 0.3 pts",
                bf16_met,
                bf16_met,
            )
        )
    tta = bench[(bench["operation"] == "tta") & (bench["model"] == "cnn") & (bench["device"] == "cpu")]
    if len(tta):
        t = tta.iloc[0]
        every = all(t["reached"])
        rows.append(
            (
                "4. CNN time to 99.0% on cpu (median of seeds)",
                f"{t['median']:.1f} s, {sum(t['reached'])}/{len(t['reached'])} seeds reached",
                "15 s (30 s at most), every seed",
                every and t["median"] <= 15,
                every and t["median"] <= 30,
            )
        )
    overhead = bench["harness_overhead_fraction"].max()
    rows.append(("5. harness overhead, worst case", f"{overhead:.4%}", "< 1%", overhead < 0.01, overhead < 0.01))
    rows += _bf16_rows(ablation, flags) + _tta_row(bench) + _attainable_row(bench)
    rows.sort(key=lambda row: int(row[0].split(".")[0]))
    out = pd.DataFrame(rows, columns=["target", "measured", "goal", "met", "minimum met"])
    out["verdict"] = np.where(out["met"], "met", np.where(out["minimum met"], "minimum met", "missed"))
    return out.drop(columns=["met", "minimum met"])


def _quickest_other(
    ablation: pd.DataFrame, comparison: Comparison, tuned: str, goals, flags, target: str
) -> list[tuple]:
    """The quickest other bf16 path of `comparison` against today's tuned one (`tuned`), with
    the goal of the cpu's class in `goals` (none: no row)."""
    goal = next(((what, x) for flag, what, x in goals if flag in set(flags)), None)
    baseline = _median(ablation, comparison, tuned)
    others = ablation[
        (ablation["comparison"] == comparison.name) & (ablation["precision"] == "bf16") & (ablation["variant"] != tuned)
    ]
    if goal is None or baseline is None or others.empty:
        return []
    top = others.loc[others["median"].idxmin()]
    x = baseline / top["median"]
    return [(f"{target}, on {goal[0]}", f"{x:.2f}x ({top['variant']})", f"{goal[1]:g}x", x >= goal[1], x >= goal[1])]


def _median(ablation: pd.DataFrame, comparison: Comparison, variant: str) -> float | None:
    part = ablation[(ablation["comparison"] == comparison.name) & (ablation["variant"] == variant)]
    return float(part["median"].iloc[0]) if len(part) else None


def _bf16_rows(ablation: pd.DataFrame, flags) -> list[tuple]:
    """6: the quickest other bf16 CNN training path against today's tuned one; 7: the MLP's
    bf16 against its fp32 at each batch size the run compared; 10: the quickest other bf16
    CNN inference path against today's tuned one. Only where bf16 is native."""
    if not any(flag in set(flags) for flag, _, _ in BF16_GOALS):
        return []
    rows = _quickest_other(
        ablation, CNN_BF16, BF16_TUNED.name, BF16_GOALS, flags, "6. CNN bs256 bf16 training vs today's tuned bf16"
    )
    ratios = [
        (a.case.batch_size, fp32 / bf16)
        for comp, a, b in MLP_PRECISION_PAIRS
        if (fp32 := _median(ablation, comp, a.name)) is not None
        and (bf16 := _median(ablation, comp, b.name)) is not None
    ]
    if ratios:
        every = all(x >= 1 for _, x in ratios)
        rows.append(
            (
                "7. MLP bf16 vs fp32 training, per batch size",
                ", ".join(f"bs{bs} {x:.2f}x" for bs, x in ratios),
                "1.0x at each, or bf16 left out there",
                every,
                every,
            )
        )
    return rows + _quickest_other(
        ablation, CNN_INFER, INFER_BF16_TUNED, INFER_GOALS, flags, "10. CNN bs256 bf16 inference vs today's tuned bf16"
    )


def _tta_row(bench: pd.DataFrame) -> list[tuple]:
    """8: each model's time to accuracy on the cpu against the issue's goals."""
    tta = bench[(bench["operation"] == "tta") & (bench["device"] == "cpu")].set_index("model")
    models = [m for m in TTA_GOALS if m in tta.index]
    if not models:
        return []
    met = all(all(tta.loc[m, "reached"]) and tta.loc[m, "median"] <= TTA_GOALS[m] for m in models)
    measured = ", ".join(
        f"{m.upper()} {tta.loc[m, 'median']:.2f} s ({sum(tta.loc[m, 'reached'])}/{len(tta.loc[m, 'reached'])} seeds)"
        for m in models
    )
    goal = ", ".join(f"{m.upper()} {TTA_GOALS[m]:g} s" for m in models) + ", every seed"
    return [("8. time to accuracy on cpu (median of seeds)", measured, goal, met, met)]


def _attainable_row(bench: pd.DataFrame) -> list[tuple]:
    """9: the tuned cpu cases' share of their roofline bound (files with a bandwidth probe)."""
    if "attainable_fraction" not in bench:
        return []
    tuned = bench[(bench["device"] == "cpu") & (bench["variant"] == "tuned") & bench["attainable_fraction"].notna()]
    if tuned.empty:
        return []
    low = tuned.loc[tuned["attainable_fraction"].idxmin()]
    at_half = int((tuned["attainable_fraction"] >= 0.5).sum())
    every = at_half == len(tuned)
    return [
        (
            "9. tuned cpu cases at 50% of their attainable bound",
            f"{at_half} of {len(tuned)}; lowest {low['case']} at {low['attainable_fraction']:.0%}",
            "every one, or the reason measured",
            every,
            every,
        )
    ]


ROUND = {
    "train": "one training epoch of {:,} images",
    "infer": "one pass over the {:,} test images in an inference comparison",
}


def render_fast(doc: dict, bench: Results | None, command: str) -> str:
    """fast.md: the targets, then every comparison's table."""
    f = ablation_frame(doc)
    ops = f["operation"] if "operation" in f else pd.Series("train", index=f.index)  # older files: training only
    each = " and ".join(ROUND[op].format(int(part["samples"].iloc[0])) for op, part in f.groupby(ops, sort=False))
    parts = [
        "# Fast: side-by-side measurements",
        "",
        f"Made by `{command}` on "
        f"{doc['machine'].get('label')} ({doc['machine'].get('cpu_model')}, "
        f"{doc['machine'].get('physical_cores')} cores); {doc['rounds']} interleaved rounds "
        f"per variant after one cold round, a round being {each}, from a fresh model. "
        "Ratios are taken within a comparison, never across: `speedup` "
        "divides medians (the verdicts use it), `best speedup` each variant's quickest round, "
        "which this VM's slow spells, adding time to whole rounds, do not reach.",
        "",
    ]
    if bench is not None and not bench.frame.empty:
        parts += ["## Targets", "", md_table(targets(f, bench.frame, doc["machine"].get("cpu_flags", ()))), ""]
    for name, part in f.groupby("comparison", sort=False):
        table = part[
            [
                "variant",
                "threads",
                "median",
                "samples_per_second",
                "speedup",
                "of peak",
                "best",
                "best speedup",
                "test_accuracy",
            ]
        ].rename(
            columns={
                "median": "epoch s" if ops[part.index[0]] == "train" else "pass s",
                "samples_per_second": "images/s",
                "best": "best round s",
                "test_accuracy": "test acc",
            }
        )
        table = table.assign(
            **{
                "of peak": table["of peak"].map(pct),
                "test acc": table["test acc"].map(pct),
                "speedup": table["speedup"].map("{:.2f}x".format),
                "best speedup": table["best speedup"].map("{:.2f}x".format),
            }
        )
        parts += [f"## {name} (relative to {part.iloc[0]['baseline']})", "", md_table(table), ""]
    return "\n".join(parts)


@dataclass(frozen=True)
class AblateOptions:
    """The ablate command's choices."""

    out: Path  # the folder for ablation.json and fast.md
    rounds: int = 5  # interleaved rounds per variant
    bench: tuple[str, ...] = ()  # benchmark result files for the time-to-accuracy and overhead targets
    bench_opts: BenchOptions = field(default_factory=BenchOptions)  # quick, label, root
    command: str = "python -m mnist_models ablate"  # what made the run, quoted in fast.md
    comparisons: tuple[str, ...] = ()  # the comparisons to run, by name (empty: all)


def ablate_and_save(opts: AblateOptions, say: Callable[[str], None] = print) -> int:
    """Every comparison of the ablation, then ablation.json and fast.md together."""
    tune_malloc()  # before any tensor: freed memory kept for the next step
    bench = load_results(opts.bench) if opts.bench else None
    if bench is not None and bench.problems:
        raise UsageError("; ".join(bench.problems))
    if bench is not None and len(bench.machines) > 1:  # before the rounds: the targets are one machine's
        raise UsageError(
            f"--bench files come from {len(bench.machines)} machines ({', '.join(bench.machines)}); "
            "pass the files of the machine the ablation runs on"
        )

    def progress(comparison: str, rnd: int, variant: str) -> None:
        say(f"{comparison}: round {rnd}{' (cold)' if rnd == 0 else ''}: {variant}")

    doc = ablate(opts.bench_opts, opts.rounds, progress, opts.comparisons)
    write_files(
        {
            opts.out / "ablation.json": json_bytes(doc),
            opts.out / "fast.md": render_fast(doc, bench, opts.command).encode(),
        }
    )
    say(f"wrote {opts.out / 'ablation.json'} and {opts.out / 'fast.md'}")
    return EXIT_OK
