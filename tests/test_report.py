import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mnist_models.cli import main
from mnist_models.report import load_results, machine_matrix, render_markdown, speedup_table, train_table

DATA = Path(__file__).parent / "data"
CPU, GPU = DATA / "fixture-cpu.json", DATA / "fixture-gpu.json"
RESULTS_DIR = Path(__file__).parents[1] / "results"
RESULTS = sorted(RESULTS_DIR.glob("*.json"))


def test_fixture_gives_exact_table_numbers():
    results = load_results([CPU])
    assert results.problems == [] and len(results.frame) == 3
    t = train_table(results.frame).set_index("setup")
    assert t.loc["resident", "epoch s"] == 10.0 and t.loc["resident", "images/s"] == 6000
    assert t.loc["resident", "of peak"] == pytest.approx(0.25)
    assert t.loc["seed loader", "images/s"] == 3000
    md = render_markdown(results)
    assert "| fixture-cpu | cnn     | cpu      |      64 | resident    |        10 |      6,000 | 25.0%" in md
    assert "| CPU                          | Test CPU " in md and "| 2 physical, 2 logical; 2 torch threads" in md
    assert "No file here holds both cpu and cuda" in md


def test_gpu_over_cpu_and_machine_matrix():
    results = load_results([CPU, GPU])
    speed = speedup_table(results.frame)
    assert speed["speedup"].tolist() == [10.0] and speed["machine"].tolist() == ["fixture-gpu"]
    matrix = machine_matrix(results.frame).set_index("case")
    assert matrix.loc["train-cnn-cpu-bs64", "fixture-gpu vs fixture-cpu"] == 1.0
    assert matrix.loc["train-cnn-cpu-bs64", "workload"] == "60,000 images"
    assert matrix["fixture-gpu vs fixture-cpu"].isna().sum() == 2  # the cuda cases: cpu file lacks them
    assert "## Across machines" in render_markdown(results)
    cuda = train_table(results.frame).query("device == 'cuda'").set_index("setup")
    assert cuda.loc["cuda graph", "images/s"] == 120_000 and cuda.loc["resident", "images/s"] == 60_000


@pytest.mark.skipif(not RESULTS, reason="no committed result file yet")
def test_real_result_file_renders_every_output(tmp_path, capsys):
    assert main(["report", *map(str, RESULTS), "--out", str(tmp_path)]) == 0
    for name in ("report.md", "results.csv", "throughput.png", "training.png", "loaders.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    report = (tmp_path / "report.md").read_text()
    assert "train" in report and "| cnn" in report and "Time to accuracy" in report


def test_report_keeps_its_inputs(tmp_path):
    src = str(shutil.copy(CPU, tmp_path / "cpu.json"))
    before = Path(src).read_bytes()
    assert main(["report", src, "--out", str(tmp_path)]) == 0
    assert Path(src).read_bytes() == before and (tmp_path / "report.md").exists()


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON, truncated or corrupt"),
    (CPU.read_text()[:400], "not valid JSON, truncated or corrupt"),
    (json.dumps({"benchmarks": [{"name": "test_x", "extra_info": {}, "stats": {}}]}),
     "without mnist-bench fields"),
    (json.dumps([1, 2]), "not a pytest-benchmark result"),
])
def test_bad_file_is_named_and_the_rest_go_on(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["report", str(bad), str(CPU), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and message in err[0]
    assert (tmp_path / "out" / "report.md").exists()
    assert main(["report", str(bad), "--out", str(tmp_path / "out2")]) == 2
    assert "no usable result file" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def _edited(src: Path, dst: Path, edit) -> Path:
    doc = json.loads(src.read_text())
    edit(doc)
    dst.write_text(json.dumps(doc))
    return dst


def test_committed_machines_side_by_side(tmp_path):
    files = [RESULTS_DIR / "epyc-2core.json", RESULTS_DIR / "epyc-avx2-2core.json"]
    results = load_results(files)
    assert results.problems == [] and set(results.machines) == {"epyc-2core", "epyc-avx2-2core"}
    md = render_markdown(results)
    machines = md.split("## Training")[0]
    assert "| bf16 on the CPU " in machines and "| native " in machines and "emulated (no AVX512-BF16" in machines
    assert "AVX512 (from flags)" in machines and "AVX2 (from flags)" in machines
    assert "family 25, model 17, stepping 1" in machines and "family 23, model 1, stepping 2" in machines
    shares = [float(x) for x in re.findall(r"\| ([\d.]+)%", md.split("## GPU over CPU")[0].split("## Training")[1])]
    assert shares and max(shares) <= 100  # of peak (and test accuracy): never above 100%
    across = md.split("## Across machines")[1]
    assert "| train-cnn-cpu-bs256 " in across and "| 60,000 images " in across
    assert "not run (bf16 emulated there)" in across and "nan" not in across
    row = next(line for line in across.splitlines() if line.startswith("| train-cnn-cpu-bs256 "))
    assert "14,004" in row and "4,696" in row and "0.34x" in row  # images/s, and the ratio of those


def test_an_impossible_share_of_peak_is_not_printed(tmp_path):
    def low_probe(doc):  # a probe that under-read the machine by 100x
        doc["machine_info"]["mnist_bench"]["peak_gflops"]["cpu_fp32"] = 1.0
    results = load_results([_edited(CPU, tmp_path / "low.json", low_probe)])
    assert results.frame["peak_fraction"].isna().all() and results.frame["peak_over"].all()
    md = render_markdown(results)
    assert "2500.0%" not in md and "probe or the file's FLOP count is wrong there" in md


def test_quick_runs_stay_out_of_a_report_of_full_runs(tmp_path, capsys):
    def quick(doc):
        doc["machine_info"]["mnist_bench"].update(quick=True, label="fixture-quick")
        for b in doc["benchmarks"]:
            b["extra_info"]["samples"] = 4096
    quick_file = _edited(CPU, tmp_path / "quick.json", quick)
    results = load_results([CPU, quick_file])
    assert list(results.machines) == ["fixture-cpu"] and "a --quick run, left out" in results.problems[0]
    both = load_results([CPU, quick_file], include_quick=True)
    matrix = machine_matrix(both.frame).set_index(["case", "workload"])
    assert pd.isna(matrix.loc[("train-cnn-cpu-bs64", "60,000 images"), "fixture-quick vs fixture-cpu"])
    assert len(matrix) == 6  # each case twice, once per workload
    assert main(["report", str(quick_file), "--out", str(tmp_path / "q")]) == 0  # alone: reported
    assert "fixture-quick" in (tmp_path / "q" / "report.md").read_text()
