"""The validating loader, on a real fixture broken the ways result files break."""

import json
import math

import pytest

from mnist_models.reporting.results import load_results
from mnist_models.reporting.schema import recipe_name


def _entry(field: str, value):
    """An edit that sets one field of the first entry (stats.median, extra_info.batch_size...)."""

    def edit(doc):
        where, key = field.split(".")
        doc["benchmarks"][0][where][key] = value

    return edit


ENTRY_FAULTS = [
    (_entry("stats.median", "fast"), 'stats.median is "fast", expected a positive number of seconds'),
    (_entry("stats.median", 0), "stats.median is 0, expected a positive number"),
    (_entry("stats.median", -1.5), "stats.median is -1.5, expected a positive number"),
    (_entry("stats.median", math.nan), "stats.median is nan, expected a positive number"),
    (_entry("stats.q1", math.inf), "stats.q1 is inf, expected a positive number"),
    (_entry("stats.data", [1.0, -2.0]), "stats.data is [1.0, -2.0], expected a list of positive round times"),
    (_entry("stats.median", 1e-320), "stats.median is 1e-320, expected a positive number of seconds, 1e-09 or more"),
    (_entry("stats.data", [1.0, 1e-320]), "stats.data is [1.0, 1e-320], expected a list of positive round times"),
    (_entry("stats.rounds", 9), "stats.rounds is 9 but stats.data holds 5 rounds"),
    (_entry("extra_info.batch_size", "big"), 'extra_info.batch_size is "big", expected a positive whole number'),
    (_entry("extra_info.batch_size", True), "extra_info.batch_size is True, expected a positive whole number"),
    (_entry("extra_info.samples", None), "extra_info.samples is None, expected a positive whole number"),
    (
        _entry("extra_info.operation", "fly"),
        'extra_info.operation is "fly", an operation this mnist-bench does not know',
    ),
    (_entry("extra_info.test_accuracy", 3), "extra_info.test_accuracy is 3, expected a number from 0 to 1"),
    (lambda doc: doc["benchmarks"][0].pop("stats"), "stats is None, expected an object with the round times"),
    (
        lambda doc: doc["benchmarks"].append(dict(doc["benchmarks"][0])),
        'benchmarks[3]: a second entry for "train-cnn-cpu-bs64" (first: benchmarks[0])',
    ),
]


@pytest.mark.parametrize("edit,message", ENTRY_FAULTS, ids=[m[:40] for _, m in ENTRY_FAULTS])
def test_a_bad_entry_is_dropped_and_named(tmp_path, cli, capsys, cpu_result, edited_result, edit, message):
    path = edited_result(cpu_result, edit)
    results = load_results([path])
    assert len(results.frame) == len(json.loads(path.read_text())["benchmarks"]) - 1  # the rest stay
    assert any(
        p.startswith(f"{path}: benchmarks[") and message in p and p.endswith("entry dropped") for p in results.problems
    ), results.problems
    assert cli("report", str(path), "--out", str(tmp_path / "out")) == 0  # the rest is reported
    assert message in capsys.readouterr().err
    assert cli("compare", str(cpu_result), str(path)) == 2  # a comparison with a case left out would mislead
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("mnist-bench: error: ") and message in err[-1] and "fix or remove it" in err[-1]


FILE_FAULTS = [
    ("[1, 2]", "not a pytest-benchmark result"),
    ('{"benchmarks": ["a string"]}', "1 entry without mnist-bench fields"),
    ('{"benchmarks": [{"extra_info": null, "stats": {}}]}', "1 entry without mnist-bench fields"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"benchmarks": [{"extra_info": {"model": "cnn", "operation": "train"}}]}', "stats is None"),
]


@pytest.mark.parametrize("text,message", FILE_FAULTS, ids=[m for _, m in FILE_FAULTS])
def test_an_unusable_file_is_one_line_and_exit_2(tmp_path, cli, capsys, cpu_result, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    assert cli("report", str(path), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert f"{path}: " in err and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert cli("compare", str(path), str(cpu_result)) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize(
    "edit,note",
    [
        (lambda doc: doc.update(machine_info=[1]), "machine_info is [1], expected an object"),
        (lambda doc: doc["machine_info"].update(mnist_bench=None), "machine_info.mnist_bench is None"),
        (lambda doc: doc["machine_info"]["mnist_bench"].update(peak_gflops=None), ""),  # not probed: no note
        (lambda doc: doc["machine_info"]["mnist_bench"].update(peak_gflops={"cpu_fp32": "x"}), "peak_gflops holds"),
    ],
)
def test_broken_machine_facts_are_noted_and_the_cases_kept(
    tmp_path, cli, capsys, cpu_result, edited_result, edit, note
):
    path = edited_result(cpu_result, edit)
    results = load_results([path])
    assert len(results.frame) == 3 and results.problems == []
    assert any(note in n for n in results.notes) if note else not results.notes
    assert results.frame["peak_fraction"].isna().all()
    assert cli("report", str(path), "--out", str(tmp_path / "out")) == 0
    assert note in capsys.readouterr().err
    assert cli("compare", str(path), str(cpu_result)) == 0


def test_an_interrupted_case_is_counted_not_crashed_on(cpu_result, edited_result):
    def cut(doc):  # what pytest-benchmark writes for a case stopped by Ctrl-C: no extra_info
        doc["benchmarks"].append({"name": "test_train[x]", "param": "x", "extra_info": {}, "stats": {}})

    results = load_results([edited_result(cpu_result, cut)])
    assert len(results.frame) == 3
    assert "1 entry without mnist-bench fields" in results.problems[0] and "Ctrl-C" in results.problems[0]


def test_an_autosave_file_without_round_times_is_read_and_compared(cpu_result, edited_result, cli, capsys):
    """pytest-benchmark's --benchmark-autosave leaves stats.data out: the quartiles stand in."""

    def autosave(doc):
        for b in doc["benchmarks"]:
            del b["stats"]["data"]

    path = edited_result(cpu_result, autosave, "0001_autosave.json")
    results = load_results([path])
    assert results.problems == [] and len(results.frame) == 3
    assert results.frame["data"].map(len).eq(0).all()
    assert cli("compare", str(cpu_result), str(path)) == 0
    # the quartiles stand for the spread: one case's are too wide to have seen 10%
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "2 unchanged, 1 undecided" and "recorded quartiles, no rounds" in out


def test_every_older_shape_is_upgraded_to_the_current_format(record, gpu_result):
    from mnist_models.reporting.schema import FORMAT, upgrade

    for path in [*record, gpu_result]:
        doc = upgrade(json.loads(path.read_text()))
        facts = doc["machine_info"]["mnist_bench"]
        assert facts["format"] == FORMAT and not [k for k in facts if k.startswith("gpu_")]
        if path in record:  # real files carry pytest-benchmark's py-cpuinfo flags to fill ours from
            assert "cpu_flags" in facts and isinstance(facts["cpu_bf16_native"], bool)
        for b in doc["benchmarks"]:
            info = b["extra_info"]
            assert "native" in info and "cuda_peak_memory_mb" not in info and "data" in b["stats"]
            if info["operation"] == "ddp":
                assert "scaling_efficiency" in info


def test_a_format_1_gpu_file_reads_as_the_current_one(gpu_result):
    from mnist_models.reporting.schema import read_machine_facts, read_result

    doc, _ = read_result(gpu_result)
    facts, _ = read_machine_facts(doc, gpu_result)
    old = json.loads(gpu_result.read_text())["machine_info"]["mnist_bench"]
    names = {k.removeprefix("gpu_") for k in old if k.startswith("gpu_")}
    assert names and all(f"accelerator_{n}" in facts or n == "compute_capability" for n in names)


def test_scaling_efficiency_of_a_planted_speed_up():
    """Two ranks at 1.5x one rank's images/s: 75%; a case with no one-rank twin: None."""
    from mnist_models.reporting.results import scaling_efficiencies

    base = {"operation": "ddp", "model": "cnn", "device": "cpu", "batch_size": 256, "threads_per_rank": 1}
    entries = [
        {**base, "world_size": 1, "samples_per_second": 1000.0},
        {**base, "world_size": 2, "samples_per_second": 1500.0},
        {**base, "world_size": 4, "samples_per_second": 4000.0},
        {**base, "threads_per_rank": 2, "world_size": 2, "samples_per_second": 900.0},
    ]
    assert scaling_efficiencies(entries) == [1.0, 0.75, 1.0, None]


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda doc: doc["machine_info"]["mnist_bench"].update(format="3"), 'format is "3", expected a whole number'),
        (lambda doc: doc["machine_info"]["mnist_bench"].update(format=None), "format is None, expected a whole number"),
    ],
)
def test_a_format_that_is_not_a_number_is_named_exit_2(cli, capsys, cpu_result, edited_result, edit, message):
    path = edited_result(cpu_result, edit, "odd-format.json")
    for command in ("score", "report", "compare"):
        extra = {"report": ["--out", str(path.parent / "report")], "compare": [str(cpu_result)]}.get(command, [])
        assert cli(command, str(path), *extra) == 2
        err = capsys.readouterr().err  # the file named as every unusable file is, not a TypeError (exit 3)
        assert message in err and "unexpected" not in err, err


def test_unhashable_case_fields_and_machine_facts_are_dropped_with_a_line(cli, capsys, cpu_result, edited_result):
    def edit(doc):
        doc["benchmarks"][0]["extra_info"]["scaling"] = [1]
        doc["machine_info"]["mnist_bench"]["cpu_model"] = ["x"]

    path = edited_result(cpu_result, edit, "odd-fields.json")
    results = load_results([path])
    assert len(results.frame) == 2 and "extra_info.scaling is [1], expected a name or nothing" in results.problems[0]
    assert any("cpu_model is ['x']" in n for n in results.notes)
    assert cli("compare", str(cpu_result), str(path)) == 2  # compare refuses a file it would judge in part
    assert "extra_info.scaling is [1]" in capsys.readouterr().err
    only_facts = edited_result(
        cpu_result, lambda doc: doc["machine_info"]["mnist_bench"].update(cpu_model=["x"]), "odd-facts.json"
    )
    assert cli("compare", str(cpu_result), str(only_facts)) == 0
    assert "3 unchanged" in capsys.readouterr().out


def test_a_recipe_is_named_by_what_it_sets_and_an_older_file_by_the_defaults_it_ran():
    old = {
        "epochs": 3,
        "batch_size": 256,
        "lr": 0.006,
        "optimizer": "adam",
        "schedule": "onecycle",
        "precision": "bf16",
    }  # a file made before the cadence and the recipe knobs were recorded
    recorded = {
        **old,
        "eval_every": 1.0,
        "eval_from": None,
        "cycle_epochs": None,
        "label_smoothing": 0.0,
        "dropout": None,
    }
    assert (
        recipe_name({"recipe": old})
        == recipe_name({"recipe": recorded})
        == ("3 epochs at bs256, lr 0.006, adam onecycle, evaluated every 1 epochs")
    )
    new = {
        **recorded,
        "epochs": 2,
        "cycle_epochs": 1.4,
        "label_smoothing": 0.1,
        "dropout": 0.0,
        "eval_from": 1.1,
        "eval_every": 0.1,
    }
    assert recipe_name({"recipe": new}) == (
        "2 epochs at bs256, lr 0.006, adam onecycle over 1.4 epochs, "
        "label smoothing 0.1, dropout 0, evaluated every 0.1 epochs from epoch 1.1"
    )
    assert recipe_name({"recipe": {**new, "dropout": 0.25}}) != recipe_name({"recipe": new})
    assert recipe_name({}) == ""
