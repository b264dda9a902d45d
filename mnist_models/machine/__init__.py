"""The machine: CPU flags, the devices and their one clock sync, the probe, process facts.

Imports nothing of the package above it (errors only); torch only inside functions, so
the reporting layer can read CPU flags without it.
"""
