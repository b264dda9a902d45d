"""Root conftest: the benchmark matrix options (see mnist_models/bench.py), one dataset
check for the whole session, and machine facts."""
import pytest

from mnist_models import bench
from mnist_models.data import DatasetError, ensure_mnist
from mnist_models.timing import tune_malloc

DATA_FIXTURES = {"mnist_root", "train_split", "test_split", "root_copy", "bench_data"}


def pytest_addoption(parser):
    bench.add_options(parser)


def pytest_configure(config):
    tune_malloc()  # before any tensor: benchmarks and tests train with freed memory kept
    bench.options(config)  # the matrix options checked once, before collection: one line if wrong


def pytest_generate_tests(metafunc):
    for operation in bench.OPERATIONS:
        if f"{operation}_case" in metafunc.fixturenames:
            found = bench.cases(bench.options(metafunc.config), operation)
            metafunc.parametrize(f"{operation}_case", found, ids=[c.id for c in found])


def pytest_collection_modifyitems(session, config, items):
    """MNIST checked once, before any test that reads it: one line and no run without it."""
    if any(DATA_FIXTURES & set(getattr(item, "fixturenames", ())) for item in items):
        try:
            ensure_mnist()
        except DatasetError as exc:
            raise pytest.UsageError(f"mnist-bench: {exc}") from None


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item):
    path = item.config.getoption("benchmark_json", None)
    if path is not None:
        bench.write_partial(item.config, path)  # finished cases survive a crash


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session):
    if getattr(session.config, "_benchmarksession", None) is not None:  # pytest-benchmark writes
        bench.drop_unstarted(session.config._benchmarksession)  # in its own wrapper, after this
    return (yield)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    path = config.getoption("benchmark_json", None)
    if path is not None and path.exists():  # pytest-benchmark wrote the whole file
        path.with_name(path.name + ".partial").unlink(missing_ok=True)


def pytest_benchmark_update_machine_info(config, machine_info):
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is None:
            print(f"mnist-bench: {line}")
            return
        reporter.ensure_newline()
        reporter.write_line(f"mnist-bench: {line}")
    machine_info["mnist_bench"] = bench.machine_facts(bench.options(config), say)
