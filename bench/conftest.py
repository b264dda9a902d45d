import pytest

from mnist_models import bench


@pytest.fixture(scope="session")
def bench_options(request) -> bench.BenchOptions:
    return bench.options(request.config)


@pytest.fixture(scope="session")
def bench_data(bench_options):
    """Resident splits per device, loaded on first use and kept for the session."""
    cache: dict[str, bench.Data] = {}

    def load(device: str) -> bench.Data:
        if device not in cache:
            cache[device] = bench.Data.load(bench_options, device)
        return cache[device]
    return load
