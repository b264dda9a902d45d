"""Root conftest: the benchmark matrix options (see mnist_models/bench.py), and machine facts."""
from mnist_models import bench
from mnist_models.timing import tune_malloc


def pytest_addoption(parser):
    bench.add_options(parser)


def pytest_configure(config):
    tune_malloc()  # before any tensor: benchmarks and tests train with freed memory kept


def pytest_generate_tests(metafunc):
    for operation in bench.OPERATIONS:
        if f"{operation}_case" in metafunc.fixturenames:
            found = bench.cases(bench.options(metafunc.config), operation)
            metafunc.parametrize(f"{operation}_case", found, ids=[c.id for c in found])


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["mnist_bench"] = bench.machine_facts(bench.options(config))
