"""The witness's own state: its key file and a small SQLite database of the logs it follows and the latest
checkpoint it cosigned for each. The check of the old size and the write of the new one happen in one
IMMEDIATE transaction, so two racing submissions cannot roll the witness back."""

from __future__ import annotations

import base64
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nacl.signing

from vault.audit import note

KEY_FILE = "witness.key"
DB_FILE = "witness.db"


@dataclass(frozen=True)
class Latest:
    size: int
    root: bytes
    signed: str  # the checkpoint note with the log's signature and this witness's cosignature


class WitnessStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / DB_FILE
        with self._connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS logs (origin TEXT PRIMARY KEY, vkey TEXT NOT NULL)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS latest (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                "root BLOB NOT NULL, signed TEXT NOT NULL)"
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=15, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            yield conn

    def add_log(self, vkey: str) -> note.Verifier:
        verifier = note.parse_vkey(vkey, note.ED25519)
        with self._connect() as conn:
            conn.execute("INSERT OR REPLACE INTO logs (origin, vkey) VALUES (?, ?)", (verifier.name, verifier.vkey))
        return verifier

    def log_keys(self, conn: sqlite3.Connection, origin: str) -> list[note.Verifier]:
        rows = conn.execute("SELECT vkey FROM logs WHERE origin = ?", (origin,)).fetchall()
        return [note.parse_vkey(r[0], note.ED25519) for r in rows]

    def latest(self, conn: sqlite3.Connection, origin: str) -> Latest | None:
        row = conn.execute("SELECT size, root, signed FROM latest WHERE origin = ?", (origin,)).fetchone()
        return None if row is None else Latest(int(row[0]), bytes(row[1]), str(row[2]))

    def read_latest(self, origin: str) -> Latest | None:
        with self._connect() as conn:
            return self.latest(conn, origin)

    def record(self, conn: sqlite3.Connection, origin: str, latest: Latest) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO latest (origin, size, root, signed) VALUES (?, ?, ?, ?)",
            (origin, latest.size, latest.root, latest.signed),
        )


def init_key(directory: Path, name: str) -> note.Verifier:
    """Create the witness's key (once); returns its cosignature verifier key to give to the vault's operator."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / KEY_FILE
    if path.exists():
        raise FileExistsError(f"{path} exists: the witness already has a key")
    key = nacl.signing.SigningKey.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{name}\n{base64.b64encode(bytes(key)).decode()}\n")
    return note.verifier_of(name, note.COSIGNATURE, key)


def load_key(directory: Path) -> tuple[str, nacl.signing.SigningKey]:
    name, seed = (directory / KEY_FILE).read_text().split("\n")[:2]
    return name, nacl.signing.SigningKey(base64.b64decode(seed))
