"""How well the CI gate sees a slowdown on this machine, and how often it cries wolf:
`mnist-bench ab` (paired rounds + instruction counts) against the old recipe (three
interleaved quick runs a side, `compare --threshold 25%`), on A/A runs and planted slowdowns.

    python experiments/ci_noise.py run --work /tmp/ci-noise     # about an hour on 2 vCPUs; resumes
    python experiments/ci_noise.py render --work /tmp/ci-noise > results/ci-noise.md   # + W/conditions.md

The plants go into throwaway copies of the code under --work, never into the product:
- clock +10%, +5%, +2%: every training step spins for that fraction of its own time
  afterwards, so the clock of every training case grows by exactly that much and
  inference is untouched (the control);
- instructions +2%: every training step runs a Python loop of 2% of the step's own
  instructions per step (sized from the first A/A run's counts, ~198 instructions an iteration).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AA = 10  # A/A comparisons of the new gate
OLD_AA = 3  # ... of the old recipe (each costs six quick runs)
CLOCK_PLANTS = {"clock10": 0.10, "clock5": 0.05, "clock2": 0.02}
INSTRUCTION_PLANT = ("instr2", 0.02)
LOOP_INSTRUCTIONS = 198  # callgrind's count per iteration of `for _ in range(n): pass` (CPython 3.11)
OLD_CASES = ["--devices", "cpu", "--batch-sizes", "64,256", "--precisions", "fp32", "-k", "train or infer"]
sys.path.insert(0, str(REPO / "tests"))
from plants import plant_copy  # noqa: E402  (the tests plant the same way)


def copy_code(dest: Path, clock: float = 0.0, loops: dict | None = None) -> Path:
    """A copy of the code to run as one side (made once: a rerun resumes with it)."""
    return dest if dest.exists() else plant_copy(REPO, dest, clock, loops)


def ab(work: Path, name: str, base: Path, new: Path) -> dict:
    """One CI comparison with the new gate; its verdicts and wall time, kept in work/name.json."""
    done = work / f"{name}.json"
    if done.exists():
        return json.loads(done.read_text())
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
            str(work / name),
            "--json",
            str(work / f"{name}.verdicts.json"),
            "--force",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{name}: ab exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    result = {
        "seconds": round(time.monotonic() - start, 1),
        "exit": proc.returncode,
        **json.loads((work / f"{name}.verdicts.json").read_text()),
    }
    done.write_text(json.dumps(result, indent=1))
    print(f"{name}: exit {proc.returncode}, {result['seconds']:.0f} s", file=sys.stderr, flush=True)
    return result


def old_recipe(work: Path, name: str, base: Path, new: Path) -> dict:
    """The old workflow: three quick runs a side, interleaved, 3 rounds a case, compared at 25%."""
    done = work / f"old-{name}.json"
    if done.exists():
        return json.loads(done.read_text())
    sys.path.insert(0, str(REPO))
    from mnist_models.reporting.compare import compare, load_side

    start, runs = time.monotonic(), work / f"old-{name}"
    for i in range(1, 4):
        for side, code in (("base", base), ("new", new)):
            out = runs / side / f"quick-{i}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "bench",
                    "--quick",
                    "--rounds",
                    "3",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    *OLD_CASES,
                    "--benchmark-json",
                    str(out),
                ],
                cwd=code,
                env={**_env(), "PYTHONPATH": str(code)},
                check=True,
                capture_output=True,
            )
    table = compare(load_side(runs / "base"), load_side(runs / "new"), threshold=0.25)
    result = {
        "seconds": round(time.monotonic() - start, 1),
        "cases": [{"case": r.case, "change": r.change, "verdict": r.verdict} for r in table.itertuples()],
    }
    done.write_text(json.dumps(result, indent=1))
    print(f"old-{name}: {result['seconds']:.0f} s", file=sys.stderr, flush=True)
    return result


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    same = copy_code(work / "code" / "same")
    first = ab(work, "aa-1", same, same)
    per_step = {
        tuple(re.match(r"train-(\w+)-cpu-bs(\d+)", r["case"]).groups()): r["base"]
        for r in first["cases"]
        if r["signal"] == "instructions" and r["case"].startswith("train")
    }
    loops = {
        (model, int(bs)): round(INSTRUCTION_PLANT[1] * n / LOOP_INSTRUCTIONS) for (model, bs), n in per_step.items()
    }
    plants = {name: copy_code(work / "code" / name, clock=p) for name, p in CLOCK_PLANTS.items()}
    plants[INSTRUCTION_PLANT[0]] = copy_code(work / "code" / INSTRUCTION_PLANT[0], loops=loops)
    for name, code in plants.items():  # the plants first: they are what the file is about
        ab(work, f"ab-{name}", same, code)
    for name in ("clock10", "clock5"):  # the old recipe beside them
        old_recipe(work, name, same, plants[name])
    old_recipe(work, "aa-1", same, same)
    for k in range(2, AA + 1):
        ab(work, f"aa-{k}", same, same)
    old_recipe(work, "clock2", same, plants["clock2"])
    for k in range(2, OLD_AA + 1):
        old_recipe(work, f"aa-{k}", same, same)


def _load(work: Path, pattern: str) -> dict[str, dict]:
    """Each comparison's record, its verdicts judged again from the rounds its result files
    hold (so the table always shows the current statistics' reading of the same rounds)."""
    out = {}
    for p in sorted(work.glob(pattern), key=_order):
        if p.stem.endswith(".verdicts"):
            continue
        record = json.loads(p.read_text())
        if (work / p.stem / "base.json").exists():
            record["cases"] = _judge(work / p.stem)
        out[p.stem] = record
    return out


def _judge(folder: Path) -> list[dict]:
    sys.path.insert(0, str(REPO))
    import pandas as pd

    from mnist_models.reporting.paired import judge_counts, judge_pairs, verdict_records

    sides = [
        {b["param"]: b for b in json.loads((folder / f"{s}.json").read_text())["benchmarks"]} for s in ("base", "new")
    ]
    clock = judge_pairs({c: (sides[0][c]["stats"]["data"], sides[1][c]["stats"]["data"]) for c in sides[0]})
    counted = {
        c: (sides[0][c]["extra_info"]["instructions_per_step"], sides[1][c]["extra_info"]["instructions_per_step"])
        for c in sides[0]
        if "instructions_per_step" in sides[0][c]["extra_info"]
    }
    return verdict_records(pd.concat([clock, judge_counts(counted)], ignore_index=True))


def _order(p: Path):
    m = re.search(r"(\d+)$", p.stem)
    return (re.sub(r"\d+$", "", p.stem), int(m.group(1)) if m else 0)


def _flagged(rows: list[dict], signal: str, operation: str, verdict: str = "slower") -> tuple[int, int]:
    mine = [r for r in rows if r.get("signal", "clock") == signal and r["case"].startswith(operation)]
    return sum(r["verdict"] == verdict for r in mine), len(mine)


def _pct(x, signal: str = "clock") -> str:
    return "" if x is None else f"{x:+.1%}" if signal == "clock" else f"{x:+.2%}"


def render(work: Path) -> str:
    aa, plants = _load(work, "aa-*.json"), _load(work, "ab-*.json")
    old = _load(work, "old-*.json")
    facts = json.loads((work / "aa-1" / "base.json").read_text())["machine_info"]["mnist_bench"]
    run = json.loads((work / "aa-1" / "base.json").read_text())["mnist_bench"]
    cpu = (
        f"{facts['cpu_model']} (family {facts['cpu_family']}, model {facts['cpu_model_number']}, "
        f"{facts['cpu_capability']}), {facts['logical_cores']} vCPUs, torch {facts['torch']}"
    )
    out = [
        "# The CI gate on a shared VM: what it sees and how often it cries wolf\n",
        f"Machine: {cpu}. Made by `python experiments/ci_noise.py run --work W` then `render`",
        "(the script's docstring says how the plants are made). Each new-gate comparison is",
        f"`mnist-bench ab` with its defaults: {run['ab']['pairs']} ABBA pairs a case, {run['ab']['workers']} "
        f"worker processes a side, {run['ab']['threads']} thread, rounds sized to about 0.15 s, clock "
        f"threshold 2% with Holm across the cases, instructions per step at 1%.\n",
    ]
    out += [
        "## The new gate (`mnist-bench ab`)\n",
        "| planted | clock: train flagged slower | clock: infer flagged | instructions: train flagged | "
        "instructions: infer flagged | train change seen on the clock (median over cases) | minutes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [("nothing (A/A, %d runs)" % len(aa), list(aa.values()))]
    names = {
        "ab-clock10": "clock +10%",
        "ab-clock5": "clock +5%",
        "ab-clock2": "clock +2%",
        "ab-instr2": "instructions +2%",
    }
    rows += [(names.get(k, k), [v]) for k, v in plants.items()]
    for label, runs in rows:
        cells = []
        for signal, op in (
            ("clock", "train"),
            ("clock", "infer"),
            ("instructions", "train"),
            ("instructions", "infer"),
        ):
            hit = [_flagged(r["cases"], signal, op) for r in runs]
            cells.append(f"{sum(h for h, _ in hit)} of {sum(n for _, n in hit)}")
        seen = [
            r["change"] for v in runs for r in v["cases"] if r["signal"] == "clock" and r["case"].startswith("train")
        ]
        minutes = [v["seconds"] / 60 for v in runs]
        out.append(
            f"| {label} | {' | '.join(cells)} | {_pct(statistics.median(seen))} | "
            f"{statistics.median(minutes):.1f}{f' (max {max(minutes):.1f})' if len(minutes) > 1 else ''} |"
        )
    out += [
        "",
        "Each A/A comparison, and how quiet the machine was during its clock part:\n",
        "| run | slower | faster | unchanged | undecided | other processes' CPU share | steal | minutes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in aa.items():
        got = [r["verdict"] for r in v["cases"]]
        out.append(
            f"| {name} | {got.count('slower')} | {got.count('faster')} | {got.count('unchanged')} | "
            f"{got.count('undecided')} | {v['busy']['others_percent']}% | {v['busy']['steal_percent']}% | "
            f"{v['seconds'] / 60:.1f} |"
        )
    alarms = [sum(r["verdict"] == "slower" for r in v["cases"]) for v in aa.values()]
    out += [
        "",
        f"A/A: {sum(alarms)} false alarm(s) in {len(aa)} comparisons ({sum(a > 0 for a in alarms)} "
        f"comparison(s) that would have failed CI); `faster` verdicts in A/A: "
        f"{sum(r['verdict'] == 'faster' for v in aa.values() for r in v['cases'])}.\n",
    ]
    out += [
        "### Per case: change, 95% interval and detectable change\n",
        "| run | case | signal | change | interval | detectable | verdict |",
        "|---|---|---|---:|---|---:|---|",
    ]
    for name, v in [*plants.items(), ("aa-1", aa.get("aa-1"))]:
        for r in v["cases"]:
            interval = f"{_pct(r['low'])} .. {_pct(r['high'])}" if r["signal"] == "clock" else ""
            detect = "never" if r["detectable"] is None else f"{r['detectable']:.1%}"
            note = f" ({r['note']})" if r.get("note") else ""
            out.append(
                f"| {names.get(name, name)} | {r['case']} | {r['signal']} | {_pct(r['change'], r['signal'])} | {interval} | "
                f"{detect} | {r['verdict']}{note} |"
            )
    out += [
        "",
        "### Spread over the A/A runs\n",
        "| case | signal | A/A changes, lowest .. highest | median detectable |",
        "|---|---|---|---:|",
    ]
    keys = dict.fromkeys((r["case"], r["signal"]) for v in aa.values() for r in v["cases"])
    for case, signal in keys:
        got = [r for v in aa.values() for r in v["cases"] if (r["case"], r["signal"]) == (case, signal)]
        changes = [r["change"] for r in got]
        detect = [r["detectable"] for r in got if r["detectable"] is not None]
        span = f"{_pct(min(changes), signal)} .. {_pct(max(changes), signal)}"
        out.append(f"| {case} | {signal} | {span} | " + (f"{statistics.median(detect):.1%} |" if detect else "never |"))
    busy = [v["busy"] for v in aa.values()]
    counting = [v["seconds"] - v["busy"]["seconds"] for v in aa.values()]
    out += [
        "",
        f"Clock part per comparison (worker starts and rounds): {statistics.median(b['seconds'] for b in busy):.0f} s "
        f"median; the instruction counts after it (both sides at once under callgrind, torch imported with "
        f"instrumentation off): {statistics.median(counting):.0f} s median; "
        f"steal up to {max(b['steal_percent'] for b in busy)}%, other processes up to "
        f"{max(b['others_percent'] for b in busy)}% of the CPUs during it.\n",
    ]
    if old:
        out += [
            "## The old recipe (three interleaved quick runs a side, 3 rounds, `compare --threshold 25%`)\n",
            "Restricted to the CPU fp32 train and infer cases at batch 64 and 256, two threads, as the old "
            "workflow ran them.\n",
            "| planted | train flagged slower | infer flagged | train median change | minutes |",
            "|---|---:|---:|---:|---:|",
        ]
        oldnames = {"old-clock10": "clock +10%", "old-clock5": "clock +5%", "old-clock2": "clock +2%"}
        olds = [
            ("nothing (A/A, %d runs)" % len([k for k in old if "aa" in k]), [v for k, v in old.items() if "aa" in k])
        ]
        olds += [(oldnames.get(k, k), [v]) for k, v in old.items() if "aa" not in k]
        for label, runs in olds:
            if not runs:
                continue
            train = [_flagged(r["cases"], "clock", "train") for r in runs]
            infer = [_flagged(r["cases"], "clock", "infer") for r in runs]
            seen = [
                r["change"]
                for v in runs
                for r in v["cases"]
                if r["case"].startswith("train") and r["change"] is not None
            ]
            out.append(
                f"| {label} | {sum(h for h, _ in train)} of {sum(n for _, n in train)} | "
                f"{sum(h for h, _ in infer)} of {sum(n for _, n in infer)} | "
                f"{_pct(statistics.median(seen)) if seen else ''} | "
                f"{statistics.median(v['seconds'] for v in runs) / 60:.1f} |"
            )
        out.append("")
    notes = work / "conditions.md"  # what the person who ran it saw and should say: kept with the runs
    if notes.exists():
        out += ["## Conditions and reading\n", notes.read_text().strip(), ""]
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=["run", "render"])
    p.add_argument("--work", type=Path, default=Path("/tmp/ci-noise"), help="where the copies and runs go")
    args = p.parse_args()
    if args.command == "run":
        run(args.work)
    else:
        print(render(args.work), end="")


if __name__ == "__main__":
    main()
