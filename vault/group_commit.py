"""Group commit: the short writes of concurrent requests committed together, one transaction and one fsync.

A request hands its write (a function of a session) to `GroupCommit.run` and waits. One writer thread per process
takes every write waiting, runs each in its own SAVEPOINT of one transaction, commits, and only then lets each
request go on with its own result or its own error:

- A write that raises (a grant revoked or used up, which its guarded UPDATE finds, an access event that cannot be
  written) rolls back its savepoint only: it leaves nothing in the batch, and its request gets its error. The
  writes run one after another in the transaction, so each sees the ones before it: the last use of a "once"
  grant is claimed by exactly one of them.
- If the commit itself fails, no write of the batch took effect; each is then run again in a transaction of its
  own, so one write cannot make the others fail, and each request gets the outcome of its own.
- Nothing is answered before its commit: a request's data leaves only with its committed access event.
- A write may leave part of its work to the end of its batch (`later`): the access events of all the batch's
  reads are then inserted with one statement, and a counter every read adds to (a mandate's limit) is updated once,
  by the batch's total, just before the commit, so its row stays locked for the commit alone rather than the whole
  batch. If that cannot be done for the total (a limit would be passed), the batch is rolled back and each write
  runs again alone, doing all its work itself.
- A write that changes nothing itself (it only checks, and leaves its changes to `later`) may run without a
  savepoint (`run(..., savepoint=False)`), sparing two statements; if it fails in the database the batch is
  rolled back and written again write by write, since PostgreSQL aborts a transaction after a failed statement.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from vault.db import Database

log = logging.getLogger("vault.group_commit")
T = TypeVar("T")
MAX_BATCH = 64
RETRIES = 3  # a write that lost a deadlock in its batch is run alone up to this many times
TRANSIENT = {"40P01", "40001"}  # deadlock_detected, serialization_failure
IDLE_SECONDS = 2.0  # the writer thread ends after this long without work (and starts again with the next)


@dataclass
class _Write(Generic[T]):
    work: Callable[[Session], T]
    savepoint: bool = True
    result: T | None = None
    error: BaseException | None = None
    committed: bool = False  # set only once the transaction holding this write has committed
    done: threading.Event = field(default_factory=threading.Event)


class NotWritten(Exception):
    """The writer stopped before this write was committed (nothing of it was written)."""


class Unfinished(Exception):
    """What the batch's writes left to its end cannot be done for them all together: each write runs again alone."""


Finish = Callable[[Session, list[Any]], object]
_LATER = "group_commit.later"  # in session.info while a write runs in a batch: kind -> (order, finish, items)


def later(session: Session, kind: str, item: Any, finish: Finish, order: int = 0) -> bool:
    """Leave `item` to the end of the batch this write runs in: `finish(session, items)` is then called once with
    every item of `kind` the batch's successful writes left, in the same transaction, before the commit (kinds in
    `order`). Returns False outside a batch: the caller then does the work itself, at once."""
    pending = session.info.get(_LATER)
    if pending is None:
        return False
    pending.setdefault(kind, (order, finish, []))[2].append(item)
    return True


class GroupCommit:
    def __init__(self, db: Database, max_batch: int = MAX_BATCH, idle_seconds: float = IDLE_SECONDS) -> None:
        self._db = db
        self._max_batch = max_batch
        self._idle = idle_seconds
        self._waiting: list[_Write[Any]] = []
        self._changed = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None
        self.batches = 0  # commits made, for measurements
        self.writes = 0

    def run(self, work: Callable[[Session], T], *, savepoint: bool = True) -> T:
        """Run `work(session)` in the next batch; return its result once the batch has committed, or raise its
        error (or the commit's) with nothing of it written.

        `savepoint=False` is for work that changes nothing in the database but by one guarded statement as its very
        last step, or through `later`: a refusal (an exception) then leaves nothing to roll back, and it is spared
        the two statements of a savepoint. An unexpected database error in it fails the batch, whose writes are
        then each run again alone.
        """
        write: _Write[T] = _Write(work, savepoint)
        with self._changed:
            self._waiting.append(write)
            if self._running:
                self._changed.notify()
            else:
                self._running = True
                self._start()
        write.done.wait()
        if write.error is not None:
            raise write.error
        if not write.committed:  # never answer as if written unless the commit is known to have happened
            raise NotWritten("the write was not committed")
        return write.result  # type: ignore[return-value]

    def _start(self) -> None:
        """Start the writer thread (called holding the condition's lock)."""
        self._thread = threading.Thread(target=self._writer, name="group-commit", daemon=True)
        self._thread.start()

    def _writer(self) -> None:
        try:
            while True:
                with self._changed:
                    if not self._waiting:
                        self._changed.wait(self._idle)
                    if not self._waiting:
                        self._running = False
                        return
                    batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
                try:
                    self._commit(batch)
                finally:
                    for write in batch:
                        write.done.set()  # answered NotWritten if the thread is dying before the commit
        finally:
            with self._changed:  # a writer that died on a BaseException must not leave the writes behind it waiting
                if self._running and threading.current_thread() is self._thread:
                    self._running = bool(self._waiting)
                    if self._running:
                        self._start()

    def _commit(self, batch: list[_Write[Any]]) -> None:
        try:
            with self._db.session() as session:
                left: dict[str, tuple[int, Finish, list[Any]]] = {}
                for write in batch:
                    _attempt(session, write, nested=True, left=left)
                for _, finish, items in sorted(left.values(), key=lambda entry: entry[0]):
                    finish(session, items)
                if _aborted(session):  # PostgreSQL would turn this COMMIT into a ROLLBACK without an error
                    raise Unfinished("the batch's transaction was aborted by a failed statement")
            for write in batch:
                write.committed = write.error is None
            for write in batch:
                if write.error is not None and _transient(write.error):
                    self._alone(write)
        except Unfinished:
            for write in batch:
                self._alone(write)
        except Exception as error:
            if len(batch) == 1 and not _transient(error):
                batch[0].result, batch[0].error = None, batch[0].error or error
                return
            # the commit failed, or what the writes left to the batch's end lost a deadlock: each write again alone,
            # a deadlock or serialization failure there retried as in a batch
            log.warning("a batch of %d writes failed to commit (%s); writing each alone", len(batch), error)
            for write in batch:
                self._alone(write)
        self.batches += 1
        self.writes += len(batch)

    def _alone(self, write: _Write[Any]) -> None:
        """Run a write again in a transaction of its own (nothing of it was written), up to RETRIES times while it
        loses a deadlock or a serialization conflict, so that it gets an answer, not a 500."""
        for _ in range(RETRIES):
            write.result, write.error = None, None
            try:
                with self._db.session() as session:
                    _attempt(session, write, nested=False)
                    if write.error is not None:
                        raise write.error
                    if _aborted(session):  # its COMMIT would be a ROLLBACK: never answer as if written
                        raise NotWritten("the write's transaction was aborted by a failed statement")
                write.committed = True
                return
            except Exception as error:
                write.result, write.error = None, write.error or error
                if not _transient(write.error):
                    return


def _transient(error: BaseException) -> bool:
    """A deadlock's victim or a serialization failure (PostgreSQL), which the same write may simply try again."""
    code = getattr(getattr(error, "orig", None), "sqlstate", None)
    return code in TRANSIENT


def _attempt(
    session: Session, write: _Write[Any], *, nested: bool, left: dict[str, tuple[int, Finish, list[Any]]] | None = None
) -> None:
    """Run one write; in a batch, in its own savepoint, which its failure rolls back (the others stay), and what it
    leaves to the batch's end (`later`) joins `left` only if it succeeded."""
    try:
        if nested:
            pending: dict[str, tuple[int, Finish, list[Any]]] = {}
            session.info[_LATER] = pending
            if write.savepoint:
                with session.begin_nested():
                    write.result = write.work(session)
            else:
                write.result = write.work(session)
            assert left is not None, "a write in a batch hands what it leaves to the batch"
            for kind, (order, finish, items) in pending.items():
                left.setdefault(kind, (order, finish, []))[2].extend(items)
        else:
            write.result = write.work(session)
    except Exception as error:
        write.result, write.error = None, error
        if nested and not write.savepoint and _from_database(error):
            # without a savepoint the failed statement may have spoilt the transaction (PostgreSQL aborts it): the
            # batch is rolled back and each of its writes runs again alone
            raise Unfinished("a write without a savepoint failed in the database") from error
    finally:
        session.info.pop(_LATER, None)


def _aborted(session: Session) -> bool:
    """Whether the session's PostgreSQL transaction was aborted by a failed statement (psycopg's status INERROR),
    in which case COMMIT silently rolls back. Asks the driver, not the server: no round trip."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return False
    info = getattr(connection.connection.dbapi_connection, "info", None)
    status = getattr(info, "transaction_status", None)
    return status is not None and getattr(status, "name", "") == "INERROR"


def _from_database(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, SQLAlchemyError):
            return True
        error = error.__cause__ or error.__context__
    return False
