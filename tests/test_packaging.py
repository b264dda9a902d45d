"""The suite as installed: its cases collected from the package, its plugin inert in other
suites, pytest-benchmark's own options honoured or refused in one line, pytest-benchmark's
own tools reading the result, and the wheel working outside any checkout."""

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

QUICK = ["--quick", "-q", "--devices", "cpu", "--models", "mlp", "--batch-sizes", "256", "--precisions", "fp32"]


def _pytest(*args: str, cwd: Path, root: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env={**os.environ, "MNIST_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def quick_file(tmp_path_factory, mnist_root) -> Path:
    """One quick run of the packaged cases, from a folder that is no checkout."""
    where = tmp_path_factory.mktemp("elsewhere")
    done = subprocess.run(
        [sys.executable, "-m", "mnist_models", "run", "pkg", *QUICK, "-k", "not ddp"],
        cwd=where,
        env={**os.environ, "MNIST_ROOT": str(mnist_root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return where / "runs" / "quick" / "pkg.json"


def test_the_packaged_cases_run_from_anywhere(quick_file):
    doc = json.loads(quick_file.read_text())
    assert {b["param"] for b in doc["benchmarks"]} == {
        "train-mlp-cpu-bs256",
        "train-mlp-cpu-bs256-plain",
        "train-mlp-cpu-bs256-compiled",
        "infer-mlp-cpu-bs256",
        "infer-mlp-cpu-bs256-compiled",
    }
    assert (quick_file.parent / "report" / "index.html").exists()


def test_params_are_plain_and_pytest_benchmarks_compare_groups_by_them(quick_file):
    doc = json.loads(quick_file.read_text())
    params = doc["benchmarks"][0]["params"]
    assert params["machine"] == "pkg" and params["model"] == "mlp" and params["batch_size"] == 256
    assert "UNSERIALIZABLE" not in quick_file.read_text()
    tool = [sys.executable, "-c", "import sys; from pytest_benchmark.cli import main; sys.exit(main())"]
    done = subprocess.run(
        [*tool, "compare", str(quick_file), "--group-by", "param:model", "--columns", "median"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # pytest-benchmark's own command
    assert done.returncode == 0, done.stderr
    assert "benchmark 'model=mlp': 5 tests" in done.stdout, done.stdout  # tuned, plain and compiled


def test_the_machine_info_pytest_benchmark_compares_holds_no_measurement(quick_file):
    doc = json.loads(quick_file.read_text())
    facts = doc["machine_info"]["mnist_bench"]
    assert not {"peak_gflops", "bandwidth_gbs", "quick", "rounds"} & set(
        facts
    )  # the probe and the run's facts: at the top
    run = doc["mnist_bench"]
    assert run["peak_gflops"]["cpu_fp32"] > 0 and run["bandwidth_gbs"]["cpu"] > 0 and run["quick"] is True


def test_the_plugin_stays_out_of_another_suites_benchmarks(tmp_path, mnist_root):
    (tmp_path / "test_theirs.py").write_text("def test_sum(benchmark):\n    benchmark(sum, range(100))\n")
    done = _pytest("test_theirs.py", "--benchmark-json", "theirs.json", cwd=tmp_path, root=tmp_path / "no-mnist")
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((tmp_path / "theirs.json").read_text())
    assert "mnist_bench" not in doc and "mnist_bench" not in doc["machine_info"]
    assert "matmul probe" not in done.stdout + done.stderr and not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--benchmark-disable", "--benchmark-json", "x.json"], "--benchmark-disable runs no rounds"),
        (["--benchmark-min-rounds", "3", "--benchmark-json", "x.json"], "use --rounds instead"),
        (["--benchmark-max-time", "5", "--benchmark-json", "x.json"], "use --rounds instead"),
        (["--benchmark-skip", "--benchmark-json", "x.json"], "--benchmark-skip skips every case"),
    ],
)
def test_pytest_benchmarks_options_that_would_write_nothing_are_refused(tmp_path, mnist_root, flags, message):
    done = _pytest("--pyargs", "mnist_models.harness.suite", *QUICK, *flags, cwd=tmp_path, root=mnist_root)
    assert done.returncode == 4 and message in done.stderr, done.stdout + done.stderr  # pytest's usage error
    assert done.stderr.strip().count("\n") == 0 and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("flag", ["-n", "--benchmark-disable", "--collect-only", "--benchmark-json=x.json", "--count"])
def test_the_main_job_refuses_options_that_leave_no_result(tmp_path, cli, capsys, flag, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("run", "box", "--quick", flag, *(["2"] if flag in ("-n", "--count") else [])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not with the main job" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "flags,message", [(["-k", "nomatch"], "no case was selected"), (["--devices", ","], "pytest refused an option")]
)
def test_the_main_job_says_why_no_case_ran(tmp_path, cli, capfd, monkeypatch, mnist_root, flags, message):
    monkeypatch.chdir(tmp_path)
    assert cli("run", "box", "--quick", *flags) == 2
    err = capfd.readouterr().err
    assert f"mnist-bench: {message}" in err and "nothing kept" not in err
    assert not list(tmp_path.glob("r*/**/*.json"))


def test_a_report_folder_that_is_a_file_is_refused_before_any_case(tmp_path, cli, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "quick").mkdir(parents=True)
    (tmp_path / "runs" / "quick" / "report").write_text("mine")
    assert cli("run", "box", "--quick") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs/quick/report is a file, where the report's folder goes" in err
    assert not (tmp_path / "runs" / "quick" / "box.json").exists()
    assert (tmp_path / "runs" / "quick" / "report").read_text() == "mine"


def test_a_batch_selection_without_the_ddp_batch_says_so(tmp_path, mnist_root):
    done = _pytest(
        "--pyargs",
        "mnist_models.harness.suite",
        "--collect-only",
        "-q",
        "--batch-sizes",
        "64",
        cwd=tmp_path,
        root=mnist_root,
    )
    assert done.returncode == 0 and "the ddp cases run at batch 256" in done.stdout + done.stderr


@pytest.mark.slow
def test_the_wheel_benchmarks_a_machine_outside_any_checkout(tmp_path, repo, mnist_root):
    """pip install the built wheel into a fresh venv (its dependencies seen from this one, so
    torch is not installed again), then mnist-bench run --quick and report there."""
    wheels = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(repo)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    python, site = _fresh_venv(tmp_path / "venv", next(wheels.glob("mnist_bench-*.whl")))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MNIST_ROOT": str(mnist_root)}
    probe = subprocess.run(
        [str(python), "-c", "import mnist_models, sys; print(mnist_models.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert str(site) in probe.stdout, probe.stdout + probe.stderr  # the wheel's copy, not the checkout's
    run = subprocess.run(
        [str(python), "-m", "mnist_models", "run", "wheel", *QUICK, "-k", "not ddp"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = elsewhere / "runs" / "quick" / "wheel.json"
    assert len(json.loads(result.read_text())["benchmarks"]) == 5  # the compiled cases too: the wheel compiles
    report = subprocess.run(
        [str(python), "-m", "mnist_models", "report", str(result), "--out", "r"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0 and (elsewhere / "r" / "index.html").exists(), report.stderr


@pytest.mark.parametrize(
    "fmt,schema",
    [
        ("github-action-benchmark", "github-action-benchmark.schema.json"),
        ("bencher", "bencher-metric-format.schema.json"),
    ],
)
def test_exports_validate_against_each_tools_published_format(tmp_path, cli, record, another_machine, fmt, schema):
    import jsonschema

    out = tmp_path / "export.json"
    assert cli("export", *map(str, [*record, another_machine]), "--format", fmt, "--out", str(out)) == 0
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, json.loads((Path(__file__).parent / "data" / schema).read_text()))
    names = [d["name"] for d in doc] if fmt == "github-action-benchmark" else list(doc)
    assert len(names) == len(set(names)) and "train-cnn-cpu-bs256 [xeon-amx-2core]" in names  # machines apart
    entry = json.loads(another_machine.read_text())
    case = next(b for b in entry["benchmarks"] if b["param"] == "train-cnn-cpu-bs256")
    speed = case["extra_info"]["samples"] / case["stats"]["median"]  # the median's images/s, not the mean's
    if fmt == "github-action-benchmark":
        value = next(d for d in doc if d["name"] == "train-cnn-cpu-bs256 [xeon-amx-2core]")["value"]
    else:
        value = doc["train-cnn-cpu-bs256 [xeon-amx-2core]"]["throughput"]["value"]
        assert doc["train-cnn-cpu-bs256 [xeon-amx-2core]"]["latency"]["value"] == pytest.approx(
            case["stats"]["median"] * 1e9
        )
    assert value == pytest.approx(speed, rel=1e-6)


def _fresh_venv(env_dir: Path, package: Path) -> tuple[Path, Path]:
    """A new venv holding `package` (a wheel or an sdist) alone, its dependencies seen from this
    environment (so torch is not installed again): (its python, its site-packages)."""
    venv.create(env_dir, with_pip=False)
    site = next((env_dir / "lib").glob("python*/site-packages"))
    here = [p for p in sys.path if p.endswith("site-packages")]
    (site / "borrowed.pth").write_text("\n".join(here) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(package)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return env_dir / "bin" / "python", site


@pytest.mark.slow
def test_the_sdists_tests_pass(tmp_path, repo, mnist_root):
    """The sdist built from the checkout, unpacked and installed on its own: its fast tier passes."""
    import tarfile

    tools = tmp_path / "tools"
    got = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(tools), "setuptools>=77"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert got.returncode == 0, got.stderr
    build = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    made = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path / "dist")],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(tools)},
    )
    assert made.returncode == 0, made.stderr[-2000:]
    sdist = tmp_path / "dist" / made.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "src", filter="data")
    unpacked = next((tmp_path / "src").iterdir())
    python, _ = _fresh_venv(tmp_path / "venv", sdist)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MNIST_ROOT": str(mnist_root)}
    tests = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider"],
        cwd=unpacked,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout.splitlines()[-1]


def test_two_runs_on_one_machine_compare_without_a_machine_warning(tmp_path, mnist_root):
    store = tmp_path / "store"
    args = ["--pyargs", "mnist_models.harness.suite", *QUICK, "-k", "infer", "--benchmark-storage", str(store)]
    first = _pytest(*args, "--benchmark-autosave", cwd=tmp_path, root=mnist_root)
    assert first.returncode == 0, first.stdout[-2000:]
    second = _pytest(*args, "--benchmark-compare", cwd=tmp_path, root=mnist_root)
    assert second.returncode == 0, second.stdout[-2000:]
    assert "Comparing against benchmarks from" in second.stdout + second.stderr
    assert "machine_info is different" not in second.stdout + second.stderr
