"""Result files' frame -> report.md, results.csv and the figures, all or none
(results.py loads, tables.py tabulates, plots.py draws, compare.py judges).

    python -m mnist_models report results/*.json --out results/report

Every string that came from a file is escaped before it reaches markdown or a figure.
No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..files import check_not_inputs, check_writable, write_files
from . import labels
from .classes import class_verdicts, classes
from .fields import OPERATIONS
from .history import steps
from .markdown import escape, md_table
from .results import Results
from .schema import ResultError
from .score import leaderboard, scores
from .sections import SECTIONS, operation_sections
from .tables import compile_table, machine_matrix, machine_table, scaling_table, speedup_table

FIGURES = ("throughput.png", "scaling.png", "training.png", "loaders.png", "machines.png")
FILES = ("report.md", "results.csv", "index.html", *FIGURES)


def _matrix_md(matrix: pd.DataFrame, results: Results) -> str:
    """The machine matrix, a case one machine lacks said in words (and why, where bf16 is
    emulated there)."""
    cases = results.frame.drop_duplicates("case").set_index("case")

    def missing(case: str, machine: str) -> str:
        facts, row = results.machines.get(machine, {}), cases.loc[case]
        if row["precision"] == "bf16" and row["device"] == "cpu" and facts.get("cpu_bf16_native") is False:
            return "not run (bf16 emulated there)"
        return "not run"

    shown = matrix.assign(samples=matrix["samples"].map(labels.workload)).rename(columns={"samples": "workload"})
    for col in shown.columns[2:]:
        if col.endswith(" images/s"):
            machine = col.removesuffix(" images/s")
            shown[col] = [
                f"{x:,.0f}" if pd.notna(x) else missing(case, machine) for x, case in zip(shown[col], shown["case"])
            ]
        else:
            shown[col] = shown[col].map(lambda x: f"{x:.2f}x" if pd.notna(x) else "no pair")
    return md_table(shown)


def render_markdown(
    results: Results, baseline: str | None = None, plots: Sequence[str] = (), board: str | None = None
) -> str:
    """The whole report.md (`board`: the leaderboard's markdown, leaderboard_md's)."""
    f = results.frame
    parts = ["# mnist-bench report", "", "The same on one page, with the scores drawn: [index.html](index.html).", ""]
    if board is not None:
        parts += [
            "## Leaderboard",
            "",
            "Scores against the reference machine (1000; `mnist-bench score`, "
            'README "The score"); entries whose 95% intervals overlap are not distinguishable.',
            "",
            board,
            "",
        ]
    parts += ["## Machines", "", md_table(machine_table(results)), ""]
    parts += operation_sections(results, ["train", "infer"])
    speed = speedup_table(f)
    parts += [
        "## Accelerator over CPU (Q7)",
        "",
        md_table(speed) if len(speed) else "No file here holds both cpu and accelerator results for the same case.",
        "",
    ]
    parts += operation_sections(results, ["ddp"])
    compiled = compile_table(f)
    if len(compiled):
        parts += [
            "## What torch.compile buys",
            "",
            "The compiled variant (the tuned path under "
            "`torch.compile`, inductor) over the same case run eagerly, in the same file; `compile s`: "
            "what its cold round took over a timed one, which is mostly the compile.",
            "",
            md_table(
                compiled.assign(
                    **{
                        "eager images/s": compiled["eager images/s"].map("{:,.0f}".format),
                        "compiled images/s": compiled["compiled images/s"].map("{:,.0f}".format),
                        "speedup": compiled["speedup"].map("{:.2f}x".format),
                        "compile s": compiled["compile s"].map(lambda x: "" if pd.isna(x) else f"{x:.1f}"),
                    }
                )
            ),
            "",
        ]
    parts += operation_sections(results, ["tta", *[n for n in OPERATIONS if n not in SECTIONS]])
    matrix = machine_matrix(f, baseline)
    if len(matrix):
        base = baseline or f["machine"].iloc[0]
        parts += [
            "## Across machines",
            "",
            "Images per second per case, on the same workload (images "
            f"per round), and each machine's throughput over {escape(base)}'s (>1: faster). A case one "
            "machine did not run is marked `not run`; time to accuracy is compared above.",
            "",
            _matrix_md(matrix, results),
            "",
        ]
    parts += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    if results.problems or results.notes:
        parts += ["", "## Files and entries passed over", ""]
        parts += [f"- {escape(p)}" for p in [*results.problems, *results.notes]]
    return "\n".join(parts) + "\n"


def flat_csv(results: Results) -> str:
    """The frame as CSV, without the raw per-round data."""
    return results.frame.drop(columns=["data"]).to_csv(index=False)


def _baseline(results: Results, baseline: str | None) -> str | None:
    """The machine the others are compared with: checked before anything is drawn."""
    if baseline is not None and baseline not in results.machines:
        raise ResultError(f"--baseline {baseline!r} is not among the machines: {', '.join(results.machines)}")
    return baseline


def leaderboard_md(table: pd.DataFrame) -> str:
    """The leaderboard as a markdown table, for report.md and the README."""
    return md_table(leaderboard(table)) if len(table) else "(no machine ran the reference set)"


def write_report(results: Results, out: Path, baseline: str | None = None, force: bool = False) -> list[Path]:
    """report.md, results.csv, index.html and the plots into `out`, all or none; returns the
    paths written.

    Refuses, before drawing anything, an `out` that cannot be written or that holds a
    report already (unless `force`); never writes through a symlink planted there.
    """
    from . import plots  # noqa: PLC0415 (matplotlib: docs reads this module)
    from .page import render_page  # noqa: PLC0415 (matplotlib: docs reads this module)

    baseline = _baseline(results, baseline)
    check_not_inputs([out / n for n in FILES], list(results.frame["file"].unique()))
    check_writable(out, list(FILES), force)
    matrix = machine_matrix(results.frame, baseline)
    base = baseline or (results.frame["machine"].iloc[0] if len(results.frame) else None)
    drawn = {
        "throughput.png": plots.throughput_vs_batch(results.frame),
        "scaling.png": plots.scaling(scaling_table(results.frame)),
        "training.png": plots.training_bars(results.frame),
        "loaders.png": plots.loader_bars(results.frame),
        "machines.png": plots.machine_bars(matrix, base) if len(matrix) and base is not None else None,
    }
    contents = {out / name: plots.png(fig) for name, fig in drawn.items() if fig is not None}
    names = [p.name for p in contents]
    table = scores(results.frame)
    contents[out / "results.csv"] = flat_csv(results).encode()
    found = classes(table, results.machines)
    board = leaderboard_md(table) + (
        "\n\nHardware classes (every ranked file of a class; its spread is between its VMs):\n\n"
        + md_table(class_verdicts(found))
        if len(found)
        else ""
    )
    contents[out / "report.md"] = render_markdown(results, baseline, names, board).encode()
    contents[out / "index.html"] = render_page(results, table, steps(results.frame), baseline).encode()
    write_files(contents)
    return [
        out / "report.md",
        out / "results.csv",
        out / "index.html",
        *(out / n for n in names),
    ]
