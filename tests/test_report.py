import json
import shutil
from pathlib import Path

import pytest

from mnist_models.cli import main
from mnist_models.report import load_results, machine_matrix, render_markdown, speedup_table, train_table

DATA = Path(__file__).parent / "data"
CPU, GPU = DATA / "fixture-cpu.json", DATA / "fixture-gpu.json"
RESULTS = sorted((Path(__file__).parents[1] / "results").glob("*.json"))


def test_fixture_gives_exact_table_numbers():
    results = load_results([CPU])
    assert results.problems == [] and len(results.frame) == 3
    t = train_table(results.frame).set_index("setup")
    assert t.loc["resident", "epoch s"] == 10.0 and t.loc["resident", "images/s"] == 6000
    assert t.loc["resident", "of peak"] == pytest.approx(0.25)
    assert t.loc["seed loader", "images/s"] == 3000
    md = render_markdown(results)
    assert "| fixture-cpu | cnn     | cpu      |      64 | resident    |        10 |      6,000 | 25.0%" in md
    assert "Test CPU, 2 cores" in md and "No file here holds both cpu and cuda" in md


def test_gpu_over_cpu_and_machine_matrix():
    results = load_results([CPU, GPU])
    speed = speedup_table(results.frame)
    assert speed["speedup"].tolist() == [10.0] and speed["machine"].tolist() == ["fixture-gpu"]
    matrix = machine_matrix(results.frame).set_index("case")
    assert matrix.loc["train-cnn-cpu-bs64", "fixture-gpu speed vs fixture-cpu"] == 1.0
    assert matrix["fixture-gpu speed vs fixture-cpu"].isna().sum() == 2  # the cuda cases: cpu file lacks them
    assert "## Across machines" in render_markdown(results)
    cuda = train_table(results.frame).query("device == 'cuda'").set_index("setup")
    assert cuda.loc["cuda graph", "images/s"] == 120_000 and cuda.loc["resident", "images/s"] == 60_000


@pytest.mark.skipif(not RESULTS, reason="no committed result file yet")
def test_real_result_file_renders_every_output(tmp_path, capsys):
    assert main(["report", *map(str, RESULTS), "--out", str(tmp_path)]) == 0
    for name in ("report.md", "results.csv", "throughput.png", "epoch_time.png", "loaders.png"):
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
