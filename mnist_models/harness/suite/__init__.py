"""The benchmark's cases, shipped in the package: `pytest --pyargs mnist_models.harness.suite`,
or `mnist-bench run`, which keeps the result file safe. The fixtures and options come from
the suite's pytest plugin (mnist_models.harness.plugin, registered on install)."""
