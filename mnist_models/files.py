"""Writing results without losing what is already there, or what a run just made.

    check_writable(out, ["history.json"], force=False)   # before the work: refuse now, not after
    write_files({out / "history.json": text.encode()})   # after it: all or nothing, atomically

No torch here: `report` and `compare` use it too.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import UsageError

_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), then put back
os.umask(_UMASK)


def _created_by(folder: Path) -> Path | None:
    """The topmost folder that making `folder` would create (None: it exists)."""
    return next((p for p in [*reversed(folder.absolute().parents), folder.absolute()]
                 if not os.path.lexists(p)), None)


def check_writable(folder: Path, names: list[str], force: bool, option: str = "--out") -> None:
    """Before the work: refuse (UsageError) when `folder` cannot be written, or already holds
    any of `names` (a planted symlink counts) and force is off. Leaves nothing behind."""
    folder = Path(folder)
    for parent in [folder, *folder.parents]:
        if os.path.lexists(parent) and not parent.is_dir():
            where = "is" if parent == folder else f"is under {parent}, which is"
            raise UsageError(f"{folder} {where} a file, not a folder; choose another {option}")
    taken = [n for n in names if os.path.lexists(folder / n)]
    if taken and not force:
        raise UsageError(f"{folder} already holds {', '.join(taken)}; "
                         f"pass --force to overwrite or choose another {option}")
    made = _created_by(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write in {folder} ({exc.strerror}); choose another {option}") from None
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


def write_files(contents: dict[Path, bytes]) -> None:
    """Write every file or none: each goes to a fresh temporary file beside its target
    (never through a symlink planted there), is synced to disk, and only when all are
    written are they renamed into place. Temporary files are removed on every path."""
    temps: dict[Path, str] = {}
    try:
        for path, data in contents.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temps[path] = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.fchmod(fd, 0o666 & ~_UMASK)  # as open() would make it, not mkstemp's 0600
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for path, temp in temps.items():
            os.replace(temp, path)  # replaces a link itself, never its target
    finally:
        for temp in temps.values():
            if os.path.lexists(temp):
                os.unlink(temp)


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


def torch_bytes(obj) -> bytes:
    """torch.save into memory, for write_files."""
    import io

    import torch
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()
