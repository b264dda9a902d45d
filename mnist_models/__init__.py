"""mnist-bench: the MNIST notebook's MLP and CNN as a package, benchmarked and reported."""

__version__ = "0.1.0"
