"""Group commit on the real databases: a write without a savepoint that fails in the database cannot take the
batch's other writes down with it, nor let them be answered as written when they were not (PostgreSQL aborts the
whole transaction after a failed statement)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

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
    group, running, release = GroupCommit(vault.db, max_batch=64), threading.Event(), threading.Event()

    def blocker(session: Session) -> None:
        running.set()
        release.wait(30)  # the writer is busy: the writes below queue up behind it and are one batch

    first = threading.Thread(target=group.run, args=(blocker,))
    first.start()
    assert running.wait(30)
    works: list[Any] = [_insert(f"ok-{i}") for i in range(5)] + [_broken] + [_insert(f"ok-{i}") for i in range(5, 8)]
    results: list[Any] = [None] * len(works)

    def run(i: int) -> None:
        try:
            results[i] = group.run(works[i], savepoint=False)
        except Exception as error:  # the outcome under test
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(works))]
    for thread in threads:
        thread.start()
    threading.Timer(0.5, release.set).start()
    for thread in threads:
        thread.join(60)
    first.join(30)
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
    group, running, release = GroupCommit(vault.db, max_batch=64), threading.Event(), threading.Event()

    def blocker(session: Session) -> None:
        running.set()
        release.wait(30)

    first = threading.Thread(target=group.run, args=(blocker,))
    first.start()
    assert running.wait(30)
    works: list[Any] = [_insert("kept-1"), _swallowing, _insert("kept-2")]
    results: list[Any] = [None] * len(works)

    def run(i: int) -> None:
        try:
            results[i] = group.run(works[i], savepoint=False)
        except Exception as error:  # the outcome under test
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(works))]
    for thread in threads:
        thread.start()
    threading.Timer(0.5, release.set).start()
    for thread in threads:
        thread.join(60)
    first.join(30)
    with vault.db.session() as session:
        keys = set(session.scalars(text("SELECT key FROM mandate_counters")))
    answered = {r for r in results if isinstance(r, str)}
    assert {"kept-1", "kept-2"} <= keys
    assert answered - {"swallowed"} <= keys  # every write answered as written was committed
    if vault.db.engine.dialect.name == "postgresql":
        assert isinstance(results[1], NotWritten)
