"""Hardware classes: two VMs of one CPU model differ by up to 2x, so "is a Zen 5 faster than a
Xeon with AMX?" is answered over every file of each class, with the spread between its VMs,
not by whichever VM each file came from.

    table = scores(frame)
    classes(table, results.machines)       # a row per class: files, median, lowest, highest
    class_verdicts(classes(...))           # each class beside the next one down

A class is the CPU's vendor, family, model and stepping, the ISA flags machines differ by and
the vCPU count (or the accelerator's name and count). No torch here.
"""

from __future__ import annotations

import pandas as pd

UNKNOWN_SPREAD = "one VM: the spread between VMs is unknown"


ISA = (
    ("amx_bf16", "AMX"),
    ("avx512_bf16", "AVX-512 BF16"),
    ("avx512f", "AVX-512"),
    ("sve", "SVE"),
    ("bf16", "Arm BF16"),
    ("avx2", "AVX2"),
)  # the widest unit a class has names it


def _vendor(facts: dict) -> str:
    vendor = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(facts.get("cpu_vendor") or "")
    model = facts.get("cpu_model") or ""
    return vendor or next((v for v in ("Intel", "AMD", "Apple", "ARM") if v.lower() in model.lower()), model or "?")


def hardware_class(facts: dict, device: str) -> str:
    """The class of a machine's device, in words: "Intel 6-167-1 AMX, 2 vCPU"."""
    if device != "cpu":
        return f"{facts.get('accelerator_count') or 1}x {facts.get('accelerator_name') or device}"
    flags = set(facts.get("cpu_flags") or [])
    isa = next((name for flag, name in ISA if flag in flags), "no vector flags recorded")
    cpu = "-".join(str(facts.get(k)) for k in ("cpu_family", "cpu_model_number", "cpu_stepping"))
    return f"{_vendor(facts)} {cpu} {isa}, {facts.get('logical_cores')} vCPU"


def with_classes(table: pd.DataFrame, machines: dict[str, dict]) -> pd.DataFrame:
    """The score table with each row's hardware class."""
    return table.assign(
        hardware=[hardware_class(machines.get(m, {}), d) for m, d in zip(table["machine"], table["device"])]
    )


def classes(table: pd.DataFrame, machines: dict[str, dict]) -> pd.DataFrame:
    """A row per workload version, device and hardware class of the complete, ranked
    entries: how many files, their median score, the lowest and highest, and each machine in
    its place (first the fastest)."""
    ranked = with_classes(table[table["ranked"] & ~table["partial"]], machines)
    rows = []
    for (version, device, hardware), part in ranked.groupby(["version", "device", "hardware"], sort=False):
        part = part.sort_values("score", ascending=False)
        places = ", ".join(f"{i}. {m} ({s:,.0f})" for i, (m, s) in enumerate(zip(part["machine"], part["score"]), 1))
        rows.append(
            {
                "workload": f"v{version}",
                "device": device,
                "class": hardware,
                "files": len(part),
                "median": float(part["score"].median()),
                "lowest": float(part["score"].min()),
                "highest": float(part["score"].max()),
                "low": float(part["low"].min()),
                "high": float(part["high"].max()),
                "machines": places,
            }
        )
    out = pd.DataFrame(
        rows, columns=["workload", "device", "class", "files", "median", "lowest", "highest", "low", "high", "machines"]
    )
    return out.sort_values(["workload", "median"], ascending=[False, False], ignore_index=True)


def class_verdicts(found: pd.DataFrame) -> pd.DataFrame:
    """Each class beside the next one down in its version: faster only where every VM of it
    scored above every VM of the other (the intervals' outer ends, where a class has one file);
    with one file a class's spread between VMs is unknown, and the verdict says so."""
    rows = []
    for _, part in found.groupby("workload", sort=False):
        part = part.reset_index(drop=True)
        for i, r in part.iterrows():
            below = part.iloc[i + 1] if i + 1 < len(part) else None
            verdict = "" if below is None else _verdict(r, below)
            rows.append(
                {
                    "workload": r["workload"],
                    "class": r["class"],
                    "files": r["files"],
                    "median score": f"{r['median']:,.0f}",
                    "lowest - highest": _range(r),
                    "next class down": verdict,
                }
            )
    return pd.DataFrame(
        rows, columns=["workload", "class", "files", "median score", "lowest - highest", "next class down"]
    )


def _range(r) -> str:
    if r["files"] == 1:
        return f"{r['lowest']:,.0f} ({UNKNOWN_SPREAD})"
    return f"{r['lowest']:,.0f} - {r['highest']:,.0f}"


def _verdict(r, below) -> str:
    ours = r["low"] if r["files"] == 1 else r["lowest"]
    theirs = below["high"] if below["files"] == 1 else below["highest"]
    one = sum(c["files"] == 1 for c in (r, below))
    note = "" if not one else " (one VM each: spread unknown)" if one == 2 else " (one has one VM: its spread unknown)"
    if ours > theirs:
        return f"faster than {below['class']} ({r['median'] / below['median']:.2f}x by the medians){note}"
    return f"not distinguishable from {below['class']} across their VMs{note}"
