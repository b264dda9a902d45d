"""The suite's pytest plugin, registered for every pytest run in the environment (entry
point pytest11) and inert unless the suite's own cases or data fixtures are collected: then
the matrix options, one dataset check, the C allocator tuned, pytest-benchmark's options
that would yield no honest result refused, and the record finished (record.py).

    pytest --pyargs mnist_models.harness.suite --quick --benchmark-json /tmp/q.json
    mnist-bench run LABEL --quick          # the same, with the result file kept safe

Nothing heavier than pytest is imported until a run is ours.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..core.config import PRECISIONS, TRAIN_SIZE
from ..core.registry import list_models
from ..errors import sigterm_as_interrupt
from ..parsing import choices, label, positive, positives
from .cases import BENCH_DEVICES, DDP_BATCH, PLANS, QUICK_TEST, QUICK_TRAIN, BenchOptions, cases

if TYPE_CHECKING:  # tqdm only once a run is ours
    from .progress import Events

DATA_FIXTURES = {"mnist_root", "train_split", "test_split", "root_copy", "bench_data"}
CASE_FIXTURE = "mnist_case"  # the suite's one test takes every operation's cases through it
OURS = pytest.StashKey[bool]()  # set at collection: this run holds the suite's cases or data
PROGRESS: pytest.StashKey[Events] = pytest.StashKey()  # the run's progress, where mnist-bench run listens for it
OUTCOMES: dict[str, list[str]] = {}  # a case's outcomes so far, by node id, until it is said
SHOWN: list[bool] = []  # non-empty once this process shows progress: only then are outcomes kept
# pytest-benchmark's own knobs that the suite's pedantic rounds ignore: set to anything but
# their defaults they would be silently ignored, so they are refused and --rounds named instead
IGNORED = (
    "benchmark_min_rounds",
    "benchmark_max_time",
    "benchmark_min_time",
    "benchmark_warmup",
    "benchmark_warmup_iterations",
    "benchmark_calibration_precision",
)


def pytest_addoption(parser) -> None:
    d = BenchOptions()
    group = parser.getgroup("mnist-bench")
    group.addoption(
        "--devices",
        type=choices("device", BENCH_DEVICES),
        default=d.devices,
        help="comma-separated: cpu, accel (the accelerator here, whatever it is), cuda, mps, "
        "xpu (default cpu,accel; an absent accelerator's cases skip)",
    )
    group.addoption(
        "--models",
        type=choices("model", list_models()),
        default=d.models,
        help=f"comma-separated: {','.join(list_models())}",
    )
    group.addoption(
        "--batch-sizes",
        type=positives("batch sizes", "64,256,1024"),
        default=d.batch_sizes,
        help="comma-separated positive integers (default 64,256,1024; the ddp cases' batch is "
        f"{DDP_BATCH} whatever this says)",
    )
    group.addoption(
        "--precisions",
        type=choices("precision", PRECISIONS),
        default=d.precisions,
        help="comma-separated: fp32,bf16 (default: fp32, plus bf16 on each device that runs it natively)",
    )
    group.addoption(
        "--rounds", type=positive("rounds"), default=None, help="timed rounds per case (default 5, or 1 with --quick)"
    )
    group.addoption(
        "--world-sizes",
        type=positives("world sizes", "1,2,4"),
        default=None,
        help="ddp ranks, comma-separated (default 1,2 on the cpu; 1 to the GPUs, powers of 2, on cuda)",
    )
    group.addoption("--machine-label", type=label, default=None, help="label for this machine (default: hostname)")
    group.addoption(
        "--quick", action="store_true", help=f"{QUICK_TRAIN} training and {QUICK_TEST} test images, one round per case"
    )


def options(config) -> BenchOptions:
    """BenchOptions from a pytest config; pytest.UsageError (one line) when they cannot run."""
    quick = config.getoption("--quick")
    rounds = config.getoption("--rounds") or (1 if quick else BenchOptions.rounds)
    images = QUICK_TRAIN if quick else TRAIN_SIZE
    too_big = [b for b in config.getoption("--batch-sizes") if b > images]
    if too_big:
        raise pytest.UsageError(
            f"--batch-sizes: {too_big[0]:,} is more than the {images:,} training "
            f"images of a {'quick ' * quick}round; choose at most {images}"
        )
    return BenchOptions(
        devices=config.getoption("--devices"),
        models=config.getoption("--models"),
        batch_sizes=config.getoption("--batch-sizes"),
        precisions=config.getoption("--precisions"),
        rounds=rounds,
        quick=quick,
        world_sizes=config.getoption("--world-sizes"),
        label=config.getoption("--machine-label") or socket.gethostname(),
    )


def ours(config) -> bool:
    return config.stash.get(OURS, False)


PARALLEL = "parallel workers (pytest-xdist -n) would share the cores the cases measure; run without -n"


def pytest_configure(config) -> None:
    options(config)  # the matrix options checked once, before collection: one line if wrong
    if _parallel(config) and not hasattr(config, "workerinput") and _targets_suite(config):
        # xdist's controller collects nothing, so the refusal at collection would never run here
        raise pytest.UsageError(f"mnist-bench: {PARALLEL}")


def _parallel(config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) or getattr(config.option, "dist", "no") != "no"


def _targets_suite(config) -> bool:
    """Does this run collect the suite's cases? Its module named with --pyargs, or a folder or
    file whose test module imports it (a checkout's bench/)."""
    for arg in config.args:
        if "mnist_models.harness.suite" in arg:
            return True
        path = Path(arg.split("::")[0])
        files = [path] if path.is_file() else list(path.glob("test_*.py")) if path.is_dir() else []
        if any("mnist_models.harness.suite" in f.read_text(errors="replace") for f in files):
            return True
    return False


def pytest_generate_tests(metafunc) -> None:
    if CASE_FIXTURE in metafunc.fixturenames:
        opts = options(metafunc.config)
        found = [c for operation in PLANS for c in cases(opts, operation)]
        metafunc.parametrize(CASE_FIXTURE, found, ids=[c.id for c in found])


def json_problem(path) -> str | None:
    """Why --benchmark-json PATH could not take the result file at the end (None: it can)."""
    if path.is_symlink():
        return f"--benchmark-json {path} is a symbolic link; give a path of its own"
    if path.exists() and not path.is_file():
        return (
            f"--benchmark-json {path} is {'a directory' if path.is_dir() else 'not a regular file'}; give a file path"
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return f"--benchmark-json {path}: its folder {folder} does not exist; create it or choose another path"
    if not os.access(folder, os.W_OK):
        return f"--benchmark-json {path}: cannot write in {folder}; choose another path"
    return None


def refusal(config, has_cases: bool) -> str | None:
    """Why this pytest-benchmark setting would leave no honest result file, or None."""
    if _parallel(config):
        return PARALLEL
    json_path = config.getoption("benchmark_json", None)
    if json_path is not None and has_cases and json_problem(json_path):
        return json_problem(json_path)
    if config.getoption("benchmark_disable", False) and json_path is not None:
        return "--benchmark-disable runs no rounds, so --benchmark-json would hold no case; drop one of them"
    if config.getoption("benchmark_skip", False) and has_cases:
        return "--benchmark-skip skips every case of the suite; drop it"
    defaults = config._parser.parse_known_args([])  # every option at its default, as parsed
    for name in IGNORED:
        if hasattr(defaults, name) and config.getoption(name) != getattr(defaults, name):
            flag = "--" + name.replace("_", "-")
            return f"{flag} does not apply: each case runs the suite's own rounds; use --rounds instead"
    return None


def pytest_collection_modifyitems(session, config, items) -> None:
    """When the suite's cases or data are collected: the refusals, the one dataset check (one
    line and no run without MNIST), the allocator, and a word on the ddp batch."""
    names = [set(getattr(item, "fixturenames", ())) for item in items]
    has_cases = any(CASE_FIXTURE in n for n in names)
    config.stash[OURS] = has_cases or any(DATA_FIXTURES & n for n in names)
    if not ours(config):
        return
    why = refusal(config, has_cases)
    if why:
        session_ = getattr(config, "_benchmarksession", None)
        if session_ is not None:  # nothing will run: pytest-benchmark need not say it saved nothing
            session_.disabled = True
        raise pytest.UsageError(f"mnist-bench: {why}")
    from ..core.data import DatasetError, ensure_mnist  # noqa: PLC0415 (plugin: inert until a run is ours)
    from ..machine.process import tune_malloc  # noqa: PLC0415 (plugin: inert until a run is ours)

    try:
        ensure_mnist()
    except DatasetError as exc:
        raise pytest.UsageError(f"mnist-bench: {exc}") from None
    tune_malloc()  # before any tensor: benchmarks and tests train with freed memory kept
    from .record import start_clock  # noqa: PLC0415 (plugin: inert until a run is ours)

    start_clock(config)  # how busy the machine was, recorded with the result
    sigterm_as_interrupt()  # CI's cancel stops at a case's end, as Ctrl-C does: finished cases kept
    from ..machine.process import oversubscribed  # noqa: PLC0415 (plugin: inert until a run is ours)

    crowded = oversubscribed()
    if crowded:
        _say(config, f"warning: {crowded}")
    collected = [
        item.callspec.params[CASE_FIXTURE]
        for item in items
        if CASE_FIXTURE in getattr(item, "fixturenames", ()) and hasattr(item, "callspec")
    ]
    if any(c.operation == "ddp" for c in collected) and DDP_BATCH not in config.getoption("--batch-sizes"):
        _say(config, f"the ddp cases run at batch {DDP_BATCH} (global or per rank) whatever --batch-sizes says")
    if has_cases:
        for line in [n for plan in PLANS.values() for n in plan.notes(options(config))]:
            _say(config, line)


def _say(config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        print(f"mnist-bench: {line}")
        return
    reporter.ensure_newline()
    reporter.write_line(f"mnist-bench: {line}")


def _case_id(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params[CASE_FIXTURE].id if callspec and CASE_FIXTURE in callspec.params else None


def pytest_collection_finish(session) -> None:
    """The run's progress, where `mnist-bench run` listens for it (harness/progress.py)."""
    from .progress import ENV, Events  # noqa: PLC0415 (plugin: inert until a run is ours)

    if ours(session.config) and os.environ.get(ENV):
        session.config.stash[PROGRESS] = Events()
        session.config.stash[PROGRESS].say("collected", ids=[c for c in map(_case_id, session.items) if c])
        SHOWN.append(True)


def pytest_runtest_setup(item) -> None:
    if ours(item.config) and _case_id(item):
        from .record import mark_speed  # noqa: PLC0415 (plugin: inert until a run is ours)

        if PROGRESS in item.config.stash:
            item.config.stash[PROGRESS].say("start", case=_case_id(item))
        mark_speed(item.config)  # the machine's speed before each case: the run's drift


def pytest_runtest_logreport(report) -> None:
    """A case's outcome, said as it finishes (its teardown, the last of its phases)."""
    if not SHOWN:
        return
    found = OUTCOMES.setdefault(report.nodeid, [])
    if report.outcome != "passed" or report.when == "call":
        found.append(report.outcome)


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report, config):
    """With the progress shown, the cases' own dots and letters stay out of its way (a failure
    still shows, and pytest's summary at the end is unchanged)."""
    if PROGRESS not in config.stash or "[" not in report.nodeid:
        return None
    if report.passed and report.when != "call":
        return "", "", ""  # a setup or teardown that passed is no test of its own in the summary
    return (report.outcome, "", "") if report.outcome in ("passed", "skipped") else None


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item) -> None:
    path = item.config.getoption("benchmark_json", None)
    if path is not None and ours(item.config):
        from .record import write_partial  # noqa: PLC0415 (plugin: inert until a run is ours)

        write_partial(item.config, path, options(item.config))  # finished cases survive a crash
    if PROGRESS in item.config.stash and _case_id(item):
        said = OUTCOMES.pop(item.nodeid, [])
        outcome = next((o for o in said if o != "passed"), "passed")
        item.config.stash[PROGRESS].say("done", case=_case_id(item), outcome=outcome)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session):
    if ours(session.config) and getattr(session.config, "_benchmarksession", None) is not None:
        from .record import drop_unstarted  # noqa: PLC0415 (plugin: inert until a run is ours)

        drop_unstarted(session.config._benchmarksession)  # pytest-benchmark writes in its own wrapper, after this
    return (yield)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    path = config.getoption("benchmark_json", None)
    if path is None or not ours(config):
        return
    partial = path.with_name(path.name + ".partial")
    if _whole(path):  # pytest-benchmark wrote the whole file
        partial.unlink(missing_ok=True)
    elif partial.exists():
        _say(config, f"the result file {path} was not written whole; the cases that finished are in {partial}")


def _whole(path) -> bool:
    if not path.is_file():  # a device such as /dev/full reads without end
        return False
    try:
        return isinstance(json.loads(path.read_bytes()).get("benchmarks"), list)
    except (OSError, ValueError, AttributeError):
        return False


def pytest_benchmark_update_machine_info(config, machine_info) -> None:
    """The machine's facts, which stay the same from run to run (what pytest-benchmark compares)."""
    if ours(config):
        from .record import machine_facts  # noqa: PLC0415 (plugin: inert until a run is ours)

        machine_info["mnist_bench"] = machine_facts(options(config))


@pytest.hookimpl(tryfirst=True)
def pytest_benchmark_compare_machine_info(config, benchmarksession, machine_info, compared_benchmark) -> None:
    """pytest-benchmark compares a saved run's machine_info with this one's before any case
    has run, when this run's facts are not known yet: it compares its own keys (the CPU, its
    flags, Python, the system), and the suite's facts are left out on both sides."""
    machine_info.pop("mnist_bench", None)
    saved = compared_benchmark.get("machine_info")
    if isinstance(saved, dict) and "mnist_bench" in saved:
        compared_benchmark["machine_info"] = {k: v for k, v in saved.items() if k != "mnist_bench"}


def pytest_benchmark_update_json(config, benchmarks, output_json) -> None:
    """The run's own facts and the probe, each case's plain params and scaling efficiency."""
    if ours(config):
        from .record import finish_json  # noqa: PLC0415 (plugin: inert until a run is ours)

        finish_json(config, output_json, options(config), say=lambda line: _say(config, line))


@pytest.fixture(scope="session")
def bench_options(request) -> BenchOptions:
    return options(request.config)


@pytest.fixture(scope="session")
def bench_data(bench_options: BenchOptions):
    """Resident splits per device, loaded on first use and kept for the session."""
    from .timer import Data  # noqa: PLC0415 (plugin: inert until a run is ours)

    cache: dict = {}

    def load(device: str):
        if device not in cache:
            cache[device] = Data.load(bench_options, device)
        return cache[device]

    return load
