"""The package's shape: every module imports only its own layer or one below, no import
forms a cycle, and the reporting layer never imports torch. Read from the code itself
(every import statement, lazy ones inside functions included)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "mnist_models"
# a subpackage (or top-level module) and its layer: imports go to the same layer's own
# package or to a lower layer, never up or sideways
LAYERS = {
    "cli": 6,
    "harness": 5,
    "study": 5,
    "reporting": 4,
    "distributed": 4,
    "core": 3,
    "machine": 2,
    "files": 1,
    "parsing": 1,
    "errors": 0,
    "__init__": 0,
}


# ab's contract 0 runs as text in an older version's process and imports that version's
# modules, not this one's: its imports are no edges of this package
OTHER_VERSIONS = {"harness/ab_legacy.py"}


def _modules() -> dict[str, Path]:
    return {
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts): p
        for p in PACKAGE.rglob("*.py")
        if p.name != "__main__.py" and str(p.relative_to(PACKAGE)) not in OTHER_VERSIONS
    }


def _imports(name: str, path: Path) -> set[str]:
    """The package modules `name` imports, as dotted names under mnist_models."""
    here = name.split(".")[:-1] if not name.endswith("__init__") else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.startswith("mnist_models"):
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:  # `from . import plots` names a module
                sub = ".".join([*target, alias.name])
                found.add(sub if sub in MODULES or f"{sub}.__init__" in MODULES else ".".join(target) or "__init__")
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("mnist_models.") for a in node.names if a.name.startswith("mnist_models.")}
    return {m if m in MODULES else f"{m}.__init__" for m in found if m and m != name}


MODULES = _modules()
GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> tuple[str, int]:
    top = module.split(".")[0]
    return top, LAYERS[top]


def test_every_module_has_a_layer():
    assert {m.split(".")[0] for m in MODULES} <= set(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_downward_only(module):
    top, layer = _layer(module)
    upward = [t for t in GRAPH[module] if _layer(t)[0] != top and _layer(t)[1] >= layer]
    assert not upward, f"{module} (layer {layer}) imports {upward}: same layer or above"


def test_no_import_cycle():
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in GRAPH[node]:
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [])


def test_the_checker_sees_an_upward_import(tmp_path):
    """A planted upward import (core importing the harness) is caught by the same reading."""
    planted = tmp_path / "bad.py"
    planted.write_text("def f():\n    from ..harness.cases import Case\n")
    targets = _imports("core.bad", planted)
    assert targets == {"harness.cases"} and _layer("harness.cases")[1] > _layer("core.bad")[1]


def test_reporting_never_imports_torch():
    modules = sorted(f"mnist_models.{m.removesuffix('.__init__')}" for m in MODULES if m.startswith("reporting"))
    code = (
        f"import sys, importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
        "print(sorted(k for k in sys.modules if k == 'torch' or k.startswith('torch.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert len(modules) >= 8  # every reporting module was imported


SCRIPTS = sorted((PACKAGE.parent / "experiments").glob("*.py")) + sorted((PACKAGE.parent / "bench").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scripts_outside_the_package_import_names_that_exist(script):
    """experiments/ and bench/ reach into the package by name; a rename inside it must not
    leave them importing a name that is gone (found only when someone reruns an experiment)."""
    import importlib.util

    missing = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mnist_models"):
            module = importlib.import_module(node.module)
            missing += [
                f"{node.module}.{a.name} (line {node.lineno})"
                for a in node.names
                if not hasattr(module, a.name) and importlib.util.find_spec(f"{node.module}.{a.name}") is None
            ]
    assert not missing
