import json
from pathlib import Path

import pytest

from mnist_models.cli import main
from mnist_models.compare import compare, pool
from mnist_models.results import load_results

DATA = Path(__file__).parent / "data"
CPU, GPU = DATA / "fixture-cpu.json", DATA / "fixture-gpu.json"


def _scaled(src: Path, dst: Path, factor: float, jitter: list[float] | None = None) -> Path:
    """A copy of a result file with every round's time multiplied (and optionally jittered)."""
    doc = json.loads(src.read_text())
    for b in doc["benchmarks"]:
        s = b["stats"]
        s["data"] = [x * factor * (jitter[i % len(jitter)] if jitter else 1) for i, x in enumerate(s["data"])]
        for k in ("min", "max", "mean", "median", "q1", "q3"):
            s[k] *= factor
    dst.write_text(json.dumps(doc))
    return dst


def test_compare_identical_files_is_0(capsys):
    assert main(["compare", str(CPU), str(CPU)]) == 0
    assert "3 unchanged" in capsys.readouterr().out


def test_compare_clear_2x_slowdown_is_1(tmp_path, capsys):
    slow = _scaled(CPU, tmp_path / "slow.json", 2.0)
    assert main(["compare", str(CPU), str(slow), "--threshold", "10%"]) == 1
    out = capsys.readouterr().out
    assert "3 slower" in out and "+100.0%" in out and "mann-whitney" in out


def test_compare_noise_is_not_a_regression(tmp_path, capsys):
    # medians 12% apart, but the rounds overlap: Mann-Whitney finds nothing real
    noisy = _scaled(CPU, tmp_path / "noisy.json", 1.12, jitter=[0.8, 1.15, 0.85, 1.2, 0.9])
    table = compare(load_results([CPU]).frame, load_results([noisy]).frame, 0.10)
    assert (table["change"] > 0.10).all() and (table["verdict"] == "unchanged").all()
    assert main(["compare", str(CPU), str(noisy)]) == 0


def test_compare_single_rounds_say_the_threshold_decided(tmp_path):
    doc = json.loads(CPU.read_text())
    for b in doc["benchmarks"]:
        b["stats"].update(data=[b["stats"]["median"]], q1=b["stats"]["median"], q3=b["stats"]["median"], rounds=1)
    one = tmp_path / "one.json"
    one.write_text(json.dumps(doc))
    table = compare(load_results([one]).frame, load_results([_scaled(one, tmp_path / "s.json", 1.5)]).frame)
    assert len(table) == 3 and (table["verdict"] == "slower").all() and set(table["test"]) == {"threshold"}
    two = _scaled(CPU, tmp_path / "two.json", 1.5)  # 5 rounds a side whose quartiles do not overlap
    doc = json.loads(two.read_text())
    for b in doc["benchmarks"]:
        b["stats"].update(data=b["stats"]["data"][:2], rounds=2)
    two.write_text(json.dumps(doc))
    base = json.loads(CPU.read_text())
    for b in base["benchmarks"]:
        b["stats"].update(data=b["stats"]["data"][:2], rounds=2)
    (tmp_path / "base2.json").write_text(json.dumps(base))
    table = compare(load_results([tmp_path / "base2.json"]).frame, load_results([two]).frame)
    assert set(table["test"]) == {"iqr"}  # 2 and 2 rounds: too few for the test to reach p < 0.05


def test_compare_missing_and_new_cases(tmp_path, capsys):
    assert main(["compare", str(CPU), str(GPU), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## mnist-bench comparison") and "| new" in out and "2 new" in out
    assert main(["compare", str(GPU), str(CPU)]) == 0
    assert "2 missing" in capsys.readouterr().out


def test_compare_bad_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "half.json"
    bad.write_text(CPU.read_text()[:100])
    assert main(["compare", str(CPU), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}: not valid JSON" in err
    assert main(["compare", str(CPU), str(tmp_path / "nope.json")]) == 2
    assert "cannot read it" in capsys.readouterr().err


def test_compare_pools_runs_from_folders(tmp_path, capsys):
    base, new = tmp_path / "base", tmp_path / "new"
    base.mkdir(), new.mkdir()
    for i, factor in enumerate([1.0, 1.02, 0.98]):
        _scaled(CPU, base / f"run{i}.json", factor)
        _scaled(CPU, new / f"run{i}.json", factor * 2)
    assert main(["compare", str(base), str(base)]) == 0
    capsys.readouterr()
    assert main(["compare", str(base), str(new)]) == 1
    out = capsys.readouterr().out
    assert "3 slower" in out
    pooled = pool(load_results(sorted(new.glob("*.json"))).frame)
    assert len(pooled) == 3 and (pooled["rounds"] == 15).all()
    assert pooled.set_index("case").loc["train-cnn-cpu-bs64", "median"] == pytest.approx(20.0, rel=0.01)


def test_compare_empty_folder_exits_2(tmp_path, capsys):
    assert main(["compare", str(tmp_path), str(CPU)]) == 2
    assert "without result JSON files" in capsys.readouterr().err


def test_quick_against_full_is_not_comparable(tmp_path, capsys):
    def quick(doc, factor):
        doc["machine_info"]["mnist_bench"]["quick"] = True
        for b in doc["benchmarks"]:
            b["extra_info"]["samples"] //= 15  # 4,000 of 60,000 images: 15x less time per round
            b["stats"]["data"] = [x * factor / 15 for x in b["stats"]["data"]]
            for k in ("min", "max", "mean", "median", "q1", "q3"):
                b["stats"][k] *= factor / 15
    doc = json.loads(CPU.read_text())
    quick(doc, 1.0)
    (tmp_path / "quick.json").write_text(json.dumps(doc))
    assert main(["compare", str(CPU), str(tmp_path / "quick.json")]) == 0
    out = capsys.readouterr().out
    assert "3 not comparable" in out and "workloads differ: 60,000 vs 4,000 images per round" in out
    assert "faster" not in out  # 15x less time per round is not a speed-up
    # one case compared like with like regresses: exit 1, the others stay not comparable
    doc = json.loads(CPU.read_text())
    doc["benchmarks"][0]["stats"]["data"] = [x * 2 for x in doc["benchmarks"][0]["stats"]["data"]]
    for k in ("min", "max", "mean", "median", "q1", "q3"):
        doc["benchmarks"][0]["stats"][k] *= 2
    quick_doc = json.loads((tmp_path / "quick.json").read_text())
    quick_doc["benchmarks"][0] = doc["benchmarks"][0]
    (tmp_path / "mixed.json").write_text(json.dumps(quick_doc))
    assert main(["compare", str(CPU), str(tmp_path / "mixed.json")]) == 1
    out = capsys.readouterr().out
    assert "1 slower, 2 not comparable" in out
