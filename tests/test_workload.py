"""The workload version: what each case times is fingerprinted, and a change to it without a
new version is caught here, before a result file of unlike software is ranked beside others."""

import dataclasses
import json

from mnist_models.harness import recipes
from mnist_models.harness.cases import BenchOptions, Case
from mnist_models.harness.workload import FINGERPRINTS, VERSION, case_hash, fingerprint
from mnist_models.machine.devices import CLASSES


def test_the_case_definitions_are_the_versions_own():
    assert fingerprint() == FINGERPRINTS[VERSION], (
        "a case's definition changed (a recipe, a tuned path, a model, a loader or the images a round): "
        "raise harness/workload.py's VERSION, record fingerprint() for it, and make the score's reference again"
    )


def test_a_planted_recipe_change_moves_the_fingerprint_and_its_case_alone(monkeypatch):
    opts, amx = BenchOptions(devices=("cpu",)), CLASSES["cpu-amx"]
    tta, train = Case("tta", "cnn", "cpu", 256, "bf16"), Case("train", "cnn", "cpu", 256)
    before = (fingerprint(), case_hash(tta, opts, amx), case_hash(train, opts, amx))
    recipe = recipes.TTA["cnn"]
    monkeypatch.setitem(recipes.TTA, "cnn", recipe._replace(config=dataclasses.replace(recipe.config, lr=0.05)))
    after = (fingerprint(), case_hash(tta, opts, amx), case_hash(train, opts, amx))
    assert after[0] != before[0] and after[1] != before[1] and after[2] == before[2]


def test_the_tuned_path_of_each_device_class_is_part_of_the_definition():
    """The CNN's inference compiles on a matrix engine only: another class, another case."""
    opts, case = BenchOptions(devices=("cpu",)), Case("infer", "cnn", "cpu", 256)
    assert case_hash(case, opts, CLASSES["cpu-amx"]) != case_hash(case, opts, CLASSES["cpu-bf16"])
    assert case_hash(Case("infer", "mlp", "cpu", 256), opts, CLASSES["cpu-amx"]) == case_hash(
        Case("infer", "mlp", "cpu", 256), opts, CLASSES["cpu-bf16"]
    )


def test_a_planted_recipe_change_is_another_workload_to_score_and_compare(monkeypatch, current_run, edited_result):
    """A copy of the code with the CNN's time-to-accuracy lr doubled records another fingerprint
    and another definition of that case: score ranks its file nowhere, and compare sets that
    case apart while it still compares the rest."""
    from mnist_models.reporting.compare import compare
    from mnist_models.reporting.results import load_results
    from mnist_models.reporting.score import ANOTHER_WORKLOAD, scores

    doc = json.loads(current_run.read_text())
    tta = Case("tta", "cnn", "cpu", 256, "bf16")
    recorded = next(b for b in doc["benchmarks"] if b["param"] == tta.id)["extra_info"]["workload"]
    opts = BenchOptions(devices=("cpu",))
    cls = next(c for c in CLASSES.values() if case_hash(tta, opts, c) == recorded)  # the file is this code's
    recipe = recipes.TTA["cnn"]
    monkeypatch.setitem(
        recipes.TTA, "cnn", recipe._replace(config=dataclasses.replace(recipe.config, lr=2 * recipe.config.lr))
    )
    planted_print, planted_case = fingerprint(), case_hash(tta, opts, cls)
    monkeypatch.undo()

    def planted(doc):  # what the planted copy records; its times are left as they were
        doc["machine_info"]["mnist_bench"]["label"] = "planted"
        doc["mnist_bench"]["workload_fingerprint"] = planted_print
        for b in doc["benchmarks"]:
            if b["param"] == tta.id:
                b["extra_info"]["workload"] = planted_case

    both = load_results([current_run, edited_result(current_run, planted)]).frame
    table = scores(both).set_index("machine")
    assert table.loc["planted", "note"].startswith(ANOTHER_WORKLOAD) and not table.loc["planted", "ranked"]
    assert table.loc[doc["machine_info"]["mnist_bench"]["label"], "ranked"]  # the control: the same times, ranked

    base, new = (both[both["machine"] == m] for m in (doc["machine_info"]["mnist_bench"]["label"], "planted"))
    verdicts = compare(base, new).set_index("case")["verdict"]
    assert verdicts[tta.id] == "not comparable"
    assert (verdicts.drop(tta.id) != "not comparable").all()
