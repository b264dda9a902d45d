"""`mnist-bench ab`: two versions of the code in paired rounds, against a copy with a planted
slowdown of known size (tests/plants.py) and against an unchanged copy (A/A); its bad input;
and how a busy machine is measured and named."""

import json
import os
import shutil
import sys
import time

import pytest
from plants import plant_copy

from mnist_models.harness.ab import AbOptions, abba, blocks, sizes, starts
from mnist_models.harness.ab_workers import Side
from mnist_models.machine.process import busy_between, busy_since, cpu_snapshot, not_quiet
from mnist_models.reporting.results import load_results

MLP = "train-mlp-cpu-bs64,infer-mlp-cpu-bs256"


def _ab(cli, base, new, out, *extra):
    return cli(
        "ab",
        str(base),
        str(new),
        "--out",
        str(out),
        "--json",
        str(out / "verdicts.json"),
        "--cases",
        MLP,
        "--seconds",
        "0.05",
        *extra,
    )


def _verdicts(out) -> dict:
    doc = json.loads((out / "verdicts.json").read_text())
    return {(r["case"], r["signal"]): r for r in doc["cases"]}


@pytest.mark.slow
def test_ab_flags_a_planted_clock_slowdown_in_training_and_leaves_inference(cli, repo, tmp_path, mnist_root):
    slow = plant_copy(repo, tmp_path / "slow", clock=0.5)
    out = tmp_path / "ab"
    assert _ab(cli, repo, slow, out, "--pairs", "16", "--workers", "8", "--no-instructions") == 1
    got = _verdicts(out)
    assert got[("train-mlp-cpu-bs64", "clock")]["verdict"] == "slower"
    assert got[("train-mlp-cpu-bs64", "clock")]["low"] > 0.02
    assert got[("infer-mlp-cpu-bs256", "clock")]["verdict"] != "slower"
    assert (
        "instruction counts not asked for (--no-instructions)"
        in json.loads((out / "verdicts.json").read_text())["notes"]
    )
    # both sides' rounds are ordinary result files: compare and report read them
    results = load_results([out / "base.json", out / "new.json"], include_quick=True)
    assert results.problems == [] and len(results.frame) == 4
    base = json.loads((out / "base.json").read_text())
    assert base["mnist_bench"]["ab"]["pairs"] == 16 and base["benchmarks"][0]["stats"]["rounds"] == 16
    assert "busy" in base["mnist_bench"] and "## mnist-bench ab: " in (out / "comparison.md").read_text()


@pytest.mark.slow
def test_ab_of_the_same_code_flags_nothing(cli, repo, tmp_path, mnist_root):
    same = plant_copy(repo, tmp_path / "same")
    out = tmp_path / "ab"
    assert _ab(cli, repo, same, out, "--pairs", "16", "--workers", "8", "--no-instructions") == 0
    assert not any(r["verdict"] == "slower" for r in _verdicts(out).values())


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("valgrind") is None and not os.environ.get("CI"), reason="valgrind is not installed (CI installs it)"
)
def test_instructions_see_a_planted_2_percent_and_nothing_where_none_was_planted(cli, repo, tmp_path, mnist_root):
    # an empty Python loop of ~198 instructions an iteration: 600 of them are about 2% of an
    # MLP step at batch 64 on an AVX2 machine, more where its kernels are leaner
    planted = plant_copy(repo, tmp_path / "planted", loops={("mlp", 64): 600})
    out = tmp_path / "ab"
    assert _ab(cli, repo, planted, out, "--pairs", "2", "--workers", "1", "--counted", MLP) == 1
    got = _verdicts(out)
    train, infer = got[("train-mlp-cpu-bs64", "instructions")], got[("infer-mlp-cpu-bs256", "instructions")]
    assert train["verdict"] == "slower" and 0.015 < train["change"] < 0.10
    assert infer["verdict"] == "unchanged" and abs(infer["change"]) < 0.002
    info = {b["param"]: b["extra_info"] for b in json.loads((out / "new.json").read_text())["benchmarks"]}
    assert info["train-mlp-cpu-bs64"]["instruction_steps"] == 4
    assert (
        abs(info["train-mlp-cpu-bs64"]["instructions"] - 4 * info["train-mlp-cpu-bs64"]["instructions_per_step"]) <= 2
    )


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("valgrind") is None and not os.environ.get("CI"), reason="valgrind is not installed (CI installs it)"
)
def test_a_planted_5_percent_in_the_training_step_is_found(cli, repo, tmp_path, mnist_root):
    """5% more work planted in every training step of a copy of the code: a Python loop of
    about 5% of the step's instructions (1,500 iterations at batch 64). The instruction counts,
    deterministic, find it in a few pairs; what the clock sees of 5% needs the gate's full
    run (results/ci-noise.md). (A spin on the clock is no plant for this: under callgrind the
    step runs 50x slower, and a spin of 5% of its time runs instructions many times its own.)"""
    planted = plant_copy(repo, tmp_path / "planted", loops={("mlp", 64): 1500})
    out = tmp_path / "ab"
    assert _ab(cli, repo, planted, out, "--pairs", "4", "--workers", "2", "--counted", MLP) == 1
    got = _verdicts(out)
    train = got[("train-mlp-cpu-bs64", "instructions")]
    assert train["verdict"] == "slower" and 0.03 < train["change"] < 0.08
    assert got[("infer-mlp-cpu-bs256", "instructions")]["verdict"] == "unchanged"


def test_a_side_that_is_neither_a_checkout_nor_an_environment_is_named(cli, capsys, repo, tmp_path):
    assert cli("ab", str(repo), str(tmp_path), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"new side {str(tmp_path)!r} is neither a checkout" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--cases", "train-mlp-cpu-bs64", "--counted", "infer-mlp-cpu-bs256"], "count only cases that are timed"),
        (
            ["--cases", "infer-mlp-cpu-bs256-compiled", "--counted", "infer-mlp-cpu-bs256-compiled"],
            "infer-mlp-cpu-bs256-compiled: runs under torch.compile here, whose kernels callgrind cannot run",
        ),
        (["--cases", "train-vgg-cpu-bs64"], "unknown case train-vgg-cpu-bs64"),
        (["--seconds", "0"], "--seconds must be a number of seconds"),
        (["--pairs", "0"], "pairs must be"),
        (["--detect", "1%"], "--detect 1.0% must be above --threshold 2.0%"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(cli, capsys, repo, tmp_path, extra, message):
    assert cli("ab", str(repo), str(repo), "--out", str(tmp_path / "o"), *extra) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after argparse's usage, one line
    assert message in last and not (tmp_path / "o").exists()


@pytest.mark.parametrize("amx", [True, False])
def test_a_case_that_compiles_here_is_timed_not_counted(monkeypatch, request, repo, mnist_root, amx):
    """Under callgrind, whose cpu stops at AVX2, inductor's AVX-512 kernels die of an illegal
    instruction: a case compiled on this machine (the CNN's inference on a matrix engine)
    leaves the default count, and says so."""
    from mnist_models.harness.ab import COUNTED, AbOptions, plan
    from mnist_models.machine import cpu, devices

    flags = cpu.cpu_flags() - cpu.MATRIX_FLAGS | ({"amx_bf16"} if amx else set())
    monkeypatch.setattr(cpu, "cpu_flags", lambda: flags)
    devices.device_class.cache_clear()  # this machine's class, read again from the planted flags
    request.addfinalizer(devices.device_class.cache_clear)
    checked = plan(AbOptions(str(repo), str(repo), root=str(mnist_root)))
    assert checked.uncounted == (("infer-cnn-cpu-bs256",) if amx else ())
    assert checked.counted == [c for c in COUNTED if c not in checked.uncounted]
    assert plan(AbOptions(str(repo), str(repo), root=str(mnist_root), instructions=False)).uncounted == ()


def test_a_root_without_mnist_is_a_usage_error_before_any_side_starts(cli, capsys, repo, tmp_path):
    assert cli("ab", str(repo), str(repo), "--out", str(tmp_path / "o"), "--root", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"MNIST not found under {tmp_path}" in err and "side" not in err
    assert not (tmp_path / "o").exists()


def test_finished_files_are_not_overwritten_without_force(cli, capsys, repo, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "base.json").write_text("mine")
    assert cli("ab", str(repo), str(repo), "--out", str(out)) == 2
    assert "already holds base.json" in capsys.readouterr().err and (out / "base.json").read_text() == "mine"


@pytest.mark.slow
def test_a_side_that_fails_is_named_exit_3(cli, capsys, repo, tmp_path, mnist_root):
    broken = tmp_path / "broken"
    (broken / "mnist_models").mkdir(parents=True)
    (broken / "mnist_models" / "__init__.py").write_text("raise ImportError('half a checkout')\n")
    assert (
        cli(
            "ab",
            str(repo),
            str(broken),
            "--out",
            str(tmp_path / "o"),
            "--cases",
            "infer-mlp-cpu-bs256",
            "--counted",
            "infer-mlp-cpu-bs256",
            "--no-instructions",
            "--workers",
            "1",
        )
        == 3
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"the new side ({broken}) failed: ImportError: half a checkout" in err
    assert not (tmp_path / "o" / "base.json").exists()


def test_sides_are_found_as_checkouts_or_environments(repo, tmp_path):
    checkout = Side.find("base", str(repo))
    assert checkout.pythonpath == str(repo) and checkout.python == sys.executable
    env = Side.find("new", str(os.path.dirname(os.path.dirname(sys.executable))))
    assert env.pythonpath is None and env.python.endswith("python")


def test_pairs_alternate_and_rounds_are_sized_to_the_clock():
    assert abba(4) == [(0, 1), (1, 0), (0, 1), (1, 0)]
    sized = sizes(
        ["train-mlp-cpu-bs64", "infer-cnn-cpu-bs256"],
        {"train-mlp-cpu-bs64": 0.01, "infer-cnn-cpu-bs256": 1.0},
        {"train": 1024, "infer": 2048},
        0.15,
    )
    assert sized == {"train-mlp-cpu-bs64": 15360, "infer-cnn-cpu-bs256": 256}
    assert blocks(10, 4) == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]  # each process pair a run of whole pairs


def test_each_side_starts_its_process_first_in_half_the_blocks():
    """An A/A run read every training case 1.4% to 3.2% faster on the new side, each interval
    clear of zero, while base's worker always started first: no side may own that place."""
    workers = AbOptions("a", "b").workers
    orders = [starts(block) for block in range(workers)]
    assert all(sorted(order) == [0, 1] for order in orders)
    assert sum(order[0] == 0 for order in orders) == sum(order[0] == 1 for order in orders) == workers // 2


def _snapshot(wall, ours, **machine):
    return {"wall": wall, "ours": ours, "machine": {"user": 0.0, "system": 0.0, "idle": 0.0, "steal": 0.0, **machine}}


def test_busy_shares_see_a_planted_neighbour_and_steal_and_nothing_in_a_quiet_run():
    """Two CPUs for 10 s (20 CPU-seconds): this process used 8 of them, the rest idle (A/A);
    then a neighbour took 6 more, or the hypervisor stole 3."""
    start = _snapshot(0, 0)
    quiet = busy_between(start, _snapshot(10, 8, user=8, idle=12), 2)
    neighbour = busy_between(start, _snapshot(10, 8, user=14, idle=6), 2)
    stolen = busy_between(start, _snapshot(10, 8, user=8, idle=9, steal=3), 2)
    assert (quiet["others_percent"], quiet["steal_percent"]) == (0.0, 0.0) and not_quiet(quiet) is None
    assert neighbour["others_percent"] == 30.0 and "other processes used 30.0% of the CPUs" in not_quiet(neighbour)
    assert stolen["steal_percent"] == 15.0 and "the hypervisor took 15.0%" in not_quiet(stolen)


def test_busy_since_measures_this_machine():
    before = cpu_snapshot()
    time.sleep(0.5)
    busy = busy_since(before)
    assert busy["seconds"] >= 0.5 and len(busy["load_average"]) == 3
    assert 0 <= busy["others_percent"] <= 100 and 0 <= busy["steal_percent"] <= 100


def _renamed(copy):
    """The copy's internals renamed, its contract (harness/ab_side.py's calls) kept: a
    refactor as a pull request would make one."""
    harness = copy / "mnist_models" / "harness"
    (harness / "timer.py").rename(harness / "clocking.py")
    for path in (copy / "mnist_models").rglob("*.py"):
        text = path.read_text()
        new = (
            text.replace("from .timer import", "from .clocking import")
            .replace("make_timer", "build_case_timer")
            .replace("CaseTimer", "RoundClock")
            .replace("harness.timer import", "harness.clocking import")
        )
        if new != text:
            path.write_text(new)
    return copy


@pytest.mark.slow
def test_ab_judges_a_copy_whose_internals_are_renamed_through_its_contract(cli, repo, tmp_path, mnist_root):
    renamed = _renamed(plant_copy(repo, tmp_path / "renamed"))
    assert not (renamed / "mnist_models" / "harness" / "timer.py").exists()
    out = tmp_path / "ab"
    assert _ab(cli, repo, renamed, out, "--pairs", "4", "--workers", "2", "--no-instructions") == 0
    assert json.loads((out / "new.json").read_text())["mnist_bench"]["ab"]["code"].startswith(str(renamed))


def test_a_side_that_speaks_another_contract_is_refused_in_one_line(cli, capsys, repo, tmp_path, mnist_root):
    future = plant_copy(repo, tmp_path / "future")
    side = future / "mnist_models" / "harness" / "ab_side.py"
    side.write_text(side.read_text().replace("CONTRACT = 1", "CONTRACT = 99"))
    assert cli("ab", str(repo), str(future), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "speaks ab contract 99, and this mnist-bench speaks 0, 1" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_ab_judges_a_main_from_before_the_contract(cli, repo, tmp_path, mnist_root):
    """The commit before the contract has no ab_side.py: ab drives it with contract 0."""
    import subprocess

    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(repo), "archive", "eeea6eb", "mnist_models"], capture_output=True)
    if archive.returncode:
        pytest.skip(f"this checkout lacks the commit before the contract (a shallow clone?): {archive.stderr[:200]!r}")
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    out = tmp_path / "ab"
    assert _ab(cli, old, repo, out, "--pairs", "4", "--workers", "2", "--no-instructions") == 0
    assert not (old / "mnist_models" / "harness" / "ab_side.py").exists()
