"""The suite's pytest plugin (the root conftest loads it): the matrix options, one dataset
check per session, machine facts for pytest-benchmark, and the finished cases kept.

    pytest bench --devices cpu --models mlp --quick --benchmark-json /tmp/q.json
"""
from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

import pytest

from .cases import BENCH_DEVICES, OPERATIONS, QUICK_TEST, QUICK_TRAIN, BenchOptions, cases
from .config import MODELS, PRECISIONS, TRAIN_SIZE
from .data import DatasetError, ensure_mnist
from .files import write_files
from .timing import tune_malloc

DATA_FIXTURES = {"mnist_root", "train_split", "test_split", "root_copy", "bench_data"}
_PARTIAL = pytest.StashKey[dict]()


def _choices(kind: str, known) -> callable:
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(s.strip() for s in text.split(",") if s.strip())
        bad = [i for i in items if i not in known]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {', '.join(bad) or repr(text)}; choose from {', '.join(known)}")
        return items
    return parse


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"batch sizes must be positive integers separated by commas, e.g. 64,256,1024 (got {text!r})")
    return sizes


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"rounds must be a positive integer (got {text!r})")
    return int(text)


def pytest_addoption(parser) -> None:
    d = BenchOptions()
    group = parser.getgroup("mnist-bench")
    group.addoption("--devices", type=_choices("device", BENCH_DEVICES), default=d.devices,
                    help="comma-separated: cpu, accel (the accelerator here, whatever it is), cuda, mps, "
                         "xpu (default cpu,accel; an absent accelerator's cases skip)")
    group.addoption("--models", type=_choices("model", MODELS), default=d.models,
                    help=f"comma-separated: {','.join(MODELS)}")
    group.addoption("--batch-sizes", type=_batch_sizes, default=d.batch_sizes,
                    help="comma-separated positive integers (default 64,256,1024)")
    group.addoption("--precisions", type=_choices("precision", PRECISIONS), default=d.precisions,
                    help="comma-separated: fp32,bf16 (default: fp32, plus bf16 on each device "
                         "that runs it natively)")
    group.addoption("--rounds", type=_positive, default=None,
                    help="timed rounds per case (default 5, or 1 with --quick)")
    group.addoption("--world-sizes", type=_batch_sizes, default=None,
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
    from .runner import machine_facts
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is None:
            print(f"mnist-bench: {line}")
            return
        reporter.ensure_newline()
        reporter.write_line(f"mnist-bench: {line}")
    machine_info["mnist_bench"] = machine_facts(options(config), say)


def pytest_benchmark_update_json(config, benchmarks, output_json) -> None:
    """Each data-parallel case's scaling efficiency: its images/s over world size x the
    images/s of one rank in the same family (model, device, batch, threads) in this run."""
    entries = [b for b in output_json["benchmarks"] if b.get("extra_info", {}).get("operation") == "ddp"]

    def family(info: dict) -> tuple:
        return info["model"], info["device"], info["batch_size"], info.get("threads_per_rank")
    one = {family(b["extra_info"]): b["extra_info"]["samples_per_second"]
           for b in entries if b["extra_info"]["world_size"] == 1}
    for b in entries:
        info = b["extra_info"]
        base = one.get(family(info))
        info["scaling_efficiency"] = (round(info["samples_per_second"] / (info["world_size"] * base), 4)
                                      if base else None)


def write_partial(config, path: Path) -> None:
    """The cases finished so far, as pytest-benchmark would write them, to PATH.partial:
    what survives a crash or a kill that leaves pytest-benchmark no time to write PATH.
    Machine facts without the probe; `partial: true` says so."""
    from .hardware import machine_info
    session = getattr(config, "_benchmarksession", None)  # pytest-benchmark's own session
    if session is None or not drop_unstarted(session):
        return
    cache = config.stash.setdefault(_PARTIAL, {})
    if not cache:
        cache["machine_info"] = {"mnist_bench": {**machine_info(options(config).label), "partial": True}}
        cache["commit_info"] = config.hook.pytest_benchmark_generate_commit_info(config=config)
    doc = config.hook.pytest_benchmark_generate_json(
        config=config, benchmarks=session.benchmarks, include_data=True, **cache)
    write_files({path.with_name(path.name + ".partial"): json.dumps(doc, default=str).encode()})


def drop_unstarted(session) -> list:
    """pytest-benchmark's list without a case stopped (Ctrl-C) before its first round,
    whose empty statistics would crash pytest-benchmark's own JSON writer."""
    session.benchmarks[:] = [b for b in session.benchmarks if b.stats.data]
    return session.benchmarks
