"""Run N attempts at the same state transition truly in parallel: threads, each with its own connection and
unit of work, released together from a barrier. Every race test asserts exactly one attempt won."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from vault.db import Database

PARALLEL = 8


@dataclass
class Outcome:
    won: list[Any] = field(default_factory=list)
    lost: list[BaseException] = field(default_factory=list)

    def errors_of(self, *kinds: type[BaseException]) -> list[BaseException]:
        """The losers' exceptions that are not of the documented kinds (these are bugs)."""
        return [e for e in self.lost if not isinstance(e, kinds)]


def race(
    db: Database,
    attempt: Callable[[Any, int], Any],
    n: int = PARALLEL,
    unit: Callable[[], AbstractContextManager[Any]] | None = None,
) -> Outcome:
    """`attempt(session, i)` n times at once, each in its own unit of work (`unit`, default `db.session`);
    returns who won and who lost.

    On PostgreSQL each thread opens its connection and begins its transaction before the barrier, so the attempts
    contend in the database, not in Python. SQLite admits one writer (BEGIN IMMEDIATE): there the threads are
    released together and then queue for the write lock, which is the protection under test.
    """
    early = db.engine.dialect.name == "postgresql"
    open_unit = unit or db.session
    barrier = threading.Barrier(n, timeout=60)
    outcome = Outcome()
    guard = threading.Lock()

    def run(i: int) -> None:
        try:
            if not early:
                barrier.wait()
            with open_unit() as session:
                if early:
                    session.connection()  # the transaction is open (BEGIN sent) before anyone is released
                    barrier.wait()
                result = attempt(session, i)
            with guard:
                outcome.won.append(result)
        except BaseException as error:  # a loser's error is the outcome under test
            with guard:
                outcome.lost.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a racing attempt hung"
    return outcome


def parallel(call: Callable[[int], Any], n: int = PARALLEL) -> list[Any]:
    """`call(i)` n times at once from threads released by a barrier (for races driven over HTTP)."""
    barrier = threading.Barrier(n, timeout=60)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except BaseException as error:  # reported as the result: the test says which errors are expected
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a racing call hung"
    return results
