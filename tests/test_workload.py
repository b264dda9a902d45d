"""The workload version: what each case times is fingerprinted, and a change to it without a
new version is caught here, before a result file of unlike software is ranked beside others."""

import dataclasses

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
