"""Files that hold the vault's data (database, WAL, logs) are readable by the vault's user only."""

from __future__ import annotations

import os
from pathlib import Path


def private_dir(path: Path, *, ours: bool = True) -> None:
    """Create `path` (and its missing parents) 0700; an existing one is made 0700 only when it is `ours` alone."""
    existed = path.is_dir()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if ours or not existed:
        path.chmod(0o700)


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600, or make an existing one 0600 (SQLite gives its WAL the same mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
