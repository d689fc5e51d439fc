"""Files that hold secrets or customer data are the service user's alone, whatever the umask
syncd was started with (a shell's 022 would make them world-readable): directories 0700,
files 0600. Created that way from the start, and tightened when found looser."""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """`path` (and missing parents) as a directory only its owner can enter."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """`path` as a file only its owner can read (created empty if missing)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    except FileExistsError:  # opened by a reader too: never asks for write access
        _tighten(path, FILE_MODE)
    return path


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, never readable by others, not even for an instant."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), FILE_MODE)
        out.write(text)


def _tighten(path: Path, mode: int) -> None:
    """Drop group and other bits from a path syncd owns (another owner's is left alone)."""
    info = path.stat()
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(stat.S_IMODE(info.st_mode) & mode)
