"""The benchmark harness: the case matrix, the Run template and one run per operation, the
pytest plugin, the data-parallel cases, the ablation and the profile."""
