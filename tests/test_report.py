import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mnist_models.cli import main
from mnist_models.reporting import plots
from mnist_models.reporting.markdown import escape
from mnist_models.reporting.report import render_markdown
from mnist_models.reporting.results import load_results
from mnist_models.reporting.tables import (
    compile_table,
    infer_table,
    machine_matrix,
    scaling_table,
    speedup_table,
    train_table,
    trimmed_mean,
    tta_table,
)


def test_fixture_gives_exact_table_numbers(cpu_result):
    results = load_results([cpu_result])
    assert results.problems == [] and len(results.frame) == 3
    t = train_table(results.frame).set_index("setup")
    assert t.loc["resident", "epoch s"] == 10.0 and t.loc["resident", "images/s"] == 6000
    assert t.loc["resident", "of peak"] == pytest.approx(0.25)
    assert t.loc["notebook loader", "images/s"] == 3000
    md = render_markdown(results)
    assert "| fixture-cpu | cnn     | cpu      |      64 | resident        |        10 |      6,000 | 25.0%" in md
    assert "| CPU                          | Test CPU " in md and "| 2 physical, 2 logical; 2 torch threads" in md
    assert "No file here holds both cpu and accelerator results" in md


def test_gpu_over_cpu_and_machine_matrix(cpu_result, gpu_result):
    results = load_results([cpu_result, gpu_result])
    speed = speedup_table(results.frame)
    assert speed["speedup"].tolist() == [10.0] and speed["machine"].tolist() == ["fixture-gpu"]
    matrix = machine_matrix(results.frame).set_index("case")
    assert matrix.loc["train-cnn-cpu-bs64", "fixture-gpu vs fixture-cpu"] == 1.0
    assert matrix.loc["train-cnn-cpu-bs64", "samples"] == 60_000
    assert matrix["fixture-gpu vs fixture-cpu"].isna().sum() == 2  # the cuda cases: cpu file lacks them
    assert "## Across machines" in render_markdown(results)
    cuda = train_table(results.frame).query("device == 'cuda'").set_index("setup")
    assert cuda.loc["cuda graph", "images/s"] == 120_000 and cuda.loc["resident", "images/s"] == 60_000


def test_real_result_files_render_every_output(tmp_path, capsys, record):
    assert main(["report", *map(str, record), "--out", str(tmp_path)]) == 0
    for name in (
        "report.md",
        "results.csv",
        "throughput.png",
        "training.png",
        "loaders.png",
        "machines.png",
        "scaling.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    report = (tmp_path / "report.md").read_text()
    zen5 = next(p for p in record if p.stem == "epyc-zen5-2core")
    row = next(
        line
        for line in report.split("## Training")[1].splitlines()
        if line.startswith("| epyc-zen5-2core | cnn ") and "|     256 | resident " in line
    )
    entry = next(b for b in json.loads(zen5.read_text())["benchmarks"] if b["param"] == "train-cnn-cpu-bs256")
    assert f"{entry['stats']['median']:.4g}" in row and f"{entry['extra_info']['samples_per_second']:,.0f}" in row
    assert "| epyc-zen5-2core | cnn     | cpu      | resident bf16 |" in report.split("## Time to accuracy")[1]


def test_another_machine_joins_a_copy_of_the_record(tmp_path, cli, capsys, repo, another_machine):
    """What users do: commit one more machine's file beside results/'s; report and compare take it."""
    folder = tmp_path / "results"
    folder.mkdir()
    for path in (repo / "results").glob("*.json"):
        shutil.copy(path, folder)
    doc = json.loads(another_machine.read_text())
    doc["machine_info"]["mnist_bench"]["label"] = "fifth-machine"  # a machine the record does not hold
    new = folder / "fifth-machine.json"
    new.write_text(json.dumps(doc))
    files = sorted(folder.glob("*.json"))
    assert cli("report", *map(str, files), "--out", str(tmp_path / "report")) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    label = escape("fifth-machine")
    assert label in md.split("## Training")[0]  # a column of the machine table
    assert md.split("## Training")[1].count(f"| {label} ") > 10  # its cases in the tables
    assert f"{label} images/s" in md.split("## Across machines")[1]
    capsys.readouterr()
    assert cli("compare", str(new), str(new)) == 0
    out = capsys.readouterr().out
    cases = len(json.loads(new.read_text())["benchmarks"])
    # the same file twice: nothing moved; the noisiest cases could not have seen 10% in 5 rounds
    counts = dict(reversed(part.split(" ", 1)) for part in out.strip().splitlines()[-1].split(", "))
    assert set(counts) <= {"unchanged", "undecided"} and sum(map(int, counts.values())) == cases


def test_report_keeps_its_inputs(tmp_path, cpu_result):
    src = str(shutil.copy(cpu_result, tmp_path / "cpu.json"))
    before = Path(src).read_bytes()
    assert main(["report", src, "--out", str(tmp_path)]) == 0
    assert Path(src).read_bytes() == before and (tmp_path / "report.md").exists()


@pytest.mark.parametrize(
    "content,message",
    [
        ("{not json", "not valid JSON, truncated or corrupt"),
        ("{first 400 bytes}", "not valid JSON, truncated or corrupt"),
        (json.dumps({"benchmarks": [{"name": "test_x", "extra_info": {}, "stats": {}}]}), "without mnist-bench fields"),
        (json.dumps([1, 2]), "not a pytest-benchmark result"),
    ],
)
def test_bad_file_is_named_and_the_rest_go_on(tmp_path, capsys, content, message, cpu_result):
    bad = tmp_path / "bad.json"
    bad.write_text(cpu_result.read_text()[:400] if content == "{first 400 bytes}" else content)
    assert main(["report", str(bad), str(cpu_result), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and message in err[0]
    assert (tmp_path / "out" / "report.md").exists()
    assert main(["report", str(bad), "--out", str(tmp_path / "out2")]) == 2
    assert "no usable result file" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def test_two_machines_side_by_side(record):
    files = [p for p in record if p.stem in ("epyc-2core", "epyc-avx2-2core")]
    results = load_results(files)
    assert results.problems == [] and set(results.machines) == {"epyc-2core", "epyc-avx2-2core"}
    md = render_markdown(results)
    machines = md.split("## Training")[0]
    assert "| bf16 on the CPU " in machines and "| native " in machines and "emulated (no AVX512-BF16" in machines
    assert "AVX512 (from flags)" in machines and "AVX2 (from flags)" in machines
    assert "family 25, model 17, stepping 1" in machines and "family 23, model 1, stepping 2" in machines
    shares = [float(x) for x in re.findall(r"\| ([\d.]+)%", md.split("## Inference")[0].split("## Training")[1])]
    assert shares and max(shares) <= 100  # of peak (and test accuracy): never above 100%
    across = md.split("## Across machines")[1]
    assert "| train-cnn-cpu-bs256 " in across and "| 60,000 images " in across
    assert "not run (bf16 emulated there)" in across and "nan" not in across
    row = next(line for line in across.splitlines() if line.startswith("| train-cnn-cpu-bs256 "))
    speed = {
        p.stem: next(
            b["extra_info"]["samples_per_second"]
            for b in json.loads(p.read_text())["benchmarks"]
            if b["param"] == "train-cnn-cpu-bs256"
        )
        for p in files
    }
    base, other = speed["epyc-2core"], speed["epyc-avx2-2core"]  # images/s as the files hold them
    assert f"{base:,.0f}" in row and f"{other:,.0f}" in row and f"{other / base:.2f}x" in row


def test_an_impossible_share_of_peak_is_not_printed(tmp_path, cpu_result, edited_result):
    def low_probe(doc):  # a probe that under-read the machine by 100x
        doc["machine_info"]["mnist_bench"]["peak_gflops"]["cpu_fp32"] = 1.0

    results = load_results([edited_result(cpu_result, low_probe, "low.json")])
    assert results.frame["peak_fraction"].isna().all() and results.frame["peak_over"].all()
    md = render_markdown(results)
    assert "2500.0%" not in md and "probe or the file's FLOP count is wrong there" in md


def test_quick_runs_stay_out_of_a_report_of_full_runs(tmp_path, capsys, cpu_result, edited_result):
    def quick(doc):
        doc["machine_info"]["mnist_bench"].update(quick=True, label="fixture-quick")
        for b in doc["benchmarks"]:
            b["extra_info"]["samples"] = 4096

    quick_file = edited_result(cpu_result, quick, "quick.json")
    results = load_results([cpu_result, quick_file])
    assert list(results.machines) == ["fixture-cpu"] and "a --quick run, left out" in results.problems[0]
    both = load_results([cpu_result, quick_file], include_quick=True)
    matrix = machine_matrix(both.frame).set_index(["case", "samples"])
    assert pd.isna(matrix.loc[("train-cnn-cpu-bs64", 60_000), "fixture-quick vs fixture-cpu"])
    assert len(matrix) == 6  # each case twice, once per workload
    assert main(["report", str(quick_file), "--out", str(tmp_path / "q")]) == 0  # alone: reported
    assert "fixture-quick" in (tmp_path / "q" / "report.md").read_text()


def test_an_existing_report_is_kept_without_force(tmp_path, cli, capsys, cpu_result):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("mine")
    assert cli("report", str(cpu_result), "--out", str(out)) == 2
    assert "already holds report.md; pass --force" in capsys.readouterr().err
    assert (out / "report.md").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["report.md"]
    assert cli("report", str(cpu_result), "--out", str(out), "--force") == 0
    assert (out / "report.md").read_text().startswith("# mnist-bench report")


def test_a_planted_symlink_is_refused_whatever_force_says(tmp_path, cli, capsys, cpu_result):
    out, target = tmp_path / "out", tmp_path / "precious.txt"
    out.mkdir()
    target.write_text("keep me")
    (out / "throughput.png").symlink_to(target)
    for force in ([], ["--force"]):
        assert cli("report", str(cpu_result), "--out", str(out), *force) == 2
        assert "throughput.png is a symbolic link" in capsys.readouterr().err
    assert target.read_text() == "keep me" and (out / "throughput.png").is_symlink()
    assert sorted(p.name for p in out.iterdir()) == ["throughput.png"]  # nothing else written, no temporary file


def test_bad_baseline_or_out_writes_nothing(tmp_path, cli, capsys, cpu_result, gpu_result):
    assert cli("report", str(cpu_result), str(gpu_result), "--out", str(tmp_path / "out"), "--baseline", "nope") == 2
    assert "--baseline 'nope' is not among the machines: fixture-cpu, fixture-gpu" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    (tmp_path / "file").write_text("x")
    assert cli("report", str(cpu_result), "--out", str(tmp_path / "file")) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_full_disk_leaves_the_old_report_whole(small_disk, cli, capsys, record):
    (small_disk / "report.md").write_text("the old report")
    assert cli("report", *map(str, record), "--out", str(small_disk), "--force") == 3  # PNGs exceed 64 KiB
    assert "No space left on device" in capsys.readouterr().err
    assert [p.name for p in small_disk.iterdir()] == ["report.md"]
    assert (small_disk / "report.md").read_text() == "the old report"


HOSTILE = "lab$\\foo{$\n# heading <script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)>"


def test_labels_and_machine_strings_are_escaped(tmp_path, cli, cpu_result, gpu_result, edited_result):
    def hostile(doc):
        doc["machine_info"]["mnist_bench"].update(label=HOSTILE, cpu_model="<img src=x onerror=alert(1)>")

    path = edited_result(cpu_result, hostile, "hostile.json")
    assert cli("report", str(path), str(gpu_result), "--out", str(tmp_path / "out")) == 0  # mathtext: drawn as text
    md = (tmp_path / "out" / "report.md").read_text()
    assert "<script>" not in md and "<img" not in md
    assert "\\[x\\](javascript:" in md and not re.search(r"(?<!\\)\]\(javascript:", md)  # no link forms
    assert not [line for line in md.splitlines() if line.startswith("# heading")]
    assert "&lt;script&gt;" in md and "lab$\\\\foo{$ # heading" in md
    assert (tmp_path / "out" / "throughput.png").stat().st_size > 0


def test_a_file_of_time_to_accuracy_cases_only_is_reported(tmp_path, cli, edited_result, record):
    def tta_only(doc):
        doc["benchmarks"] = [b for b in doc["benchmarks"] if b["extra_info"]["operation"] == "tta"]

    path = edited_result(next(p for p in record if p.stem == "epyc-zen5-2core"), tta_only, "tta.json")
    assert cli("report", str(path), "--out", str(tmp_path / "out")) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| epyc-zen5-2core | cnn " in md.split("## Time to accuracy")[1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "index.html",
        "report.md",
        "results.csv",
    ]  # no empty plots


def test_many_cases_keep_every_row_and_figures_say_what_they_left_out(tmp_path, record):
    doc = json.loads(next(p for p in record if p.stem == "epyc-zen5-2core").read_text())
    entries = [b for b in doc["benchmarks"] if b["extra_info"]["operation"] == "train"]
    doc["benchmarks"] = []
    for i in range(600):  # 600 distinct cases: every one its own batch size
        b = json.loads(json.dumps(entries[i % len(entries)]))
        b["extra_info"]["batch_size"], b["param"] = i + 1, f"case-{i}"
        doc["benchmarks"].append(b)
    path = tmp_path / "many.json"
    path.write_text(json.dumps(doc))
    results = load_results([path])
    assert results.problems == [] and len(results.frame) == 600
    assert len(train_table(results.frame)) == 600  # the tables keep every case
    fig = plots.training_bars(results.frame)
    notes = [t.get_text() for t in fig.texts]
    assert len(fig.axes[0].get_xticklabels()) == plots.MAX_BARS
    fp32 = ((results.frame["precision"] == "fp32") & (results.frame["variant"] == "tuned")).sum()
    assert notes == [f"showing {plots.MAX_BARS} of {fp32:,} bars; report.md's tables hold every case"]


def test_the_report_tabulates_the_recorded_scaling_efficiency(record):
    frame = load_results(record).frame
    table = scaling_table(frame)
    ddp = frame[frame["operation"] == "ddp"]
    assert len(table) == len(ddp) > 0
    assert table["efficiency"].tolist() == ddp["scaling_efficiency"].tolist()


def test_what_torch_compile_buys_is_each_compiled_case_over_its_eager_twin(cpu_result, edited_result):
    def with_compiled(doc):
        eager = next(b for b in doc["benchmarks"] if b["param"] == "infer-cnn-cpu-bs256")
        twin = json.loads(json.dumps(eager))
        twin["param"] = twin["name"] = "infer-cnn-cpu-bs256-compiled"
        twin["extra_info"].update(variant="compiled", samples_per_second=25_000.0, compile_seconds=7.5)
        doc["benchmarks"].append(twin)

    results = load_results([edited_result(cpu_result, with_compiled, "compiled.json")])
    table = compile_table(results.frame)
    assert len(table) == 1 and table["speedup"].iloc[0] == pytest.approx(25_000 / 20_000)
    assert table["compile s"].iloc[0] == 7.5 and table["eager images/s"].iloc[0] == 20_000
    md = render_markdown(results)
    assert "## What torch.compile buys" in md and "| 1.25x " in md
    assert "## What torch.compile buys" not in render_markdown(load_results([cpu_result]))


def test_a_tuned_case_that_ran_compiled_says_so(cpu_result, edited_result):
    def compiled(doc):
        entry = next(b for b in doc["benchmarks"] if b["param"] == "infer-cnn-cpu-bs256")
        entry["extra_info"].update(compiled=True, compile_seconds=3.5)

    setups = {
        path.stem: infer_table(load_results([path]).frame)["setup"].tolist()
        for path in (cpu_result, edited_result(cpu_result, compiled, "amx.json"))
    }
    assert setups == {"fixture-cpu": ["resident"], "amx": ["resident, compiled"]}


def test_time_to_accuracy_shows_mlperfs_trimmed_mean(another_machine):
    assert trimmed_mean([5.0, 1.0, 3.0, 2.0, 100.0]) == pytest.approx(10 / 3)  # 1 and 100 dropped
    assert trimmed_mean([1.0, 2.0]) is None
    results = load_results([another_machine])
    tta = tta_table(results.frame).set_index("model")
    rounds = results.frame.set_index("case").loc["tta-cnn-cpu-bs256-bf16", "data"]
    assert len(rounds) == 5
    assert tta.loc["cnn", "MLPerf mean s"] == pytest.approx(sum(sorted(rounds)[1:4]) / 3)


def test_a_time_to_accuracy_on_another_recipe_leaves_the_score_complete(another_machine, edited_result):
    from mnist_models.reporting.score import ANOTHER_RECIPE, scores

    def new_recipe(doc):
        doc["machine_info"]["mnist_bench"]["label"] = "new-recipe"
        for b in doc["benchmarks"]:
            if b["param"].startswith("tta-"):
                b["extra_info"]["recipe"].update(eval_from=1.8, eval_every=0.2)

    reference = load_results([another_machine]).frame
    same = scores(reference, reference).iloc[0]
    other = scores(load_results([edited_result(another_machine, new_recipe)]).frame, reference).iloc[0]
    assert not same["partial"] and not other["partial"]  # the set shrinks by the cases it cannot hold
    assert other["of"] == other["cases"] == same["of"] - 2
    assert sum(ANOTHER_RECIPE in line for line in other["left_out"]) == 2


def _checkout(tmp_path, cpu_result) -> Path:
    """A checkout's docs with their generated blocks stale, and one result file."""
    from mnist_models.reporting.docs import markers

    (tmp_path / "results").mkdir()
    shutil.copy(cpu_result, tmp_path / "results" / "fixture-cpu.json")
    board, fields = markers("leaderboard"), markers("fields")
    (tmp_path / "README.md").write_text(f"# Title\n\nbefore\n{board[0]}\nold board\n{board[1]}\nafter\n")
    (tmp_path / "results" / "FORMAT.md").write_text(f"# Format\n{fields[0]}\nold\n{fields[1]}\n")
    return tmp_path


def test_docs_makes_the_generated_blocks_again_and_nothing_else(cli, capsys, cpu_result, tmp_path):
    from mnist_models.reporting.docs import markers
    from mnist_models.reporting.fields import field_table

    root = _checkout(tmp_path, cpu_result)
    assert cli("docs", "--root", str(root), "--check") == 1  # stale: what CI says
    assert capsys.readouterr().out.count("stale: ") == 2
    assert cli("docs", "--root", str(root)) == 0
    text, board = (root / "README.md").read_text(), markers("leaderboard")
    assert text.startswith(f"# Title\n\nbefore\n{board[0]}\n") and text.endswith(f"\n{board[1]}\nafter\n")
    assert "old board" not in text and "fixture-cpu" in text
    assert field_table().strip() in (root / "results" / "FORMAT.md").read_text()
    capsys.readouterr()
    assert cli("docs", "--root", str(root), "--check") == 0 and capsys.readouterr().out == ""


def test_the_main_job_leaves_the_readme_alone(repo):
    """The leaderboard is made by `mnist-bench docs`, never by a benchmark run."""
    main_job = (repo / "mnist_models" / "harness" / "main_job.py").read_text()
    assert "README" not in main_job.replace("never a tracked doc: README's", "")


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p.unlink(), "README.md not found; pass the checkout's root as --root"),
        (lambda p: p.write_bytes(b"\xff\xfe\x00"), "cannot read it (not UTF-8 text)"),
        (lambda p: p.write_text(p.read_text() + "<!-- /leaderboard -->\n"), "its leaderboard block is broken"),
    ],
)
def test_a_doc_that_cannot_take_its_blocks_is_refused_whole(cli, capsys, cpu_result, tmp_path, make, message):
    root = _checkout(tmp_path, cpu_result)
    before = (root / "results" / "FORMAT.md").read_text()
    make(root / "README.md")
    assert cli("docs", "--root", str(root)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert (root / "results" / "FORMAT.md").read_text() == before  # all or nothing


def test_report_never_writes_over_an_input_file(cli, capsys, cpu_result, tmp_path):
    mine = tmp_path / "r" / "report.md"  # a result file under the name report.md writes
    mine.parent.mkdir()
    mine.write_bytes(cpu_result.read_bytes())
    assert cli("report", str(mine), "--out", str(mine.parent), "--force") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{mine} is one of the input files (whatever --force says)" in err
    assert mine.read_bytes() == cpu_result.read_bytes() and sorted(mine.parent.iterdir()) == [mine]
