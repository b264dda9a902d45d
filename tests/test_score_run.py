"""`mnist-bench run --score`: passes of blocks of rounds, a budget that is the whole command's,
and a real run on MNIST whose file the score reads."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from mnist_models.harness import score_run
from mnist_models.harness.score_run import FEWEST, ScoreRun, run_passes
from mnist_models.machine.sentinel import Trajectory


class Rounds:
    """A case whose rounds take the given seconds in turn (its own time, as a CaseTimer
    records it); it counts the rounds it ran."""

    def __init__(self, seconds: list[float], operation: str = "infer"):
        self.seconds, self.inner, self.ran = seconds, [], 0
        self.case = SimpleNamespace(operation=operation)

    def setup(self) -> None:
        pass

    def target(self) -> None:
        self.inner.append(self.seconds[self.ran % len(self.seconds)])
        time.sleep(self.inner[-1])
        self.ran += 1


def test_a_short_case_runs_a_block_of_rounds_each_pass_and_the_first_pass_fixes_its_size(monkeypatch):
    monkeypatch.setattr(score_run, "BLOCK", 0.1)
    short, long = Rounds([0.01, 0.05, 0.04]), Rounds([0.15])  # the short one's rounds differ
    train = Rounds([0.01], operation="train")  # as short, but an epoch whose accuracy is checked
    said: list[str] = []
    timers = {"short": short, "long": long, "train": train}
    passes = run_passes(timers, ScoreRun(), time.monotonic() + 60, Trajectory(), said.append)  # type: ignore[arg-type]
    assert passes.block == {"short": 3, "long": 1, "train": 1}  # 0.1 s of rounds: 0.01 + 0.05 + 0.04
    assert short.ran == 3 * passes.count and long.ran == passes.count
    assert passes.rounds["short"][0] == pytest.approx((0.01 + 0.05 + 0.04) / 3)  # a pass's round: the block's mean
    assert passes.count == FEWEST and passes.stopped.startswith("the interval reached")  # alike passes: narrow


def test_passes_stop_at_the_fewest_an_interval_needs_once_the_deadline_has_passed(monkeypatch):
    monkeypatch.setattr(score_run, "BLOCK", 0.0)
    wander = Rounds([0.01, 0.02, 0.04])  # a wide interval: only the budget stops it
    said: list[str] = []
    passes = run_passes({"case": wander}, ScoreRun(budget=5), time.monotonic() - 1, Trajectory(), said.append)  # type: ignore[arg-type]
    assert passes.count == FEWEST
    assert passes.stopped.startswith("the budget of 5 s ended after 3 passes, the interval at")
    assert said[-1].startswith("pass 3: 0 s, interval +-")


@pytest.mark.slow
def test_a_score_run_on_mnist_writes_a_file_the_score_reads_and_counts_its_start_up_in_its_budget(
    tmp_path, monkeypatch, mnist_root, cli, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_ROOT", str(mnist_root))
    assert cli("run", "--score", "quick", "--budget", "1") == 0
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "results" / "quick.json").read_text())
    assert doc["mnist_bench"]["passes"] == FEWEST and "the budget of 1 s ended" in doc["mnist_bench"]["stopped"]
    for b in doc["benchmarks"]:
        assert len(b["stats"]["data"]) == FEWEST and b["extra_info"]["pass_rounds"] >= 1, b["param"]
    assert "of 18 cases" in out.splitlines()[-1]  # the score's line: the set, read back from the file
    assert "over its budget of 1 s: the 3 passes an interval needs do not fit it on this machine" in out
    assert cli("score", "results/quick.json") == 0
