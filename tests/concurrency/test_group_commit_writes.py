"""Group commit on the real databases: a write without a savepoint that fails in the database cannot take the
batch's other writes down with it, nor let them be answered as written when they were not (PostgreSQL aborts the
whole transaction after a failed statement)."""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tests.unit.db.test_group_commit import batched
from vault.group_commit import GroupCommit, NotWritten
from vault.wiring import Vault


def _insert(key: str) -> Any:
    def work(session: Session) -> str:
        session.execute(
            text("INSERT INTO mandate_counters (key, window_start, count) VALUES (:k, CURRENT_TIMESTAMP, 1)"),
            {"k": key},
        )
        return key

    return work


def _broken(session: Session) -> None:
    session.execute(text("SELECT * FROM no_such_table"))


def test_a_write_without_a_savepoint_that_fails_in_the_database_spares_the_others(vault: Vault) -> None:
    works: list[Any] = [_insert(f"ok-{i}") for i in range(5)] + [_broken] + [_insert(f"ok-{i}") for i in range(5, 8)]
    results = batched(GroupCommit(vault.db, max_batch=64), works, savepoint=False)
    assert isinstance(results[5], SQLAlchemyError)
    written = [r for i, r in enumerate(results) if i != 5]
    assert written == [f"ok-{i}" for i in range(8)]
    with vault.db.session() as session:
        keys = set(session.scalars(text("SELECT key FROM mandate_counters")))
    assert keys == {f"ok-{i}" for i in range(8)}  # every write answered as written was committed


def _swallowing(session: Session) -> str:
    """A write that catches its own database error and goes on as if nothing happened (a bug, not a refusal)."""
    with contextlib.suppress(SQLAlchemyError):
        session.execute(text("SELECT * FROM no_such_table"))
    return "swallowed"


def test_a_transaction_a_failed_statement_aborted_is_never_answered_as_written(vault: Vault) -> None:
    """On PostgreSQL a COMMIT after a failed statement silently rolls back: the writer asks the driver first."""
    works: list[Any] = [_insert("kept-1"), _swallowing, _insert("kept-2")]
    results = batched(GroupCommit(vault.db, max_batch=64), works, savepoint=False)
    with vault.db.session() as session:
        keys = set(session.scalars(text("SELECT key FROM mandate_counters")))
    answered = {r for r in results if isinstance(r, str)}
    assert {"kept-1", "kept-2"} <= keys
    assert answered - {"swallowed"} <= keys  # every write answered as written was committed
    if vault.db.engine.dialect.name == "postgresql":
        assert isinstance(results[1], NotWritten)
