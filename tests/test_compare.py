import json

import numpy as np
import pytest

from mnist_models.reporting.compare import BUSY, NO_TEST, compare, load_side, pool
from mnist_models.reporting.results import load_results

TIMES = ("min", "max", "mean", "median", "q1", "q3")


def _times(factor: float, jitter: list[float] | None = None, entries=slice(None), rounds: int | None = None):
    """An edit: every round's time (of the chosen entries) multiplied, optionally jittered,
    optionally cut to the first `rounds` rounds."""

    def edit(doc):
        for b in doc["benchmarks"][entries]:
            s = b["stats"]
            s["data"] = [x * factor * (jitter[i % len(jitter)] if jitter else 1) for i, x in enumerate(s["data"])][
                :rounds
            ]
            s["rounds"] = len(s["data"])
            for k in TIMES:
                s[k] *= factor

    return edit


def _frame(path):
    return load_results([path]).frame


def test_compare_identical_files_is_0(cli, capsys, cpu_result):
    assert cli("compare", str(cpu_result), str(cpu_result)) == 0
    assert "3 unchanged" in capsys.readouterr().out


def test_compare_clear_2x_slowdown_is_1(cli, capsys, cpu_result, edited_result):
    slow = edited_result(cpu_result, _times(2.0))
    assert cli("compare", str(cpu_result), str(slow), "--threshold", "10%") == 1
    out = capsys.readouterr().out
    assert "3 slower" in out and "+100.0%" in out and "welch t (log)" in out
    assert "train fp32: +100.0% [" in out and "over 2 cases, slower" in out  # the overall verdict, first


def test_compare_noise_is_not_a_regression_and_says_it_could_not_tell(cli, capsys, cpu_result, edited_result):
    # medians 12% apart, but the rounds overlap: the t-test finds nothing real, and with
    # rounds this noisy a 10% change would have escaped it too: undecided, never unchanged
    noisy = edited_result(cpu_result, _times(1.12, jitter=[0.8, 1.15, 0.85, 1.2, 0.9]))
    table = compare(_frame(cpu_result), _frame(noisy), 0.10)
    assert (table["change"] > 0.10).all() and (table["verdict"] == "undecided").all()
    assert (table["detectable"] > 0.25).all() and table["note"].str.match(r"needs \d+ more rounds a side").all()
    assert cli("compare", str(cpu_result), str(noisy)) == 0
    assert "3 undecided" in capsys.readouterr().out


def test_compare_with_too_few_rounds_is_undecided_not_the_threshold_alone(cpu_result, edited_result):
    """A round a side (or two) has no variance to test against: even a 50% slowdown is
    undecided, with the rounds that would give the test one (three a side)."""
    for rounds in (1, 2):
        base, slow = (
            edited_result(cpu_result, _times(1.0, rounds=rounds), f"b{rounds}.json"),
            edited_result(cpu_result, _times(1.5, rounds=rounds), f"s{rounds}.json"),
        )
        table = compare(_frame(base), _frame(slow))
        assert (table["verdict"] == "undecided").all() and np.isinf(table["detectable"]).all()
        assert (table["test"] == NO_TEST).all()  # no test decided these rows, and the column says so
        needs = table["note"].str.extract(r"^needs (\d+) more rounds a side$")[0].astype(int)
        assert (needs == 3 - rounds).all()
    five = compare(_frame(cpu_result), _frame(edited_result(cpu_result, _times(1.5), "five-slow.json")))
    assert (five["verdict"] == "slower").all() and (five["test"] == "welch t (log)").all()


def test_compare_missing_and_new_cases(cli, capsys, cpu_result, gpu_result):
    assert cli("compare", str(cpu_result), str(gpu_result), "--format", "markdown") == 0
    out = capsys.readouterr().out
    # the GPU machine is another machine: said first, and the changes are not the code's
    assert out.startswith("> **these files come from different machines: base fixture-cpu")
    assert "## mnist-bench comparison" in out and "| new" in out and "2 new" in out
    assert cli("compare", str(gpu_result), str(cpu_result)) == 0
    assert "2 missing" in capsys.readouterr().out


def test_compare_bad_file_exits_2(tmp_path, cli, capsys, cpu_result):
    bad = tmp_path / "half.json"
    bad.write_text(cpu_result.read_text()[:100])
    assert cli("compare", str(cpu_result), str(bad)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}: not valid JSON" in err
    assert cli("compare", str(cpu_result), str(tmp_path / "nope.json")) == 2
    assert "cannot read it" in capsys.readouterr().err


def test_compare_pools_runs_from_folders(tmp_path, cli, capsys, cpu_result, edited_result):
    for i, factor in enumerate([1.0, 1.02, 0.98]):
        edited_result(cpu_result, _times(factor), f"base/run{i}.json")
        edited_result(cpu_result, _times(factor * 2), f"new/run{i}.json")
    base, new = tmp_path / "base", tmp_path / "new"
    assert cli("compare", str(base), str(base)) == 0
    capsys.readouterr()
    assert cli("compare", str(base), str(new)) == 1
    assert "3 slower" in capsys.readouterr().out
    pooled = pool(load_results(sorted(new.glob("*.json"))).frame)
    assert len(pooled) == 3 and (pooled["rounds"] == 15).all()
    assert pooled.set_index("case").loc["train-cnn-cpu-bs64", "median"] == pytest.approx(20.0, rel=0.01)


def test_compare_empty_folder_exits_2(tmp_path, cli, capsys, cpu_result):
    assert cli("compare", str(tmp_path), str(cpu_result)) == 2
    assert "without result JSON files" in capsys.readouterr().err


def _quick(doc) -> None:
    """The same cases on a fifteenth of the images: a quick run, as fast per image."""
    doc["machine_info"]["mnist_bench"]["quick"] = True
    _times(1 / 15)(doc)
    for b in doc["benchmarks"]:
        b["extra_info"]["samples"] //= 15  # 4,000 of 60,000 images


def test_quick_against_full_is_not_comparable(cli, capsys, cpu_result, edited_result):
    quick = edited_result(cpu_result, _quick, "quick.json")
    assert cli("compare", str(cpu_result), str(quick)) == 0
    out = capsys.readouterr().out
    assert "3 not comparable" in out and "workloads differ: 60,000 vs 4,000 images per round" in out
    assert "faster" not in out  # 15x less time per round is not a speed-up

    slow = json.loads(edited_result(cpu_result, _times(2.0), "slow.json").read_text())["benchmarks"][0]

    def mixed(doc):  # the first case back on the full workload, and 2x slower: a real regression
        _quick(doc)
        doc["benchmarks"][0] = slow

    assert cli("compare", str(cpu_result), str(edited_result(cpu_result, mixed, "mixed.json"))) == 1
    assert "1 slower, 2 not comparable" in capsys.readouterr().out


def test_another_time_to_accuracy_recipe_is_another_workload(another_machine, edited_result):
    def faster_recipe(doc):  # the same case id, a shorter recipe: not a speedup of the code
        for b in doc["benchmarks"]:
            if b["param"].startswith("tta-"):
                b["extra_info"]["recipe"].update(epochs=2, eval_from=1.4, eval_every=0.1)
                b["stats"]["data"] = [x / 2 for x in b["stats"]["data"]]
                b["stats"]["median"] /= 2

    base, new = (
        load_results([another_machine]).frame,
        load_results([edited_result(another_machine, faster_recipe)]).frame,
    )
    table = compare(base, new).set_index("case")
    tta = table.loc["tta-cnn-cpu-bs256-bf16"]
    assert tta["verdict"] == "not comparable" and "recipes differ: 3 epochs" in tta["note"]
    assert "2 epochs at bs256" in tta["note"] and "every 0.1 epochs from epoch 1.4" in tta["note"]
    assert table.loc["train-cnn-cpu-bs256", "change"] == 0  # the rest is still matched and compared
    assert compare(base, base).set_index("case").loc["tta-cnn-cpu-bs256-bf16", "change"] == 0


def _trained(factor: float):
    """An edit: every training round of a real result file multiplied by `factor`."""

    def edit(doc):
        for b in doc["benchmarks"]:
            if b["extra_info"]["operation"] == "train":
                _times(factor)({"benchmarks": [b]})

    return edit


def _sentinel(speed: float):
    """An edit: the run's sentinel trajectory, steady at `speed` passes a second."""

    def edit(doc):
        doc.setdefault("mnist_bench", {})["trajectory"] = {"points": [[t, speed] for t in range(0, 600, 20)]}

    return edit


def test_a_planted_15_percent_training_slowdown_in_a_real_file_is_found(cli, capsys, another_machine, edited_result):
    """Five rounds a side, as the main job writes: every training case slower, and the overall
    verdict per precision says by how much; inference, untouched, is not."""
    slow = edited_result(another_machine, _trained(1.15), "slow.json")
    assert cli("compare", str(another_machine), str(slow)) == 1
    out = capsys.readouterr().out
    assert "train fp32: +15.0% [" in out and "train bf16: +15.0% [" in out and "infer fp32: +0.0% [" in out
    table = compare(_frame(another_machine), _frame(slow)).set_index("case")
    train = table[table.index.str.startswith("train-")]
    assert (train["verdict"] == "slower").mean() >= 0.8 and len(train) >= 10  # the noisiest may be undecided
    assert train["verdict"].isin(["slower", "undecided"]).all()
    assert table[table.index.str.startswith("infer-")]["verdict"].isin(["unchanged", "undecided"]).all()


def test_an_aa_pair_of_a_real_file_is_quiet(cli, capsys, another_machine):
    assert cli("compare", str(another_machine), str(another_machine)) == 0
    out = capsys.readouterr().out
    assert " slower" not in out and "train fp32: +0.0% [" in out and "not beyond the threshold" in out


def test_a_run_that_other_processes_shared_is_never_judged_slower(cli, capsys, current_run, edited_result):
    """Training 15% slower in a copy of a real run, where the new run's machine shared its CPUs
    with another process (which slows torch's two threads more than the sentinel's one): not
    a regression, said why; the same rounds on a quiet machine are one."""

    def shared(others: float):
        return lambda d: (_trained(1.15)(d), d["mnist_bench"]["busy"].update(others_percent=others))

    loaded = edited_result(current_run, shared(9.3), "loaded.json")
    assert cli("compare", str(current_run), str(loaded)) == 0
    captured = capsys.readouterr()
    assert "not judged: during the new run (xeon-amx-2core-d), other processes used 9.3% of the CPUs" in captured.err
    quiet = edited_result(current_run, shared(1.0), "quiet.json")
    assert cli("compare", str(current_run), str(quiet)) == 1
    table, alone = (compare(load_side(current_run), load_side(side)).set_index("case") for side in (loaded, quiet))
    train = table[table.index.str.startswith("train-")]
    slower = alone.index[alone["verdict"] == "slower"]
    assert len(train) >= 10 and (train["verdict"] == "undecided").all() and len(slower) >= 5
    assert (table.loc[slower, "note"] == BUSY).all()  # what a quiet machine would call slower, said why not


def test_a_slowdown_the_sentinel_saw_too_is_the_machines_drift(cli, capsys, another_machine, edited_result):
    """The new run's rounds 15% slower, and the sentinel between its cases 15% slower as well:
    the machine slowed, not the code; the same rounds with a steady sentinel are a regression."""
    base = edited_result(another_machine, _sentinel(100.0), "base.json")
    machine = edited_result(another_machine, lambda d: (_trained(1.15)(d), _sentinel(100 / 1.15)(d)), "m.json")
    code = edited_result(another_machine, lambda d: (_trained(1.15)(d), _sentinel(100.0)(d)), "c.json")
    assert cli("compare", str(base), str(machine)) == 0
    out = capsys.readouterr().out
    assert "within the machine's drift" in out and "drift floor 15.0%" in out and " slower\n" not in out
    assert cli("compare", str(base), str(code)) == 1
    assert "drift floor 0.0%" in capsys.readouterr().out
