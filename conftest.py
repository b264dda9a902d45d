"""Root conftest: the suite's pytest plugin (mnist_models/harness/plugin.py) for tests and benchmarks."""
pytest_plugins = ("mnist_models.harness.plugin",)
