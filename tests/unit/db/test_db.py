"""Storage: SQLite durability settings, schema checks, and the append-only log enforced by the database."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from vault.config import PROJECT_ROOT
from vault.db import (
    CACHE_KIB,
    Database,
    SchemaError,
    alembic_config,
    check_schema,
    current_revision,
    head_revision,
    make_engine,
    sqlite_pragmas,
    upgrade,
)
from vault.wiring import Vault


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_with_full_sync_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'v.db'}")
    assert sqlite_pragmas(engine) == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "secure_delete": 1,
        "busy_timeout": 15000,
    }


@pytest.mark.sqlite_only
def test_a_begin_that_fails_is_raised_as_sqlalchemy_raises_a_failed_statement(tmp_path: Path) -> None:
    """SQLite's BEGIN IMMEDIATE, sent on the driver's connection, still fails as a SQLAlchemy DBAPIError (what the
    group commit and the API tell database failures by), and the connection can begin once the lock is free."""
    path = tmp_path / "v.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        conn.commit()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with engine.connect() as conn:
            conn.connection.driver_connection.execute("PRAGMA busy_timeout = 50")  # type: ignore[union-attr]
            with pytest.raises(OperationalError, match="locked") as raised:
                conn.begin()
            assert isinstance(raised.value.orig, sqlite3.OperationalError)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    engine.dispose()


@pytest.mark.sqlite_only
def test_every_sqlite_connection_caches_at_most_its_share(tmp_path: Path) -> None:
    db = Database(make_engine(f"sqlite:///{tmp_path / 'v.db'}"))
    for engine in (db.engine, db.read_engine):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -CACHE_KIB
    db.dispose()


def test_unmigrated_database_is_refused_with_the_fixing_command(database_url: str) -> None:
    engine = make_engine(database_url)
    with pytest.raises(SchemaError, match="vault db upgrade"):
        check_schema(engine)
    upgrade(engine)
    check_schema(engine)
    engine.dispose()


def test_newer_schema_is_refused(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match="newer than this code"):
        check_schema(engine)
    engine.dispose()


def test_revisions_are_read_as_alembic_reads_them(database_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(database_url))
    assert head_revision() == script.get_current_head()
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    upgrade(engine)
    with engine.connect() as conn:
        assert current_revision(engine) == MigrationContext.configure(conn).get_current_revision() == head_revision()
    engine.dispose()


def test_a_serving_worker_does_not_import_alembic() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, vault.web.app; print(sorted({'alembic', 'mako'} & set(sys.modules)))"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'someone else'",
        "DELETE FROM audit_events",
        "UPDATE audit_checkpoints SET signed = 'x'",
        "DELETE FROM audit_checkpoints",
    ],
)
def test_the_database_refuses_to_change_the_log(vault: Vault, statement: str) -> None:
    with vault.db.session() as session:
        vault.owners.add_person(session, id_number="11010519491231002X", name="演示", actor="test")
        vault.audit.sequence(session)
    with pytest.raises(DBAPIError, match="append-only"), vault.db.session() as session:
        session.execute(text(statement))
    with vault.db.session() as session:
        assert vault.audit.verify(session).ok
