"""Leadership: exactly one process of a deployment runs maintenance (expiry, erasure, checkpoints, sequencing).

On PostgreSQL the leader holds a session-level advisory lock on a connection of its own: when the process dies
its connection closes and the lock is free for the next worker, on any host. On SQLite (one host by nature) the
leader holds an exclusive `flock` on a file beside the database, which the kernel releases when the process dies.
A leader that loses its connection loses leadership and says so at the next `still_held()`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

log = logging.getLogger("vault.leadership")

_PG_LEADER_LOCK = 0x7661756C744C  # any constant shared by every process of the deployment


class Leadership:
    """Try to become the leader; `held` says whether this process is it. Never blocks."""

    def __init__(self, engine: Engine, lock_file: Path) -> None:
        self.engine = engine
        self.lock_file = lock_file
        self._conn: Connection | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fd is not None

    def try_acquire(self) -> bool:
        """Become the leader if nobody is; True when this process is the leader (now or already)."""
        if self.held:
            return self.still_held()
        if self.engine.dialect.name == "postgresql":
            return self._acquire_pg()
        return self._acquire_file()

    def still_held(self) -> bool:
        """False (and leadership dropped) when the lock's connection has gone: another process may lead now."""
        if self._conn is None:
            return self._fd is not None
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except Exception:  # the connection died, so did its advisory lock
            log.warning("leadership lost: the lock's database connection closed")
            self._drop_pg()
            return False

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LEADER_LOCK})
            self._drop_pg()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _acquire_pg(self) -> bool:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_LEADER_LOCK}).scalar())
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _drop_pg(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()  # never hand a connection holding (or having held) the lock back to the pool
            with contextlib.suppress(Exception):
                conn.close()

    def _acquire_file(self) -> bool:
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def __enter__(self) -> Leadership:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
