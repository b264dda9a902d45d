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


def pytest_benchmark_update_machine_info(config, machine_info):
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is None:
            print(f"mnist-bench: {line}")
            return
        reporter.ensure_newline()
        reporter.write_line(f"mnist-bench: {line}")
    machine_info["mnist_bench"] = bench.machine_facts(bench.options(config), say)
