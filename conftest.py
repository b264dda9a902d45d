"""Root conftest. The suite's pytest plugin (mnist_models/harness/plugin.py) is registered by the
package's pytest11 entry point on install (pip install -e .); nothing else is needed here."""
