"""Writing results without losing what is already there, or what a run just made.

    with one_writer(out):                                    # a second run at the same out: refused, naming this one
        check_writable(out, ["history.json"], force=False)   # before the work: refuse now, not after
        write_files({out / "history.json": text.encode()})   # after it: all or nothing, atomically

No torch here: `report` and `compare` use it too.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path

from .errors import UsageError

_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), then put back
os.umask(_UMASK)


def _created_by(folder: Path) -> Path | None:
    """The topmost folder that making `folder` would create (None: it exists)."""
    return next((p for p in [*reversed(folder.absolute().parents), folder.absolute()] if not os.path.lexists(p)), None)


def check_not_inputs(targets: list[Path], inputs: Collection, option: str = "--out") -> None:
    """Refuse (UsageError) writing any of `targets` over one of `inputs`, or into an input
    given as a folder, whatever --force says: the command would destroy what it reads."""
    given = {Path(p).resolve() for p in inputs}
    clash = [t for t in targets if Path(t).resolve() in given or Path(t).resolve().parent in given]
    if clash:
        raise UsageError(f"{clash[0]} is one of the input files (whatever --force says); choose another {option}")


def check_apart(outputs: list[tuple[Path, str, bool]], inputs: Collection = ()) -> None:
    """Before any work: refuse (UsageError) two outputs at one place once links are resolved
    (real()), a file that another output would be made inside, or an output file that is one
    of `inputs`. `outputs`: (path, the option that named it, whether it is a file rather than
    a folder written into); of two that clash, the later one is the option asked to change."""
    taken = {real(p) for p in inputs} | {Path(p).resolve() for p in inputs}
    seen: list[tuple[Path, Path, str, bool]] = []
    for path, option, is_file in outputs:
        here = real(path)
        if is_file and here in taken:
            raise UsageError(f"{option} {path} is one of the inputs; choose another {option}")
        for there, other, other_option, other_is_file in seen:
            if here == there and (is_file or other_is_file):
                why = f"is the same place as {other_option} {other}"
            elif is_file and here in there.parents:
                why = f"would be a file with {other_option} {other} inside it"
            elif other_is_file and there in here.parents:
                why = f"would be inside {other_option} {other}, a file"
            else:
                continue
            raise UsageError(f"{option} {path} {why}; choose another {option}")
        seen.append((here, Path(path), option, is_file))


def check_writable(folder: Path, names: list[str], force: bool, option: str = "--out") -> None:
    """Before the work: refuse (UsageError) when `folder` cannot be written, or already holds
    any of `names` (a planted symlink counts) and force is off. Leaves nothing behind."""
    folder = Path(folder)
    if folder.is_symlink():
        raise UsageError(
            f"{folder} is a symbolic link; mnist-bench writes only where it was pointed, "
            f"not through a link (whatever --force says); choose another {option}"
        )
    for parent in [folder, *folder.parents]:
        if os.path.lexists(parent) and not parent.is_dir():
            where = "is" if parent == folder else f"is under {parent}, which is"
            raise UsageError(f"{folder} {where} a file, not a folder; choose another {option}")
    links = [n for n in names if (folder / n).is_symlink()]
    if links:
        raise UsageError(
            f"{folder / links[0]} is a symbolic link, which mnist-bench neither writes through nor "
            f"replaces (whatever --force says); remove it or choose another {option}"
        )
    folders = [n for n in names if not n or (folder / n).is_dir()]
    if folders:
        raise UsageError(
            f"{folder / folders[0]} is a folder, where mnist-bench writes a file (whatever --force "
            f"says); choose another {option}"
        )
    taken = [n for n in names if os.path.lexists(folder / n)]
    if taken and not force:
        raise UsageError(
            f"{folder} already holds {', '.join(taken)}; pass --force to overwrite or choose another {option}"
        )
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
    _check_targets(list(contents))
    temps: dict[Path, str] = {}
    try:
        for path, data in contents.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temps[path] = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.fchmod(fd, default_mode())  # as open() would make it, not mkstemp's 0600
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


def _check_targets(paths: list[Path]) -> None:
    """Refuse (UsageError), before a byte is written, files whose renames could not all
    succeed: a target that is a folder, or one that another target would be inside."""
    folders = [p for p in paths if p.is_dir() and not p.is_symlink()]
    if folders:
        raise UsageError(f"{folders[0]} is a folder, where a file was to be written; nothing was written")
    check_apart([(p, "file", True) for p in paths])


def default_mode() -> int:
    """The mode open() gives a new file here (0o666 less the umask), for files made by mkstemp (0600)."""
    return 0o666 & ~_UMASK


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


def torch_bytes(obj) -> bytes:
    """torch.save into memory, for write_files."""

    import torch  # noqa: PLC0415 (torch: report and compare use this module)

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def real(path: str | Path) -> Path:
    """Where `path` really is: its folder with every symbolic link resolved (as far as it
    exists), then its own name, unfollowed (a link there is what a writer would replace).
    Two spellings of one place (a linked parent, `..`) give the same path."""
    p = Path(path)
    if p.name in ("", ".."):
        return Path(os.path.realpath(p))
    return Path(os.path.realpath(p.parent)) / p.name


def _lock_path(target: Path) -> Path:
    """Where the lock for writing `target` lives: in its nearest folder that exists (so taking
    it creates nothing), named by the target's real path (real()), so that a second run
    reaching the same place through a symbolic link takes the same lock."""
    target = real(target)
    home = next(p for p in [target.parent, *target.parents] if p.is_dir())
    return home / f".mnist-bench-{hashlib.sha1(str(target).encode()).hexdigest()[:12]}.lock"


@contextlib.contextmanager
def one_writer(target: Path, option: str = "--out") -> Iterator[None]:
    """Hold the lock for writing `target` (a result file or an --out folder) while the block
    runs; another process holding it already: UsageError naming its PID. Check what the
    target holds after this, not before: the other run may have just written it."""
    path = _lock_path(target)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only or full place: nothing could be written there either
            raise UsageError(f"cannot write in {target} ({exc.strerror}); choose another {option}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UsageError(
                f"{target} is being written by another mnist-bench run (PID {holder}); "
                f"wait for it to finish or choose another {option}"
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break  # the file still at the path: the lock is this run's
        except FileNotFoundError:
            pass  # its holder just finished and removed it: take a fresh one
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.unlink(path)  # while still held: a waiting run then takes a fresh file
    finally:
        os.close(fd)
