"""index.html: the report as one self-contained page, opened from disk with no network and no
server. Figures are matplotlib's own SVG, inline (text kept as text); tables are HTML; no
script runs, and the page's Content-Security-Policy forbids every request, so nothing can
leave the file even if a string from a result file tried.

    html = render_page(results, scores(results.frame), steps(results.frame))

Every number drawn is also in a table. Strings from files are escaped (pandas' to_html, and
html.escape for the rest; bidirectional controls shown as escapes, markdown.visible). No torch here.
"""

from __future__ import annotations

import html
import io

import pandas as pd

from . import plots
from .classes import class_verdicts, classes, with_classes
from .history import Step, series, undecided
from .markdown import visible
from .plots import plt
from .results import Results
from .score import TOLERANCE, accelerator_over_cpu, leaderboard, reference_path
from .tables import machine_matrix, machine_table, scaling_table, speedup_table, tta_table

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
.note{color:#555;max-width:60em}
figure{margin:.5em 0}svg{max-width:100%;height:auto}"""


def _svg(fig) -> str:
    """A matplotlib figure as inline SVG, its text kept as text (readable, searchable); closed."""
    if fig is None:
        return ""
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return f"<figure>{text[text.index('<svg') :]}</figure>"


def _table(frame: pd.DataFrame, id_: str = "") -> str:
    if frame is None or frame.empty:
        return "<p class='note'>(none)</p>"
    return frame.to_html(
        index=False, escape=True, na_rep="", float_format=lambda x: f"{x:,.4g}", border=0, table_id=id_ or None
    )


def _section(title: str, *parts: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n" + "\n".join(p for p in parts if p)


def _note(text: str) -> str:
    return f"<p class='note'>{html.escape(text)}</p>"


def score_axis(ax) -> None:
    """A score's x axis: log scale, labelled in whole scores at its 1s, 2s and 5s."""
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(plots.matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.xaxis.set_minor_formatter(
        plots.matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}" if str(int(x))[0] in "25" else "")
    )


def leaderboard_figure(table: pd.DataFrame):
    """Each machine and device's score as a point on its 95% interval, best at the top (log
    scale): a panel per workload version, each version's scores against its own reference, so
    that no axis sets one version beside another."""
    table = table[table["ranked"]]
    if table.empty:
        return None
    parts = [(v, part.iloc[::-1]) for v, part in table.groupby("version", sort=False)]
    fig, axes = plt.subplots(
        len(parts),
        squeeze=False,
        sharex=True,  # one scale, so that a short interval looks short; each panel its own reference
        figsize=(9, 0.45 * len(table) + 1.3 * len(parts)),
        gridspec_kw={"height_ratios": [len(t) + 1 for _, t in parts]},
    )
    for ax, (version, t) in zip(axes[:, 0], parts):
        labels = [
            plots._label([m, d, "(partial)" if p else ""]) for m, d, p in zip(t["machine"], t["device"], t["partial"])
        ]
        y = range(len(t))
        ax.errorbar(
            t["score"],
            y,
            xerr=[t["score"] - t["low"], t["high"] - t["score"]],
            fmt="o",
            capsize=4,
            color="#1f77b4",
            ecolor="#555",
        )
        for yi, (s, hi) in zip(y, zip(t["score"], t["high"])):
            ax.annotate(f"{s:,.0f}", (hi, yi), xytext=(6, 0), textcoords="offset points", va="center", fontsize=9)
        ax.set_yticks(list(y), labels)
        ax.set_ylim(-0.7, len(t) - 0.3)
        score_axis(ax)
        ax.axvline(1000, color="grey", lw=0.8, ls="--")
        ax.set_title(f"workload v{version}: ranked only among its own files", fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3, which="both")
    axes[-1, 0].set_xlabel("score (its version's reference machine = 1000; double is twice as fast), 95% interval")
    fig.suptitle("Leaderboard")
    fig.tight_layout()
    return fig


def class_figure(found: pd.DataFrame, table: pd.DataFrame, machines: dict):
    """Each hardware class's files as dots on the range between its lowest and highest score,
    its median marked, best at the top (log scale), one row a class and workload version."""
    if found.empty:
        return None
    ranked = with_classes(table[table["ranked"] & ~table["partial"]], machines)
    rows = found.iloc[::-1].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.3))
    for y, r in rows.iterrows():
        mine = ranked[(ranked["hardware"] == r["class"]) & (("v" + ranked["version"].astype(str)) == r["workload"])]
        ax.hlines(y, r["lowest"], r["highest"], color="#1f77b4", lw=6, alpha=0.35)
        ax.plot(mine["score"], [y] * len(mine), "o", color="#1f77b4")
        ax.plot([r["median"]], [y], "|", color="black", ms=16, mew=2)
        ax.annotate(
            f"{r['files']} file{'s' * (r['files'] != 1)}",
            (r["highest"], y),
            xytext=(8, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
        )
    ax.set_yticks(list(range(len(rows))), [plots._label([r["workload"], r["class"]]) for _, r in rows.iterrows()])
    score_axis(ax)
    ax.set(xlabel="score of each file (dots), the class's range (bar) and median (tick)", title="Hardware classes")
    ax.grid(axis="x", alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def trend_figure(frame: pd.DataFrame):
    """Images/s against commit order for up to four cases, a line per machine label."""
    s = series(frame)
    if s.empty:
        return None
    cases = list(dict.fromkeys(s["case"]))[: plots.MAX_PANELS]
    fig, axes = plt.subplots(1, len(cases), figsize=(4.5 * len(cases), 3.8), squeeze=False)
    for ax, case in zip(axes[0], cases):
        for label, line in s[s["case"] == case].groupby("label", sort=False):
            ax.plot(range(len(line)), line["samples_per_second"], marker="o", label=plots._text(label))
            ax.set_xticks(range(len(line)), [str(c)[:7] for c in line["commit"]], rotation=45, fontsize=7)
        ax.set(title=plots._text(case), xlabel="commit (run order)", ylabel="images / s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _no_step(frame: pd.DataFrame) -> str:
    """What the trends say when no step was found: where the rounds were too few to tell, that."""
    blind = undecided(frame)
    why = "too few rounds to tell a step from the noise (mnist-bench history lists them)"
    return "No step change found." + (f" {len(blind)} series undecided: {why}." if blind else "")


def render_page(results: Results, table: pd.DataFrame, found: list[Step], baseline: str | None = None) -> str:
    """The whole index.html."""
    f = results.frame
    ranks, speedups, scaling = leaderboard(table), speedup_table(f), scaling_table(f)
    left = pd.DataFrame(
        [
            {"workload": f"v{r['version']}", "machine": r["machine"], "device": r["device"], "case left out": why}
            for _, r in table.iterrows()
            for why in (r["left_out"] if isinstance(r["left_out"], list) else [])
        ]
    )
    moved = pd.DataFrame(
        [
            {
                "workload": f"v{r['version']}",
                "machine": r["machine"],
                "device": r["device"],
                "what the run saw": r["note"],
            }
            for _, r in table.iterrows()
            if r["note"]
        ]
    )
    found_classes = classes(table, results.machines)
    references = ", ".join(
        f"v{v}: {p.stem}" for v in sorted(set(table["version"]), reverse=True) if (p := reference_path(v)) is not None
    )
    matrix = machine_matrix(f, baseline)
    speeds = (
        matrix[[c for c in matrix.columns if not c.endswith(tuple(f" vs {m}" for m in results.machines))]]
        if len(matrix)
        else f[["case", "samples", "machine", "samples_per_second"]]
    )
    steps = pd.DataFrame(
        [
            {
                "commit": s.commit,
                "machine": s.machine,
                "case": s.case,
                "change": f"{s.change:+.1%}",
                "after": s.before,
                "p": f"{s.p:.2g}",
                "rounds before": s.rounds[0],
                "rounds after": s.rounds[1],
            }
            for s in found
        ]
    )
    body = [
        "<h1>mnist-bench: which machine is faster</h1>",
        _note(
            "Score: 1000 x the geometric mean, over a frozen reference set of cases, of each device's speed "
            f"over its workload version's reference machine ({references}) on the same case; double the "
            "score, twice as fast. Files are ranked only beside files of the same workload version (what "
            "each case times, frozen per version); older versions are shown under their own. The 95% "
            "interval covers the machine's own drift during the run: a run of interleaved passes (run "
            "--score) takes each pass as one score and half their range; a run of consecutive rounds is "
            "resampled and widened by how far a sentinel timed between cases moved. Two entries whose "
            f"intervals overlap are not distinguishable. A bf16 case counts only where bf16 training kept "
            f"its accuracy within {TOLERANCE:.1%} of fp32's; a partial entry is never ranked as complete."
        ),
        _section(
            "Leaderboard",
            _svg(leaderboard_figure(table)),
            _table(ranks, "leaderboard"),
            _table(moved, "moved") if len(moved) else "",
            f"<details><summary>Cases left out of a score ({len(left)})</summary>{_table(left)}</details>"
            if len(left)
            else "",
        ),
        _section(
            "Hardware classes",
            _note(
                "Files grouped by CPU vendor, family, model and stepping, its widest vector unit and the "
                "vCPU count (or the accelerator and its count). Two VMs of one class can differ by 2x, so "
                "one class is faster than the next only where every VM of it scored above every VM of the "
                "other; a class with one file says that the spread between its VMs is unknown."
            ),
            _svg(class_figure(found_classes, table, results.machines)),
            _table(class_verdicts(found_classes), "classes"),
            _table(found_classes[["workload", "device", "class", "files", "machines"]]) if len(found_classes) else "",
        ),
        _section(
            "Accelerator over CPU (Q7)",
            *(
                [_table(accelerator_over_cpu(table)), _table(speedups)]
                if len(speedups)
                else [_note("No file here holds both cpu and accelerator results for the same case.")]
            ),
        ),
        _section("Machines", _table(machine_table(results), "machines")),
        _section("Images per second, by batch size and machine", _svg(plots.throughput_vs_batch(f)), _table(speeds)),
        _section("Time to accuracy", _table(tta_table(f).astype({"reached": str, "epochs_to_target": str}))),
        _section("Data-parallel scaling", _svg(plots.scaling(scaling)), _table(scaling)),
    ]
    if not series(f).empty:
        body.append(
            _section(
                "Trends across commits",
                _svg(trend_figure(f)),
                _table(steps) if len(steps) else _note(_no_step(f)),
            )
        )
    if results.problems or results.notes:
        body.append(
            _section(
                "Files and entries passed over",
                "<ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in [*results.problems, *results.notes]) + "</ul>",
            )
        )
    return visible(  # a bidirectional control from a file, anywhere on the page, shown as its escape
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>mnist-bench report</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
