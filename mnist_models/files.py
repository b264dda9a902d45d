"""Writing results without losing what is already there."""
from __future__ import annotations

import json
import os
from pathlib import Path


class UsageError(ValueError):
    """Something the user asked for cannot be done as asked."""


def check_writable(folder: Path, names: list[str], force: bool) -> None:
    """Refuse (UsageError) when `folder` already holds any of `names` and force is off."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder; choose another --out")
    taken = [n for n in names if (folder / n).exists()]
    if taken and not force:
        raise UsageError(f"{folder} already holds {', '.join(taken)}; "
                         "pass --force to overwrite or choose another --out")


def write_text(path: Path, text: str) -> None:
    """Write through a temporary file, so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


def save_model(path: Path, checkpoint: dict) -> None:
    """torch.save through a temporary file, like write_json."""
    import torch
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)
