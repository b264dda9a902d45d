"""The docs' generated blocks: README.md's leaderboard, from the committed result files, and
results/FORMAT.md's field tables, from the field spec (fields.py). `mnist-bench docs` writes
them; `mnist-bench docs --check` says which is stale (CI runs it), and the main job never
touches a tracked doc.

    blocks = generated({"leaderboard": board_md, "fields": field_table()})
    stale(Path("README.md"), blocks)        # the block names whose text differs

A block sits between `<!-- NAME: made by mnist-bench docs; edits here are replaced -->` and
`<!-- /NAME -->` lines. No torch here.
"""

from __future__ import annotations

from pathlib import Path

from .schema import ResultError


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: made by mnist-bench docs; edits here are replaced -->", f"<!-- /{name} -->"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ResultError(f"{path}: cannot read it ({why}); pass the checkout's root as --root") from None


def blocks_in(text: str) -> list[str]:
    """The names of the generated blocks a document holds."""
    return [
        line.split(":", 1)[0].removeprefix("<!-- ").strip()
        for line in text.splitlines()
        if line.startswith("<!-- ") and line.endswith("edits here are replaced -->")
    ]


def replaced(path: Path, contents: dict[str, str]) -> str:
    """The document at `path` with each of its blocks that `contents` names filled anew
    (ResultError, naming the file, where a block's markers are broken)."""
    text = _read(path)
    for name in blocks_in(text):
        if name not in contents:
            continue
        start, end = markers(name)
        if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
            raise ResultError(f"{path}: its {name} block is broken (one line {start} before one line {end}); mend it")
        head, rest = text.split(start)
        text = f"{head}{start}\n{contents[name].rstrip()}\n{end}{rest.split(end, 1)[1]}"
    return text


def stale(paths: list[Path], contents: dict[str, str]) -> list[str]:
    """`path: block` for every generated block whose text is not what it would be now."""
    out = []
    for path in paths:
        now = _read(path)
        new = replaced(path, contents)
        if new != now:
            out += [
                f"{path}: {name}"
                for name in blocks_in(now)
                if name in contents and _block(now, name) != _block(new, name)
            ]
    return out


def _block(text: str, name: str) -> str:
    start, end = markers(name)
    return text.split(start, 1)[1].split(end, 1)[0]
