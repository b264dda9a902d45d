"""How well the CI gate sees a slowdown on this machine, and how often it cries wolf: the new
gate (`mnist-bench ab` with its defaults: many short-lived processes a side, each block of
pairs its own unit) beside today's before it (commit eeea6eb: two long-lived processes a
side), on A/A comparisons and planted slowdowns; and `compare` on two real full runs.

    python experiments/ci_noise.py run --work /tmp/ci-noise          # ~3.5 h on 2 vCPUs; resumes
    python experiments/ci_noise.py run --work W --gates new --aa 1 --plants clock5   # a cut plan
    python experiments/ci_noise.py render --work /tmp/ci-noise --full A.json B.json > results/ci-noise.md

The plants go into throwaway copies of the code under --work, never into the product:
- clock +10%, +5%, +2%: every training step spins for that fraction of its own time
  afterwards, so the clock of every training case grows by exactly that much and
  inference is untouched (the control);
- instructions +2%: every training step runs a Python loop of 2% of the step's own
  instructions (sized from the first A/A run's counts, ~198 instructions an iteration).
Today's gate runs its own driver over copies of its own code (git archive of eeea6eb),
planted the same way; it counts instructions in its first A/A and its instruction plant.
`--full A B`: two back-to-back full runs (`bash bench.sh`) of the same code, read by compare
as an A/A, and A against a copy of itself whose training rounds are 15% slower.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TODAY = "eeea6eb"  # the gate before this change: two long-lived processes a side, 40 pairs
AA = 10  # A/A comparisons of each gate
CLOCK_PLANTS = {"clock10": 0.10, "clock5": 0.05, "clock2": 0.02}
INSTRUCTION_PLANT = ("instr2", 0.02)
LOOP_INSTRUCTIONS = 198  # callgrind's count per iteration of `for _ in range(n): pass` (CPython 3.11)
sys.path.insert(0, str(REPO / "tests"))
from plants import plant_copy  # noqa: E402  (the tests plant the same way)


def today_tree(work: Path) -> Path:
    """TODAY's code, archived once under work/today (its driver and the copies it compares)."""
    tree = work / "today"
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", TODAY, "mnist_models", "bench", "conftest.py", "pyproject.toml"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def copy_code(src: Path, dest: Path, clock: float = 0.0, loops: dict | None = None) -> Path:
    """A copy of the code to run as one side (made once: a rerun resumes with it)."""
    return dest if dest.exists() else plant_copy(src, dest, clock, loops)


def ab(work: Path, gate: str, name: str, base: Path, new: Path, driver: Path, counts: bool = True) -> dict:
    """One comparison by a gate's driver with its defaults; its verdicts and wall time, kept in work."""
    done = work / gate / f"{name}.json"
    if done.exists():
        return json.loads(done.read_text())
    done.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnist_models",
            "ab",
            str(base),
            str(new),
            "--out",
            str(work / gate / name),
            "--json",
            str(work / gate / f"{name}.verdicts.json"),
            "--force",
            *([] if counts else ["--no-instructions"]),
        ],
        cwd=driver,
        capture_output=True,
        text=True,
        env=_env(driver),
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{gate} {name}: ab exited {proc.returncode}: {proc.stderr.strip()[-600:]}")
    result = {
        "seconds": round(time.monotonic() - start, 1),
        "exit": proc.returncode,
        **json.loads((work / gate / f"{name}.verdicts.json").read_text()),
    }
    done.write_text(json.dumps(result, indent=1))
    print(f"{gate} {name}: exit {proc.returncode}, {result['seconds']:.0f} s", file=sys.stderr, flush=True)
    return result


def _env(driver: Path) -> dict:
    import os

    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(driver)}


def _loops(first: dict) -> dict:
    """The Python loop iterations that add INSTRUCTION_PLANT to each training case's step."""
    per_step = {
        tuple(re.match(r"train-(\w+)-cpu-bs(\d+)", r["case"]).groups()): r["base"]
        for r in first["cases"]
        if r["signal"] == "instructions" and r["case"].startswith("train")
    }
    return {(m, int(bs)): round(INSTRUCTION_PLANT[1] * n / LOOP_INSTRUCTIONS) for (m, bs), n in per_step.items()}


def run(work: Path, gates: list[str], aa: int, plants: list[str]) -> None:
    """The comparisons, plants first; `gates`, `aa` and `plants` cut the plan to what the time
    at hand allows (render says what was left out)."""
    work.mkdir(parents=True, exist_ok=True)
    old = today_tree(work) if "today" in gates else None
    sides = {
        "new": (REPO, copy_code(REPO, work / "code" / "new-same")),
        **({"today": (old, copy_code(old, work / "code" / "today-same"))} if old else {}),
    }
    first = {gate: ab(work, gate, "aa-1", same, same, driver) for gate, (driver, same) in sides.items()}
    for gate, (driver, same) in sides.items():  # the plants first: they are what the file is about
        src = REPO if gate == "new" else old
        for name in (n for n in CLOCK_PLANTS if n in plants):
            code = copy_code(src, work / "code" / f"{gate}-{name}", clock=CLOCK_PLANTS[name])
            ab(work, gate, f"ab-{name}", same, code, driver, counts=gate == "new")
        if INSTRUCTION_PLANT[0] in plants:
            instr = copy_code(src, work / "code" / f"{gate}-{INSTRUCTION_PLANT[0]}", loops=_loops(first["new"]))
            ab(work, gate, f"ab-{INSTRUCTION_PLANT[0]}", same, instr, driver)
    for k in range(2, aa + 1):  # the A/A comparisons, the gates in turn
        for gate, (driver, same) in sides.items():
            ab(work, gate, f"aa-{k}", same, same, driver, counts=gate == "new")


def _judged(work: Path, gate: str, pattern: str) -> dict[str, dict]:
    """Each comparison's record (its verdicts as the gate judged them)."""
    out = {}
    for p in sorted((work / gate).glob(pattern), key=_order):
        if not p.stem.endswith(".verdicts"):
            out[p.stem] = json.loads(p.read_text())
    return out


def _order(p: Path):
    m = re.search(r"(\d+)$", p.stem)
    return (re.sub(r"\d+$", "", p.stem), int(m.group(1)) if m else 0)


def _flagged(rows: list[dict], signal: str, operation: str) -> tuple[int, int]:
    mine = [r for r in rows if r.get("signal", "clock") == signal and r["case"].startswith(operation)]
    return sum(r["verdict"] == "slower" for r in mine), len(mine)


def _pct(x, signal: str = "clock") -> str:
    return "" if x is None else f"{x:+.1%}" if signal == "clock" else f"{x:+.2%}"


NAMES = {
    "ab-clock10": "clock +10%",
    "ab-clock5": "clock +5%",
    "ab-clock2": "clock +2%",
    "ab-instr2": "instructions +2%",
}


def gate_table(work: Path, gate: str) -> list[str]:
    aa, plants = _judged(work, gate, "aa-*.json"), _judged(work, gate, "ab-*.json")
    if not aa:
        return ["Not run (the plan was cut to the time at hand; see the conditions below)."]
    out = [
        "| planted | clock: train flagged slower | clock: infer flagged | instructions: train flagged | "
        "instructions: infer flagged | train change on the clock (median) | undecided clock rows | minutes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, runs in [
        (f"nothing (A/A, {len(aa)} runs)", list(aa.values())),
        *[(NAMES.get(k, k), [v]) for k, v in plants.items()],
    ]:
        cells = []
        for signal, op in (
            ("clock", "train"),
            ("clock", "infer"),
            ("instructions", "train"),
            ("instructions", "infer"),
        ):
            hit = [_flagged(r["cases"], signal, op) for r in runs]
            total = sum(n for _, n in hit)
            cells.append(f"{sum(h for h, _ in hit)} of {total}" if total else "not counted")
        seen = [
            r["change"] for v in runs for r in v["cases"] if r["signal"] == "clock" and r["case"].startswith("train")
        ]
        undecided = sum(r["verdict"] == "undecided" for v in runs for r in v["cases"] if r["signal"] == "clock")
        minutes = [v["seconds"] / 60 for v in runs]
        out.append(
            f"| {label} | {' | '.join(cells)} | {_pct(statistics.median(seen))} | {undecided} | "
            f"{statistics.median(minutes):.1f}{f' (max {max(minutes):.1f})' if len(minutes) > 1 else ''} |"
        )
    alarms = [sum(r["verdict"] == "slower" for r in v["cases"]) for v in aa.values()]
    out += [
        "",
        f"A/A: {sum(alarms)} false alarm(s) in {len(aa)} comparisons ({sum(a > 0 for a in alarms)} that "
        f"would have failed CI); `faster` in A/A: "
        f"{sum(r['verdict'] == 'faster' for v in aa.values() for r in v['cases'])}.",
        "",
    ]
    out += [
        "| case | A/A clock changes, lowest .. highest | median detectable | +5% plant: change (interval) | verdict |",
        "|---|---|---:|---|---|",
    ]
    five = {r["case"]: r for r in plants.get("ab-clock5", {}).get("cases", []) if r["signal"] == "clock"}
    for case in dict.fromkeys(r["case"] for v in aa.values() for r in v["cases"] if r["signal"] == "clock"):
        got = [r for v in aa.values() for r in v["cases"] if r["case"] == case and r["signal"] == "clock"]
        detect = [r["detectable"] for r in got if r["detectable"] is not None]
        p = five.get(case)
        planted = f"{_pct(p['change'])} ({_pct(p['low'])} .. {_pct(p['high'])})" if p else ""
        out.append(
            f"| {case} | {_pct(min(r['change'] for r in got))} .. {_pct(max(r['change'] for r in got))} | "
            f"{statistics.median(detect):.1%} | {planted} | {p['verdict'] if p else ''} |"
        )
    return out


def components(work: Path) -> tuple[dict, int, int]:
    """Per clock case, from the new gate's A/A runs: the variance of one pair's log-ratio
    within a process pair, and of a process pair's own bias between them (one-way random
    effects, method of moments), pooled over the runs; and the gate's pairs and processes."""
    within, between, shape = {}, {}, None
    for folder in sorted((work / "new").glob("aa-*")):
        if not folder.is_dir():
            continue
        docs = [json.loads((folder / f"{s}.json").read_text()) for s in ("base", "new")]
        ab = docs[0]["mnist_bench"]["ab"]
        pairs, workers = ab["pairs"], ab["workers"]
        shape = (pairs, workers)
        from mnist_models.harness.ab import blocks

        ids = np.array(blocks(pairs, workers))
        for b0, b1 in zip(docs[0]["benchmarks"], docs[1]["benchmarks"]):
            d = np.log(np.array(b1["stats"]["data"]) / np.array(b0["stats"]["data"]))
            groups = [d[ids == k] for k in range(workers)]
            k = np.mean([len(g) for g in groups])
            msw = np.mean([g.var(ddof=1) for g in groups])
            msb = k * np.var([g.mean() for g in groups], ddof=1)
            within.setdefault(b0["param"], []).append(msw)
            between.setdefault(b0["param"], []).append(max(0.0, (msb - msw) / k))
    return {c: (float(np.mean(within[c])), float(np.mean(between[c]))) for c in within}, *(shape or (0, 0))


def processes_table(work: Path) -> list[str]:
    """How the A/A wander (the estimate's standard deviation) and the detectable change move
    as processes are added, at the gate's pairs: sqrt(between / W + within / pairs)."""
    found, pairs, workers = components(work)
    if not found:
        return []
    ws = [2, 4, 8, 12, 16, 24, 32]
    out = [
        f"From the new gate's A/A runs ({pairs} pairs over {workers} process pairs each): per case, the "
        "spread of one pair's log-ratio within a process pair, and of a process pair's own bias between "
        f"them; from those, each design's A/A wander at {pairs} pairs, and its detectable change (the "
        "2% threshold, plus (z of Holm's first level + z of 80% power) x that wander). 2 process pairs "
        "is today's design.",
        "",
        "| case | within: sd of a pair | between: sd of a process's bias | "
        + " | ".join(f"{w} processes: wander / detectable" for w in ws)
        + " |",
        "|---|---:|---:|" + "---:|" * len(ws),
    ]
    z = 2.87 + 0.84  # Holm's first step over 6 cases at 0.025 one-sided, and 80% power
    for case, (w, b) in found.items():
        cells = []
        for n in ws:
            sd = math.sqrt(b / n + w / pairs)
            cells.append(f"{sd:.1%} / {math.expm1(math.log1p(0.02) + z * sd):.1%}")
        out.append(f"| {case} | {math.sqrt(w):.1%} | {math.sqrt(b):.2%} | " + " | ".join(cells) + " |")
    return out


def full_runs(a: Path, b: Path) -> list[str]:
    """compare on two back-to-back full runs (A/A), and on A against itself 15% slower in training."""
    sys.path.insert(0, str(REPO))
    from mnist_models.reporting.compare import compare, drift_floor, load_side, overall

    slow = copy.deepcopy(json.loads(a.read_text()))
    for bench in slow["benchmarks"]:
        if bench["extra_info"]["operation"] == "train":
            s = bench["stats"]
            s["data"] = [x * 1.15 for x in s["data"]]
            for k in ("min", "max", "mean", "median", "q1", "q3"):
                s[k] *= 1.15
    with tempfile.TemporaryDirectory() as tmp:  # the planted copy, never beside the inputs
        planted = Path(tmp) / (a.stem + "-train-15pct-slower.json")
        planted.write_text(json.dumps(slow))
        named = {"two back-to-back full runs (A/A)": (a, b), "A against A, training +15%": (a, planted)}
        pairs = [(label, load_side(x), load_side(y)) for label, (x, y) in named.items()]
    out = [
        "| comparison | per case: slower / within drift / unchanged / undecided | overall (train fp32, train "
        "bf16, infer fp32, infer bf16) | drift floor | exit |",
        "|---|---|---|---|---:|",
    ]
    for label, base, new in pairs:
        table = compare(base, new, 0.10)
        summary = overall(base, new, table, 0.10)
        counts = table["verdict"].value_counts()
        per_case = " / ".join(
            str(counts.get(v, 0)) for v in ("slower", "within the machine's drift", "unchanged", "undecided")
        )
        lines = "; ".join(
            f"{r['operation']} {r['precision']} {r['change']:+.1%} [{r['low']:+.1%}, {r['high']:+.1%}] {r['verdict']}"
            for _, r in summary.iterrows()
        )
        floor, _ = drift_floor(base, new)
        exit_code = int((table["verdict"] == "slower").any() or (summary["verdict"] == "slower").any())
        out.append(
            f"| {label} | {per_case} | {lines} | {'' if floor is None else f'{math.expm1(floor):.1%}'} | {exit_code} |"
        )
    return out


def render(work: Path, full: list[Path] | None) -> str:
    first = work / "new" / "aa-1" / "base.json"
    source = first if first.exists() else full[0] if full else None
    if source is None:
        raise SystemExit("nothing to render: no ab comparison under --work and no --full pair")
    facts = json.loads(source.read_text())["machine_info"]["mnist_bench"]
    run = json.loads(first.read_text())["mnist_bench"]["ab"] if first.exists() else {"pairs": "?", "workers": "?"}
    before = work / "today" / "aa-1" / "base.json"
    old = json.loads(before.read_text())["mnist_bench"]["ab"] if before.exists() else {"pairs": 40, "workers": 2}
    cpu = (
        f"{facts['cpu_model']} (family {facts['cpu_family']}, model {facts['cpu_model_number']}, "
        f"stepping {facts.get('cpu_stepping')}, {facts['cpu_capability']}), {facts['logical_cores']} vCPUs, "
        f"torch {facts['torch']}"
    )
    out = [
        "# The CI gate on a shared VM: what it sees and how often it cries wolf",
        "",
        f"Machine: {cpu}. Made by `python experiments/ci_noise.py run --work W`, then `render --work W "
        "--full A.json B.json` (the script's docstring says how the plants are made).",
        "",
        f"## The new gate: `mnist-bench ab` with its defaults ({run['pairs']} ABBA pairs a case over "
        f"{run['workers']} short-lived process pairs, a block of pairs each, judged block by block)",
        "",
        *gate_table(work, "new"),
        "",
        f"## Today's gate before this change (commit {TODAY}: {old['pairs']} pairs over {old['workers']} "
        "long-lived processes a side, judged pair by pair)",
        "",
        *gate_table(work, "today"),
        "",
        "## Processes a side: what the A/A wander and the detectable change do as they are added",
        "",
        *processes_table(work),
        "",
    ]
    if full:
        out += [
            "## compare on the main job's own files",
            "",
            f"`{full[0].name}` and `{full[1].name}`: two full runs of the same code made back to back "
            "(`bash bench.sh`), five rounds a case; the second row plants a uniform 15% in every "
            "training round of a copy of the first.",
            "",
            *full_runs(*full),
            "",
        ]
    notes = work / "conditions.md"  # what the person who ran it saw and should say: kept with the runs
    if notes.exists():
        out += ["## Conditions and reading", "", notes.read_text().strip(), ""]
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=["run", "render"])
    p.add_argument("--work", type=Path, default=Path("/tmp/ci-noise"), help="where the copies and runs go")
    p.add_argument("--full", type=Path, nargs=2, help="two back-to-back full runs, for compare")
    p.add_argument("--gates", default="new,today", help="run: the gates to measure (default: new,today)")
    p.add_argument("--aa", type=int, default=AA, help=f"run: A/A comparisons a gate (default {AA})")
    p.add_argument(
        "--plants",
        default=",".join([*CLOCK_PLANTS, INSTRUCTION_PLANT[0]]),
        help="run: the plants to measure (default: all of them)",
    )
    args = p.parse_args()
    if args.command == "run":
        run(args.work, args.gates.split(","), args.aa, args.plants.split(","))
    else:
        print(render(args.work, args.full), end="")


if __name__ == "__main__":
    main()
