"""The benchmark's cases, as shipped in the package (mnist_models/harness/suite), collected from
a checkout: `pytest bench` is `pytest --pyargs mnist_models.harness.suite`."""

from mnist_models.harness.suite.test_mnist import test_case  # noqa: F401  (every operation's cases, from the plans)
