"""The suite's pytest plugin (the root conftest loads it): the matrix options, one dataset
check per session, machine facts for pytest-benchmark, and the finished cases kept.

    pytest bench --devices cpu --models mlp --quick --benchmark-json /tmp/q.json
"""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from ..core.config import MODELS, PRECISIONS, TRAIN_SIZE
from ..core.data import DatasetError, ensure_mnist
from ..files import write_files
from ..machine.facts import build_machine_facts
from ..machine.process import tune_malloc
from ..parsing import choices, positive, positives
from ..reporting.schema import FORMAT, OPERATIONS, scaling_efficiencies
from .cases import BENCH_DEVICES, QUICK_TEST, QUICK_TRAIN, BenchOptions, cases

DATA_FIXTURES = {"mnist_root", "train_split", "test_split", "root_copy", "bench_data"}
_PARTIAL = pytest.StashKey[dict]()


def pytest_addoption(parser) -> None:
    d = BenchOptions()
    group = parser.getgroup("mnist-bench")
    group.addoption("--devices", type=choices("device", BENCH_DEVICES), default=d.devices,
                    help="comma-separated: cpu, accel (the accelerator here, whatever it is), cuda, mps, "
                         "xpu (default cpu,accel; an absent accelerator's cases skip)")
    group.addoption("--models", type=choices("model", MODELS), default=d.models,
                    help=f"comma-separated: {','.join(MODELS)}")
    group.addoption("--batch-sizes", type=positives("batch sizes", "64,256,1024"), default=d.batch_sizes,
                    help="comma-separated positive integers (default 64,256,1024)")
    group.addoption("--precisions", type=choices("precision", PRECISIONS), default=d.precisions,
                    help="comma-separated: fp32,bf16 (default: fp32, plus bf16 on each device "
                         "that runs it natively)")
    group.addoption("--rounds", type=positive("rounds"), default=None,
                    help="timed rounds per case (default 5, or 1 with --quick)")
    group.addoption("--world-sizes", type=positives("world sizes", "1,2,4"), default=None,
                    help="ddp ranks, comma-separated (default 1,2 on the cpu; 1 to the GPUs, powers of 2, on cuda)")
    group.addoption("--machine-label", default=None, help="label for this machine (default: hostname)")
    group.addoption("--quick", action="store_true",
                    help=f"{QUICK_TRAIN} training and {QUICK_TEST} test images, one round per case")


def options(config) -> BenchOptions:
    """BenchOptions from a pytest config; pytest.UsageError (one line) when they cannot run."""
    quick = config.getoption("--quick")
    rounds = config.getoption("--rounds") or (1 if quick else BenchOptions.rounds)
    images = QUICK_TRAIN if quick else TRAIN_SIZE
    too_big = [b for b in config.getoption("--batch-sizes") if b > images]
    if too_big:
        raise pytest.UsageError(f"--batch-sizes: {too_big[0]:,} is more than the {images:,} training "
                                f"images of a {'quick ' * quick}round; choose at most {images}")
    return BenchOptions(devices=config.getoption("--devices"), models=config.getoption("--models"),
                        batch_sizes=config.getoption("--batch-sizes"),
                        precisions=config.getoption("--precisions"), rounds=rounds, quick=quick,
                        world_sizes=config.getoption("--world-sizes"),
                        label=config.getoption("--machine-label") or socket.gethostname())


def pytest_configure(config) -> None:
    tune_malloc()  # before any tensor: benchmarks and tests train with freed memory kept
    options(config)  # the matrix options checked once, before collection: one line if wrong


def pytest_generate_tests(metafunc) -> None:
    for operation in OPERATIONS:
        if f"{operation}_case" in metafunc.fixturenames:
            found = cases(options(metafunc.config), operation)
            metafunc.parametrize(f"{operation}_case", found, ids=[c.id for c in found])


def pytest_collection_modifyitems(session, config, items) -> None:
    """MNIST checked once, before any test that reads it: one line and no run without it."""
    if any(DATA_FIXTURES & set(getattr(item, "fixturenames", ())) for item in items):
        try:
            ensure_mnist()
        except DatasetError as exc:
            raise pytest.UsageError(f"mnist-bench: {exc}") from None


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item) -> None:
    path = item.config.getoption("benchmark_json", None)
    if path is not None:
        write_partial(item.config, path)  # finished cases survive a crash


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session):
    if getattr(session.config, "_benchmarksession", None) is not None:  # pytest-benchmark writes
        drop_unstarted(session.config._benchmarksession)  # in its own wrapper, after this
    return (yield)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    path = config.getoption("benchmark_json", None)
    if path is not None and path.exists():  # pytest-benchmark wrote the whole file
        path.with_name(path.name + ".partial").unlink(missing_ok=True)


def pytest_benchmark_update_machine_info(config, machine_info) -> None:
    """The machine facts, with the matmul probe of each precision the run uses on each device."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is None:
            print(f"mnist-bench: {line}")
            return
        reporter.ensure_newline()
        reporter.write_line(f"mnist-bench: {line}")
    opts = options(config)
    machine_info["mnist_bench"] = build_machine_facts(opts.label, opts.probe_plan(), say, quick=opts.quick,
                                                      rounds=opts.rounds, format=FORMAT)


def pytest_benchmark_update_json(config, benchmarks, output_json) -> None:
    """Each data-parallel case's scaling efficiency, against one rank of its family in this run."""
    entries = [b["extra_info"] for b in output_json["benchmarks"]
               if b.get("extra_info", {}).get("operation") == "ddp"]
    for info, efficiency in zip(entries, scaling_efficiencies(entries)):
        info["scaling_efficiency"] = efficiency


def write_partial(config, path: Path) -> None:
    """The cases finished so far, as pytest-benchmark would write them, to PATH.partial:
    what survives a crash or a kill that leaves pytest-benchmark no time to write PATH.
    Machine facts without the probe; `partial: true` says so."""
    session = getattr(config, "_benchmarksession", None)  # pytest-benchmark's own session
    if session is None or not drop_unstarted(session):
        return
    cache = config.stash.setdefault(_PARTIAL, {})
    if not cache:
        cache["machine_info"] = {"mnist_bench": build_machine_facts(options(config).label, partial=True,
                                                                    format=FORMAT)}
        cache["commit_info"] = config.hook.pytest_benchmark_generate_commit_info(config=config)
    doc = config.hook.pytest_benchmark_generate_json(
        config=config, benchmarks=session.benchmarks, include_data=True, **cache)
    write_files({path.with_name(path.name + ".partial"): json.dumps(doc, default=str).encode()})


def drop_unstarted(session) -> list:
    """pytest-benchmark's list without a case stopped (Ctrl-C) before its first round,
    whose empty statistics would crash pytest-benchmark's own JSON writer."""
    session.benchmarks[:] = [b for b in session.benchmarks if b.stats.data]
    return session.benchmarks
