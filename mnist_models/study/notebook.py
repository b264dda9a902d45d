"""Execute a notebook headless with nbclient, Jupyter's own runner (the dev extras), as "Run
all" would: notebooks/mnist.ipynb answers the seed's Q1-Q7 on this package, and its
committed outputs are made, from the checkout's root, by

    python -m mnist_models.study.notebook notebooks/mnist.ipynb     # in place: 10 epochs on the CPU

Parameters go into a cell of their own after the one tagged `parameters` (papermill's
convention), so the tests run the same notebook small:

    nb = execute(Path("notebooks/mnist.ipynb"), {"epochs": 1, "train_samples": 4096})
"""

from __future__ import annotations

import argparse
import ast
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import EXIT_OK, EXIT_USAGE, UsageError

PARAMETERS = "parameters"  # the tag of the cell that holds the defaults
INJECTED = "injected-parameters"  # the tag of the cell execute() adds after it


def _nb():
    """nbformat and nbclient, or a UsageError naming the extras that bring them."""
    try:  # function-local: dev extras, not the package's dependencies
        import nbclient  # noqa: PLC0415 (dev extras, not the package's dependencies)
        import nbformat  # noqa: PLC0415 (dev extras)
    except ImportError:
        raise UsageError("running a notebook needs nbclient, nbformat and ipykernel; pip install -e '.[dev]'") from None
    return nbformat, nbclient


def assigned(source: str) -> list[str]:
    """The names a cell's top-level statements assign, in order."""
    targets = [t for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets]
    return [t.id for t in targets if isinstance(t, ast.Name)]


def with_parameters(nb, parameters: dict[str, object]):
    """A copy of `nb` with one cell assigning `parameters` right after the cell tagged
    `parameters`; ValueError when no cell carries that tag, or a name is not one it assigns
    (a misspelt parameter would otherwise change nothing)."""
    nbformat, _ = _nb()
    tagged = [i for i, cell in enumerate(nb.cells) if PARAMETERS in cell.metadata.get("tags", [])]
    if not tagged:
        raise ValueError(f"no cell is tagged {PARAMETERS!r}")
    known = assigned(nb.cells[tagged[0]].source)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ValueError(f"the parameters cell assigns no {', '.join(unknown)}; it has {', '.join(known)}")
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED]}, id=INJECTED)
    out = copy.deepcopy(nb)
    out.cells.insert(tagged[0] + 1, cell)
    return out


def execute(
    path: Path,
    parameters: dict[str, object] | None = None,
    timeout: int | None = None,
    on_cell: Callable[[str, str], None] | None = None,
):
    """`path` run top to bottom in its own folder, on the python3 kernel of this interpreter's
    environment (ipykernel installed beside it): the executed notebook. A cell's error raises
    nbclient's CellExecutionError, one that runs past `timeout` seconds CellTimeoutError (None:
    no limit; training on a busy 2-vCPU machine took over 30 minutes). `on_cell(cell id, what)`
    as each code cell starts and ends."""
    nbformat, nbclient = _nb()
    nb = nbformat.read(path, as_version=4)
    if parameters:
        nb = with_parameters(nb, parameters)
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,  # no per-cell timestamps in the committed file
        resources={"metadata": {"path": str(Path(path).resolve().parent)}},
    )
    if on_cell:
        started: dict[str, float] = {}

        def start(cell, cell_index: int, **_) -> None:
            if cell.cell_type == "code":  # nbclient 0.7 starts markdown cells too
                started[cell.id] = time.perf_counter()
                on_cell(cell.id, f"cell {cell_index + 1} of {len(nb.cells)} started")

        def end(cell, **_) -> None:
            on_cell(cell.id, f"done in {time.perf_counter() - started[cell.id]:.1f} s")

        client.on_cell_start, client.on_cell_executed = start, end
    client.execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, help="where to write the executed notebook (default: in place)")
    args = parser.parse_args(argv)
    try:
        nbformat, _ = _nb()
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    done = execute(args.notebook, on_cell=lambda cell, what: print(f"{cell}: {what}", file=sys.stderr))
    nbformat.write(done, args.out or args.notebook)
    print(f"wrote {args.out or args.notebook}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
