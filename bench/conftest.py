import pytest

from mnist_models.harness.cases import BenchOptions
from mnist_models.harness.plugin import options
from mnist_models.harness.run import Data


@pytest.fixture(scope="session")
def bench_options(request) -> BenchOptions:
    return options(request.config)


@pytest.fixture(scope="session")
def bench_data(bench_options):
    """Resident splits per device, loaded on first use and kept for the session."""
    cache: dict[str, Data] = {}

    def load(device: str) -> Data:
        if device not in cache:
            cache[device] = Data.load(bench_options, device)
        return cache[device]
    return load
