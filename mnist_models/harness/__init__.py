"""The benchmark harness: the case matrix (cases.py, the built-in operations' plans in
plans.py), a timer per operation, the pytest plugin, the data-parallel cases, ab, the
ablation and the profile."""

from . import plans  # noqa: F401  (registers the built-in operations' plans, as timm's models package does)
