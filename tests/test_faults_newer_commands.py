"""Faults, round four: the newer commands (`ab`, `history`, `score`, `export`, `run`). Real
processes, real signals, real symbolic links and real copies of files."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from terminal import as_at_a_terminal

CLI = [sys.executable, "-m", "mnist_models"]
REPO = Path(__file__).parents[1]
# ab's smallest real run: one case, two pairs, the clock only, one worker a side (~15 s)
SMALL_AB = ["--pairs", "2", "--no-instructions", "--cases", "train-mlp-cpu-bs64", "--workers", "1"]


def _env(root, **extra) -> dict:
    return {**os.environ, "MNIST_ROOT": str(root), **extra}


def _one_line(err: str, *parts: str) -> None:
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    for part in parts:
        assert part in err, (part, err)


def _ab(out, *extra, root) -> subprocess.Popen:
    """`ab` with the checkout on both sides (accepted: the same code, by the same path)."""
    return subprocess.Popen(
        [*CLI, "ab", ".", ".", "--out", str(out), *SMALL_AB, *extra],
        cwd=REPO,
        env=_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# 1. the one-run-per-output lock, through a symbolic link to the same folder


@pytest.mark.slow
def test_a_second_ab_through_a_linked_parent_is_refused_naming_the_first(tmp_path, mnist_root):
    (tmp_path / "lp").symlink_to(tmp_path, target_is_directory=True)
    first = _ab(tmp_path / "ab15", "--machine-label", "FIRST", root=mnist_root)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".mnist-bench-*.lock")) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, "the first ab ended before the second could race it"
    second = _ab(tmp_path / "lp" / "ab15", "--machine-label", "SECOND", root=mnist_root)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2
    _one_line(err, f"is being written by another mnist-bench run (PID {first.pid})")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert json.loads((tmp_path / "ab15" / "base.json").read_text())["machine_info"]["mnist_bench"]["label"] == "FIRST"
    assert not list(tmp_path.glob(".mnist-bench-*.lock"))


# 2. every output of ab against every other and the inputs, before any work


@pytest.mark.parametrize(
    "json_at,message",
    [
        ("x", "--json {w}/x is the same place as --out {w}/x; choose another --json"),
        ("lp/x", "--json {w}/lp/x is the same place as --out {w}/x"),  # through a linked parent
        ("lp/x/new.json", "is the same place as --out {w}/x/new.json"),
        ("y", None),  # apart: accepted as far as this check goes (the run itself is not started)
    ],
)
def test_abs_outputs_are_checked_against_each_other_before_any_round(tmp_path, cli, capsys, json_at, message):
    (tmp_path / "lp").symlink_to(tmp_path, target_is_directory=True)
    if message is None:
        from mnist_models.files import check_apart

        check_apart([(tmp_path / "x", "--out", False), (tmp_path / "lp" / json_at, "--json", True)])
        return
    assert cli("ab", str(REPO), str(REPO), "--out", str(tmp_path / "x"), "--json", str(tmp_path / json_at)) == 2
    _one_line(capsys.readouterr().err, message.format(w=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lp"]  # nothing made, no lock left


def test_a_json_that_would_hold_the_out_folder_or_overwrite_a_side_is_refused(tmp_path, cli, capsys):
    assert cli("ab", str(REPO), str(REPO), "--out", str(tmp_path / "x" / "y"), "--json", str(tmp_path / "x")) == 2
    _one_line(capsys.readouterr().err, f"--json {tmp_path}/x would be a file with --out {tmp_path}/x/y inside it")
    python = tmp_path / "venv" / "bin" / "python"  # an environment's python: a side, and an input
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    side, before = str(tmp_path / "venv"), python.read_text()
    assert cli("ab", side, side, "--out", str(tmp_path / "o"), "--json", str(python), "--force") == 2
    _one_line(capsys.readouterr().err, f"--json {python} is one of the inputs")
    assert python.read_text() == before and not (tmp_path / "o").exists()


def test_write_files_writes_none_when_one_target_is_a_folder_or_holds_another(tmp_path):
    from mnist_models.errors import UsageError
    from mnist_models.files import write_files

    (tmp_path / "d").mkdir()
    for contents in (
        {tmp_path / "a.json": b"a", tmp_path / "d": b"d"},
        {tmp_path / "x" / "b.json": b"b", tmp_path / "x": b"x"},
    ):
        with pytest.raises(UsageError):
            write_files(contents)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"] and not list((tmp_path / "d").iterdir())


# 3. history: undecided where the rounds cannot reach its cutoff, never "no step change"


def _commits(tmp_path, cpu_result, factors, rounds=5, label="lab") -> list[Path]:
    """One result file per commit, `rounds` rounds a case, each commit's times x its factor."""
    paths = []
    for i, factor in enumerate(factors):

        def edit(doc, i=i, factor=factor):
            doc["machine_info"]["mnist_bench"]["label"] = label
            doc["commit_info"] = {"id": f"c{i}" + "0" * 39, "dirty": False}
            doc["datetime"] = f"2026-12-01T00:0{i}:00"
            for b in doc["benchmarks"]:
                data = [b["stats"]["median"] * factor * (1 + 0.01 * (k - rounds // 2)) for k in range(rounds)]
                b["stats"].update(
                    data=data, rounds=rounds, median=sorted(data)[rounds // 2], q1=min(data), q3=max(data)
                )

        paths.append(_edited(cpu_result, edit, tmp_path / f"run{i}.json"))
    return paths


def _edited(src: Path, edit, path: Path) -> Path:
    doc = json.loads(src.read_text())
    edit(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("factor", [1.3, 2.0])
def test_history_says_undecided_where_five_rounds_a_side_cannot_reach_its_cutoff(
    tmp_path, cpu_result, cli, capsys, factor
):
    _commits(tmp_path, cpu_result, [1.0, factor])
    assert cli("history", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "no step change" not in out, out
    lines = out.splitlines()
    assert len(lines) == 4 and all(line.startswith("undecided: lab ") for line in lines[:3])
    assert "its 10 rounds over 2 commits cannot reach p < 0.0033 at any split; needs 1 more rounds a side" in lines[0]
    assert lines[-1] == "undecided in all 3 series: too few rounds to tell a step from the noise"


def test_history_judges_the_same_step_once_the_rounds_can_reach_the_cutoff(tmp_path, cpu_result, cli, capsys):
    _commits(tmp_path, cpu_result, [1.0, 1.3], rounds=6)  # 6 and 6: 2 / C(12, 6) = 0.0022 < 0.0033
    assert cli("history", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert out.count("+30.0% after c0") == 3 and "undecided" not in out


# 4. copies of one file under other names count once, everywhere files are read


def test_copies_under_other_names_count_once_in_history_and_score(tmp_path, cpu_result, cli, capsys):
    runs = _commits(tmp_path / "h", cpu_result, [1.0, 1.3])
    copies = []
    for run in runs:  # each commit's 5 rounds, three times over under other names
        for name in ("again", "once-more"):
            copies.append(tmp_path / "h" / f"{run.stem}-{name}.json")
            copies[-1].write_bytes(run.read_bytes())
    assert cli("history", str(tmp_path / "h")) == 0
    out, err = capsys.readouterr()
    assert "p = " not in out and "15 rounds before" not in out, out  # no step from 5 real rounds a side
    assert out.startswith("undecided: lab ") and "its 10 rounds over 2 commits" in out
    for run in runs:  # read first in sorted order: run0-again.json; the others are named as its copies
        assert f"{run}: the same content as {run.with_name(run.stem + '-again.json')}, a copy; read once" in err
    assert err.count("a copy; read once") == 4
    three = [tmp_path / f"copy{i}.json" for i in range(3)]
    for copy in three:
        copy.write_bytes(cpu_result.read_bytes())
    assert cli("score", *map(str, three)) == 0
    out, err = capsys.readouterr()
    assert out.count("fixture-cpu") == 1 and err.count("a copy; read once") == 2, (out, err)


# 5. the option a quick file's warning names exists wherever the warning is given


@pytest.mark.parametrize("command", ["report", "score", "history", "export"])
def test_the_include_quick_the_warning_names_is_taken_by_every_command_that_warns(
    tmp_path, cpu_result, cli, capsys, command
):
    folder = tmp_path / "files"
    full = _edited(cpu_result, lambda doc: doc.update(commit_info={"id": "a" * 40}), folder / "full.json")

    def quick(doc):
        doc["machine_info"]["mnist_bench"].update(quick=True)
        doc["commit_info"] = {"id": "b" * 40}
        for b in doc["benchmarks"]:
            b["extra_info"]["samples"] = 4096

    quick_file = _edited(cpu_result, quick, folder / "quick.json")
    argv = {
        "report": lambda out: ["report", str(full), str(quick_file), "--out", str(out)],
        "score": lambda out: ["score", str(full), str(quick_file)],
        "history": lambda out: ["history", str(folder)],
        "export": lambda out: ["export", str(full), str(quick_file), "--format", "bencher", "--out", f"{out}.json"],
    }[command]
    assert cli(*argv(tmp_path / "without")) == 0
    err = capsys.readouterr().err
    assert f"{quick_file}: a --quick run, left out beside full runs (pass --include-quick to include it" in err
    assert cli(*argv(tmp_path / "with"), "--include-quick") == 0
    assert "a --quick run, left out" not in capsys.readouterr().err


# 6. ab's numbers bounded by what one run can do, refused in one line before any side starts


def _capped(limit: int = 8 * 2**30):
    """A memory cap for a child: an unbounded ab would fail (MemoryError) instead of filling the machine."""
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("--pairs", "100000000000", "--pairs 100,000,000,000 would be about 50,000,000 hours of rounds"),
        ("--pairs", "48001", "over ab's 24 hours; pass at most 48,000 pairs"),
        ("--threads", "100000", "--threads 100,000 is more than the"),
        ("--workers", "1000", "--workers 1,000: at most 64 process pairs"),
    ],
)
def test_abs_numbers_are_bounded_and_the_bound_is_named(tmp_path, mnist_root, option, value, message):
    done = subprocess.run(
        [*CLI, "ab", ".", ".", "--out", str(tmp_path / "ab"), option, value],
        cwd=REPO,
        env=_env(mnist_root),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_capped(),
    )
    assert done.returncode == 2, done.stderr
    _one_line(done.stderr, message)
    assert not (tmp_path / "ab").exists()


# 7. a stopped ab keeps the rounds that finished, marked partial, and says where


def _partial_sides(out: Path) -> list[dict]:
    docs = [json.loads((out / "partial" / f"{side}.json").read_text()) for side in ("base", "new")]
    assert all(doc["mnist_bench"]["partial"] is True for doc in docs)
    assert not (out / "base.json").exists() and not (out / "comparison.md").exists()
    return docs


@pytest.mark.slow
def test_sigterm_during_the_instruction_counts_keeps_the_timed_rounds(tmp_path, mnist_root):
    import shutil

    import psutil

    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        pytest.skip("valgrind is not installed: ab counts no instructions here")
    out = tmp_path / "ab"
    cmd = [*CLI, "ab", ".", ".", "--out", str(out), "--pairs", "2", "--cases", "train-mlp-cpu-bs64", "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(mnist_root), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    me, deadline = psutil.Process(proc.pid), time.monotonic() + 300

    def counting() -> bool:  # the rounds are done once a side runs under valgrind
        for child in me.children():
            try:
                if "valgrind" in Path((child.cmdline() or [""])[0]).name:  # /usr/bin/valgrind.bin
                    return True
            except psutil.Error:  # a worker just closed
                pass
        return False

    while proc.poll() is None and time.monotonic() < deadline and not counting():
        time.sleep(0.1)
    assert proc.poll() is None, "ab ended before it counted instructions"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143
    _one_line(
        err.decode(),
        "terminated (SIGTERM); the rounds that finished (2 pairs of 1 case) are in",
        f"{out}/partial/base.json and new.json, marked partial",
    )
    for doc in _partial_sides(out):
        assert [len(b["stats"]["data"]) for b in doc["benchmarks"]] == [2]
    from mnist_models.reporting.results import load_results

    assert len(load_results(list((out / "partial").glob("*.json")), include_quick=True).frame) == 2


@pytest.mark.slow
def test_ctrl_c_during_the_rounds_keeps_the_complete_pairs(tmp_path, mnist_root):
    import pty
    import select

    out = tmp_path / "ab"
    cmd = [*CLI, "ab", ".", ".", "--out", str(out), "--pairs", "400", "--seconds", "0.05", "--no-instructions"]
    cmd += ["--cases", "train-mlp-cpu-bs64,infer-mlp-cpu-bs256", "--workers", "1"]
    primary, secondary = pty.openpty()  # a terminal for its stderr: ab then says how far it got
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=_env(mnist_root),
        stdout=subprocess.PIPE,
        stderr=secondary,
        start_new_session=True,
        preexec_fn=as_at_a_terminal,
    )
    os.close(secondary)
    said, deadline = b"", time.monotonic() + 300
    while b"pair 3/400 timed" not in said and time.monotonic() < deadline and proc.poll() is None:
        if select.select([primary], [], [], 0.5)[0]:
            said += os.read(primary, 4096)
    assert proc.poll() is None, said
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at a terminal: to the whole group, workers included
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if select.select([primary], [], [], 0.5)[0]:
            try:
                said += os.read(primary, 4096)
            except OSError:
                break
    assert proc.wait(timeout=60) == 130, said
    os.close(primary)
    last = said.decode().strip().splitlines()[-1]
    assert "mnist-bench: interrupted; the rounds that finished (" in last and f"{out}/partial/base.json" in last
    base, new = _partial_sides(out)
    pairs = base["mnist_bench"]["rounds"]
    assert pairs >= 3 and f"({pairs} pairs of 2 cases)" in last
    for doc in (base, new):  # complete pairs only: the same rounds on both sides, every case
        assert [len(b["stats"]["data"]) for b in doc["benchmarks"]] == [pairs, pairs]


# 8. run's messages name the real cause; LABEL anywhere among the options; one label rule


def _run(where: Path, *argv: str, root) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "run", *argv], cwd=where, env=_env(root), capture_output=True, text=True, timeout=300)


def test_runs_refusal_quotes_pytests_own_error_line(tmp_path, mnist_root):
    done = _run(tmp_path, "lab1", "--quick", "--rounds", "0", root=mnist_root)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "mnist-bench: pytest refused an option: argument --rounds: rounds must be a positive whole number "
        "(got '0'); no case ran (exit 2)"
    )


@pytest.mark.parametrize(
    "argv,label,rest",
    [
        (["--quick", "lab1"], "lab1", ["--quick"]),
        (["--force", "lab2", "--quick"], "lab2", ["--quick"]),
        (
            ["-k", "train", "--devices", "cpu", "lab3", "--rounds", "3"],
            "lab3",
            ["-k", "train", "--devices", "cpu", "--rounds", "3"],
        ),
        (["--models", "mlp", "--batch-sizes", "64", "--precisions", "fp32", "lab4"], "lab4", None),
        (["--world-sizes", "1,2", "-m", "slow", "-p", "no:randomly", "lab5", "--machine-label", "x"], "lab5", None),
        (["--rounds=3", "-ktrain", "lab6"], "lab6", ["--rounds=3", "-ktrain"]),
        (["--quick", "-k", "lab7"], None, ["--quick", "-k", "lab7"]),  # -k's expression, not a label
    ],
)
def test_run_finds_label_wherever_it_stands_among_the_options(argv, label, rest):
    from mnist_models.cli.run import split

    args = split(argv)
    assert args.label == label
    assert list(args.pytest_args) == (rest if rest is not None else [a for a in argv if a != label])


def test_a_label_after_an_option_is_the_label_not_a_pytest_file(tmp_path, mnist_root):
    done = _run(tmp_path, "--quick", "lab1", "-k", "no_case_has_this_name", root=mnist_root)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("mnist-bench: no case was selected") and "lab1" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    "label,message",
    [
        ("a" * 300, "LABEL must be at most 100 characters (got 300)"),
        ("lab\u202eevil", "LABEL must not hold bidirectional control characters (U+202E here)"),
        ("x\u2066y", "(U+2066 here)"),
        ("a\u200fb", "(U+200F here)"),
    ],
)
def test_runs_label_rule_says_the_length_limit_and_refuses_bidi_controls(tmp_path, mnist_root, label, message):
    done = _run(tmp_path, label, "--quick", root=mnist_root)
    assert done.returncode == 2
    _one_line(done.stderr, message)
    assert not list(tmp_path.iterdir())  # nothing made


def test_ab_and_pytest_take_a_machine_label_by_the_same_rule(tmp_path, mnist_root, cli, capsys):
    evil = "lab\u202eevil"
    assert cli("ab", str(REPO), str(REPO), "--out", str(tmp_path / "ab"), "--machine-label", evil) == 2
    assert "argument --machine-label: a label must not hold bidirectional control characters" in capsys.readouterr().err
    assert cli("ab", str(REPO), str(REPO), "--out", str(tmp_path / "ab"), "--machine-label", "a" * 101) == 2
    assert "a label must be at most 100 characters (got 101)" in capsys.readouterr().err
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "--machine-label", evil],
        cwd=tmp_path,
        env=_env(mnist_root),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 4 and "a label must not hold bidirectional control characters" in done.stderr
    assert not (tmp_path / "ab").exists()


def test_a_bidi_control_already_in_a_file_is_shown_escaped_in_report_md_and_index_html(tmp_path, cpu_result, cli):
    from mnist_models.parsing import BIDI

    evil = "lab\u202eevil"  # from a file made before labels were checked
    path = _edited(cpu_result, lambda doc: doc["machine_info"]["mnist_bench"].update(label=evil), tmp_path / "old.json")
    assert cli("report", str(path), "--out", str(tmp_path / "r")) == 0
    md, page = ((tmp_path / "r" / name).read_text() for name in ("report.md", "index.html"))
    assert not any(c in md or c in page for c in BIDI)
    assert "lab\\\\u202eevil" in md and "lab\\u202eevil" in page  # markdown escapes its backslash


# 9. ab's small messages name the real cause


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--pairs", "\u00b2"], "argument --pairs: pairs must be a positive whole number (got '\u00b2')"),
        (["--workers", "\u0663"], "argument --workers: workers must be a positive whole number (got '\u0663')"),
        (
            ["--threshold", "-2%"],
            "argument --threshold: threshold must be a positive number, e.g. 10% or 0.1 (got '-2%')",
        ),
        (["--detect", "-.5"], "argument --detect: threshold must be a positive number"),
    ],
)
def test_abs_number_refusals_name_the_real_cause(tmp_path, cli, capsys, argv, message):
    assert cli("ab", str(REPO), str(REPO), "--out", str(tmp_path / "ab"), *argv) == 2
    err = capsys.readouterr().err
    assert message in err.strip().splitlines()[-1], err
    assert not (tmp_path / "ab").exists()


def test_compare_takes_a_negative_threshold_as_a_value_to_refuse(cli, capsys, cpu_result):
    assert cli("compare", str(cpu_result), str(cpu_result), "--threshold", "-2%") == 2
    assert "argument --threshold: threshold must be a positive number" in capsys.readouterr().err


@pytest.mark.parametrize("program", ["/bin/true", "/bin/false"])
def test_a_side_that_is_no_python_is_named_as_such(tmp_path, mnist_root, program):
    done = subprocess.run(
        [*CLI, "ab", program, ".", "--out", str(tmp_path / "ab"), *SMALL_AB],
        cwd=REPO,
        env=_env(mnist_root),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    _one_line(
        done.stderr,
        f"the base side's python ({program}) exited (code {int(program == '/bin/false')}) without answering: "
        "not a Python that can import mnist_models",
    )
    assert not (tmp_path / "ab").exists()


# 10. run leaves no .benchmarks/ behind


@pytest.mark.slow
def test_run_leaves_no_benchmarks_folder_where_it_ran(tmp_path, mnist_root):
    one_case = ["--devices", "cpu", "--models", "mlp", "--batch-sizes", "64", "--precisions", "fp32"]
    done = _run(tmp_path, "lab1", "--quick", *one_case, "-k", "train and not tta", root=mnist_root)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs" / "quick" / "lab1.json").is_file()
    assert not (tmp_path / ".benchmarks").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


# also seen: score on a file of very many rounds


@pytest.mark.slow
def test_score_reads_a_file_of_a_hundred_thousand_rounds_a_case_in_seconds_and_says_it_resampled(tmp_path, mnist_root):
    import numpy as np

    from mnist_models.reporting.score import reference_path

    doc, rng = json.loads(reference_path(1).read_text()), np.random.default_rng(0)
    doc["machine_info"]["mnist_bench"]["label"] = "many"
    for b in doc["benchmarks"]:  # each case's rounds, resampled to 100,000 (a 30 MB file)
        b["stats"]["data"] = [round(float(x), 6) for x in rng.choice(b["stats"]["data"], 100_000)]
        b["stats"]["rounds"] = 100_000
    (tmp_path / "many.json").write_text(json.dumps(doc))
    done = subprocess.run(
        [*CLI, "score", str(tmp_path / "many.json")],
        env=_env(mnist_root),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_capped(),
    )
    assert done.returncode == 0, done.stderr  # before, it ran past the timeout
    notes = [line for line in done.stdout.splitlines() if line.startswith("note: many cpu: ")]
    assert len(notes) == 18  # one per case of the reference set
    assert notes[0].endswith("100,000 rounds; its interval resamples 1,000 of them (wider than all would give)")


@pytest.mark.slow
def test_a_runs_summary_counts_each_case_once_beside_its_progress(tmp_path, mnist_root):
    """The progress lines replace the cases' dots; pytest's summary still counts each case once,
    not once for each of its setup, call and teardown."""
    done = _run(tmp_path, "lab1", "--quick", "-k", "infer and mlp and bs256", root=mnist_root)
    assert done.returncode == 0, done.stderr
    finished = re.findall(r"^mnist-bench: \[\d+/(\d+)\] (\S+) (passed|skipped) \(", done.stderr, re.M)
    passed = sum(outcome == "passed" for _, _, outcome in finished)
    assert passed >= 2 and len({case for _, case, _ in finished}) == len(finished)
    summary = re.search(r"=+ (\d+) passed[^=]* in ", done.stdout + done.stderr)
    assert summary and int(summary.group(1)) == passed, done.stdout[-500:]
