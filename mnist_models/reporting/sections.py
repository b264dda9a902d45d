"""The report's section for each operation (report.md): the built-in operations' own, and a
plain table of time and throughput for any other operation declared in fields.OPERATIONS,
so an operation added there shows up without an edit here.

    "\n".join(operation_sections(results))

No torch here.
"""

from __future__ import annotations

from collections.abc import Callable

from .fields import OPERATIONS
from .markdown import escape, md_table, pct
from .results import Results
from .tables import infer_table, operation_table, scaling_table, train_table, tta_table

ROOFLINE = (
    "`of attainable`: images/s over the roofline's, in which each layer takes the longer of "
    "its FLOPs at the matmul probe and its bytes at the triad bandwidth probe (reporting/roofline.py "
    "says what is counted); `bound by`: the layer that takes most of that time, and which side "
    "bounds it. A cache that keeps a small batch between layers can pass 100%. `no bandwidth probe`: "
    "a file whose run made no bandwidth probe (made before it was recorded)."
)


def _train(results: Results) -> list[str]:
    f, parts = results.frame, []
    over = sorted(set(f.loc[f["peak_over"], "machine"] + " " + f.loc[f["peak_over"], "case"]))
    note = (
        " Left blank where a case would exceed 100% of its probe, which cannot be: the probe "
        f"or the file's FLOP count is wrong there ({escape(', '.join(over))})."
        if over
        else ""
    )
    train = train_table(f)
    train = train.assign(
        **{
            "of peak": [pct(x) + ("*" if f.loc[i, "flops_3x"] else "") for i, x in zip(train.index, train["of peak"])],
            "of attainable": train["of attainable"].map(pct),
            "test acc": train["test acc"].map(pct),
        }
    )
    old_rule = (
        " `*`: a file made before `flops_per_sample` was recorded, whose count took every "
        "layer's backward as twice its forward: 1.5x too many FLOPs for the MLP, whose first "
        "layer needs no input gradient, 1.03x for the CNN."
        if f["flops_3x"].any()
        else ""
    )
    parts += [
        "## Training: one epoch",
        "",
        "`of peak`: achieved GFLOP/s over the machine's matmul "
        "probe in the same precision; a training step counts the forward pass, every layer's "
        "weight gradient and every input gradient but the first layer's (`flops_per_sample`)."
        + old_rule
        + " `(emulated)`: bf16 on a device without bf16 instructions, run because "
        "it was asked for." + note + " " + ROOFLINE,
        "",
        md_table(train),
        "",
    ]
    return parts


def _infer(results: Results) -> list[str]:
    f, parts = results.frame, []
    parts += [
        "## Inference: the test set",
        "",
        ROOFLINE,
        "",
        md_table(
            infer_table(f).assign(
                **{"of peak": lambda d: d["of peak"].map(pct), "of attainable": lambda d: d["of attainable"].map(pct)}
            )
        ),
        "",
    ]
    return parts


def _scaling(results: Results) -> list[str]:
    f, parts = results.frame, []
    scaling = scaling_table(f)
    if len(scaling):
        parts += [
            "## Data-parallel scaling",
            "",
            "One epoch of every image across the ranks (DDP; gloo "
            "on the cpu, nccl on cuda), the slowest rank's time. `strong`: the global batch fixed "
            "and split across the ranks; `weak`: each rank's batch fixed. `efficiency`: images/s over "
            "ranks x one rank's images/s (same batch and threads per rank); one rank with 2 threads "
            "is there to show what two ranks cost against two threads. `all-reduce share`: steps x "
            "one isolated all-reduce of the gradient over the epoch time, an upper bound of the "
            "communication DDP could not hide behind the backward pass.",
            "",
            md_table(
                scaling.assign(
                    **{
                        "efficiency": scaling["efficiency"].map(pct),
                        "all-reduce share": scaling["all-reduce share"].map(pct),
                    }
                )
            ),
            "",
        ]
    return parts


def _tta(results: Results) -> list[str]:
    f, parts = results.frame, []
    tta = tta_table(f)
    without = [m for m in results.machines if m not in set(tta["machine"])]
    parts += ["## Time to accuracy", "", md_table(tta), ""]
    parts += [f"Not run on {escape(', '.join(without))}.", ""] if without and len(tta) else []
    return parts


def _plain(results: Results, name: str) -> list[str]:
    """An operation without a section of its own: its time and throughput per case."""
    f, op = results.frame, OPERATIONS[name]
    if not (f["operation"] == name).any():
        return []
    table = operation_table(f, name, op.seconds, [])
    table = table.drop(columns=[c for c in ("of peak", "of attainable", "bound by") if table[c].isna().all()])
    return [f"## {escape(op.title)}", "", f"One round: {escape(op.about)}.", "", md_table(table), ""]


SECTIONS: dict[str, Callable[[Results], list[str]]] = {"train": _train, "infer": _infer, "ddp": _scaling, "tta": _tta}


def operation_sections(results: Results, names: list[str]) -> list[str]:
    """The sections of these operations, in order: each its own, or the plain one."""
    return [line for name in names for line in (SECTIONS[name](results) if name in SECTIONS else _plain(results, name))]
