"""Group commit: concurrent writes share a commit, yet each request gets its own result and its own failure."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from vault.db import Database, make_engine
from vault.group_commit import GroupCommit, NotWritten, Unfinished, later

SCHEMA = [
    "CREATE TABLE parents (id INTEGER PRIMARY KEY)",
    "CREATE TABLE rows (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)",
    "INSERT INTO parents (id) VALUES (1)",
]


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(make_engine(f"sqlite:///{tmp_path / 'g.db'}"))
    with database.session() as session:
        for statement in SCHEMA:
            session.execute(text(statement))
    return database


def insert(row: int, parent: int = 1, fail: bool = False) -> Any:
    def work(session: Session) -> int:
        session.execute(text("INSERT INTO rows (id, parent) VALUES (:i, :p)"), {"i": row, "p": parent})
        if fail:
            raise ValueError(f"write {row} refused")
        return row

    return work


def together(group: GroupCommit, works: list[Any], savepoint: bool = True) -> list[Any]:
    results: list[Any] = [None] * len(works)
    barrier = threading.Barrier(len(works))

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = group.run(works[i], savepoint=savepoint)
        except Exception as error:  # the outcome under test
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(works))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def committed(db: Database) -> set[int]:
    with db.session() as session:
        return {row for (row,) in session.execute(text("SELECT id FROM rows"))}


def test_concurrent_writes_share_commits_and_each_gets_its_own_result(db: Database) -> None:
    results = together(db.group, [insert(i) for i in range(40)])
    assert results == list(range(40))
    assert committed(db) == set(range(40))
    assert db.group.writes == 40 and db.group.batches < 40  # some shared a commit


def test_a_refused_write_leaves_nothing_and_the_others_commit(db: Database) -> None:
    results = together(db.group, [insert(i, fail=i % 5 == 0) for i in range(20)])
    for i, result in enumerate(results):
        if i % 5 == 0:
            assert isinstance(result, ValueError) and str(result) == f"write {i} refused"
        else:
            assert result == i
    assert committed(db) == {i for i in range(20) if i % 5}


def test_a_batch_whose_commit_fails_is_written_again_one_by_one(db: Database) -> None:
    # row 7 points at no parent: only the COMMIT finds it (a deferred foreign key), failing the whole batch
    group = GroupCommit(db, max_batch=64)
    results = batched(group, [insert(i, parent=2 if i == 7 else 1) for i in range(12)])
    assert group.batches == 2  # the blocker's, then the twelve's (written again one by one)
    assert isinstance(results[7], IntegrityError)
    assert [r for i, r in enumerate(results) if i != 7] == [i for i in range(12) if i != 7]
    assert committed(db) == {i for i in range(12) if i != 7}


class _Deadlock(Exception):
    sqlstate = "40P01"  # what psycopg's DeadlockDetected carries


def test_a_write_that_lost_a_deadlock_in_the_batch_is_run_again_alone(db: Database) -> None:
    attempts: list[int] = []

    def victim(session: Session) -> int:
        attempts.append(1)
        session.execute(text("INSERT INTO rows (id, parent) VALUES (7, 1)"))
        if len(attempts) == 1:  # PostgreSQL chose this statement as the deadlock's victim
            raise OperationalError("UPDATE …", {}, _Deadlock("deadlock detected"))
        return 7

    results = together(GroupCommit(db), [insert(1), victim, insert(2)])
    assert results == [1, 7, 2] and len(attempts) == 2
    with db.session() as session:
        assert session.execute(text("SELECT id FROM rows ORDER BY id")).scalars().all() == [1, 2, 7]


def test_a_write_that_keeps_losing_is_refused_after_its_retries(db: Database) -> None:
    def always(session: Session) -> int:
        raise OperationalError("UPDATE …", {}, _Deadlock("deadlock detected"))

    [refused] = together(GroupCommit(db), [always])
    assert isinstance(refused, OperationalError)


def batched(group: GroupCommit, works: list[Any], savepoint: bool = True) -> list[Any]:
    """Run `works` as one batch: the writer is held busy while they queue up behind it."""
    running, release = threading.Event(), threading.Event()

    def blocker(session: Session) -> None:
        running.set()
        release.wait(30)

    first = threading.Thread(target=group.run, args=(blocker,))
    first.start()
    assert running.wait(30)
    threading.Timer(0.5, release.set).start()
    results = together(group, works, savepoint)
    first.join(30)
    return results


def leaving(row: int, finished: list[list[int]], fail: bool = False, alone: list[int] | None = None) -> Any:
    """A write that leaves the insert of its row to the end of its batch (or does it at once outside a batch)."""

    def finish(session: Session, rows: list[int]) -> None:
        finished.append(sorted(rows))
        if any(r < 0 for r in rows):
            raise Unfinished("a negative row cannot be written together with others")
        for r in rows:
            session.execute(text("INSERT INTO rows (id, parent) VALUES (:i, 1)"), {"i": abs(r)})

    def work(session: Session) -> int:
        if not later(session, "rows", row, finish):
            if alone is not None:
                alone.append(row)
            session.execute(text("INSERT INTO rows (id, parent) VALUES (:i, 1)"), {"i": abs(row)})
        if fail:
            raise ValueError(f"write {row} refused")
        return row

    return work


def test_what_the_writes_of_a_batch_leave_is_done_once_for_those_that_succeeded(db: Database) -> None:
    group, finished = GroupCommit(db, max_batch=64), []
    results = batched(group, [leaving(i, finished, fail=i == 3) for i in range(8)])
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [i for i in range(8) if i != 3]
    assert finished == [[i for i in range(8) if i != 3]]  # one call, without the refused write's row
    assert committed(db) == {i for i in range(8) if i != 3}


def test_what_cannot_be_done_together_is_done_by_each_write_alone(db: Database) -> None:
    group, finished, alone = GroupCommit(db, max_batch=64), [], []
    results = batched(group, [leaving(-i if i == 5 else i, finished, alone=alone) for i in range(1, 8)])
    assert results == [-5 if i == 5 else i for i in range(1, 8)]
    assert finished == [sorted(-i if i == 5 else i for i in range(1, 8))]  # tried together once, then ...
    assert sorted(alone) == sorted(-i if i == 5 else i for i in range(1, 8))  # ... each wrote its own
    assert committed(db) == set(range(1, 8))


def test_a_write_alone_in_its_batch_is_still_run_again_when_its_part_cannot_be_done(db: Database) -> None:
    finished: list[list[int]] = []
    alone: list[int] = []
    assert db.group.run(leaving(-9, finished, alone=alone)) == -9
    assert finished == [[-9]] and alone == [-9]
    assert committed(db) == {9}


def _finishing(row: int, deadlocks: list[int]) -> Any:
    """A write leaving its row to the batch's end, where the first `deadlocks` attempts lose a deadlock."""

    def finish(session: Session, rows: list[int]) -> None:
        if deadlocks:  # PostgreSQL chose the batch's counter upsert as a deadlock's victim
            deadlocks.pop()
            raise OperationalError("INSERT INTO mandate_counters ...", {}, _Deadlock("deadlock detected"))
        for r in rows:
            session.execute(text("INSERT INTO rows (id, parent) VALUES (:i, 1)"), {"i": r})

    def work(session: Session) -> int:
        if not later(session, "rows", row, finish):
            session.execute(text("INSERT INTO rows (id, parent) VALUES (:i, 1)"), {"i": row})
        return row

    return work


def test_a_deadlock_lost_at_the_batchs_end_is_tried_again(db: Database) -> None:
    assert db.group.run(_finishing(1, [1])) == 1  # a batch of one: its end lost a deadlock once
    results = batched(GroupCommit(db, max_batch=64), [_finishing(i, [1]) for i in range(2, 6)])
    assert results == [2, 3, 4, 5]
    assert committed(db) == {1, 2, 3, 4, 5}


def test_a_write_run_alone_after_its_batch_failed_is_still_retried_after_a_deadlock(db: Database) -> None:
    tries: list[int] = []

    def victim(session: Session) -> int:
        if not later(session, "rows", 5, lambda s, rows: _fail_the_batch()):
            tries.append(1)
            if len(tries) == 1:
                raise OperationalError("INSERT ...", {}, _Deadlock("deadlock detected"))
        return 5

    results = batched(GroupCommit(db, max_batch=64), [victim, insert(6)])
    assert results == [5, 6] and len(tries) == 2


def _fail_the_batch() -> None:
    raise RuntimeError("the batch's end failed")


class _Interrupted(BaseException):
    """Not an Exception: what a write cannot catch for itself (as KeyboardInterrupt or SystemExit would be)."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # its dying is the point
def test_a_writer_that_dies_leaves_no_write_behind_it_waiting(db: Database) -> None:
    group, running, release = GroupCommit(db, max_batch=1), threading.Event(), threading.Event()

    def dying(session: Session) -> None:
        running.set()
        release.wait(30)  # the next write queues behind this one, in a batch of its own
        raise _Interrupted

    outcome: list[BaseException] = []

    def run_dying() -> None:
        try:
            group.run(dying)
        except NotWritten as error:  # the outcome under test
            outcome.append(error)

    first = threading.Thread(target=run_dying)
    first.start()
    assert running.wait(30)
    after: list[Any] = []
    second = threading.Thread(target=lambda: after.append(group.run(insert(1))), daemon=True)
    second.start()
    time.sleep(0.2)
    release.set()
    first.join(30)
    second.join(30)
    assert len(outcome) == 1  # the dying write was answered: not written
    assert after == [1], "the write queued behind the writer that died was never written"
    assert committed(db) == {1}
