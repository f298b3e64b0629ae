"""The database, its WAL and the logs are readable by the vault's user only, whatever the umask."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from vault.db import make_engine
from vault.logs import NoQueryString, configure


@pytest.fixture(autouse=True)
def lax_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # what most shells give: files 0644 unless the vault says otherwise
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_its_wal_are_0600(tmp_path: Path) -> None:
    # without private_file/private_dir in make_engine: 0644 and 0755
    data = tmp_path / "data"
    engine = make_engine(f"sqlite:///{data / 'vault.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x)"))
    with engine.connect() as conn:  # a reader keeps the WAL and shm in place
        conn.execute(text("SELECT * FROM t")).all()
        files = [data / "vault.db", data / "vault.db-wal", data / "vault.db-shm"]
        assert [mode(f) for f in files] == [0o600, 0o600, 0o600]
    engine.dispose()
    assert mode(data) == 0o700


def test_an_existing_database_file_is_made_private(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    db = shared / "vault.db"
    db.touch(mode=0o644)
    make_engine(f"sqlite:///{db}").dispose()
    assert mode(db) == 0o600
    assert mode(shared) == 0o755  # a directory it did not create keeps its mode


def test_logs_are_0600_in_a_0700_directory(tmp_path: Path) -> None:
    # without PrivateRotatingFileHandler and private_dir in configure: 0644 and 0755
    logs = tmp_path / "logs"
    configure("INFO", logs)
    logging.getLogger("vault.test").info("a line")
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_vault", False) and hasattr(h, "doRollover"))
    handler.doRollover()
    logging.getLogger("vault.test").info("another line")
    assert mode(logs) == 0o700
    assert sorted((p.name, mode(p)) for p in logs.iterdir()) == [("vault.log", 0o600), ("vault.log.1", 0o600)]


def test_the_access_log_never_carries_a_query_string() -> None:
    # without NoQueryString on uvicorn.access, a token sent in a URL went to the log
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/graphql?access_token=secret-token", "1.1", 400),
        None,
    )
    assert NoQueryString().filter(record)
    assert "secret-token" not in record.getMessage() and "/graphql" in record.getMessage()
