"""Bulk issuance across processes: worker processes check, sign and encrypt batches while this one writes them.

A batch's CPU work (BulkIssuer.prepare: the checks, the SD-JWTs, the per-owner encryption, the rows) is about
two thirds of its cost and needs only reads, so it is done in spawned worker processes, each reading its own
snapshot, before the batch's write transaction begins; this process then writes each batch in a short
transaction (the inserts, the events, one commit), in order, while the workers prepare the next ones.

What a single transaction guaranteed still holds:
- Status slots are drawn here, at random among those free, and kept from every other batch until the batch that
  got them is written; the slots' primary key makes a batch that lost a slot to another writer fail, never share.
- A number issued by an earlier batch still in flight (or by another writer) fails the batch on the numbers'
  unique index; an owner erased since the batch was prepared fails it too (BatchStale). A failed batch leaves
  nothing behind and is then issued again in one transaction, checked afresh (so a repeated row is counted as
  already issued, as it would have been).
- The workers get the master keys over their pipe, in memory; nothing is written to disk by them, and what they
  send back is ciphertext, digests and the rows' outcomes (problems name fields, never values).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vault.crypto.keyring import Keyring
from vault.crypto.services import KeyService
from vault.db import Database, make_engine
from vault.licences.bulk import BulkIssuer, BulkRow, PreparedBatch, RowOutcome
from vault.licences.errors import BatchStale, UnknownLicenceType
from vault.licences.issuers import IssuerRegistry
from vault.licences.services import LicenceService
from vault.licences.status import StatusLists
from vault.licences.types import load_catalogue

if TYPE_CHECKING:
    from vault.audit.services import AuditLog

log = logging.getLogger("vault.licences.pipeline")

# SQLite's page cache while writing batches (the default is 2 MiB). Every licence adds entries at random places in
# about ten indexes (its ids are random by design): with a cache smaller than them nearly every entry reads its page
# back from the file, and a batch's dirty pages spill to the WAL before its commit. The cache grows only as pages are
# read (it was full at about 580,000 licences of a million-row import), and only the import's own process sets it;
# an import is run by an operator on the vault's host, which can spare a few GB for it.
WRITER_CACHE_KIB = 4 * 1024 * 1024
# Fold SQLite's WAL back into the database once it passes this size. A page changed by several batches between two
# checkpoints is copied to the database once, so rarer checkpoints write less (see docs/performance.md); the WAL's
# disk space, up to about 5 GB, is what it costs.
CHECKPOINT_WAL_BYTES = 4 << 30
RETRIES = 3  # a batch that lost a race (a number or a status slot taken meanwhile) is checked and tried again
UnitOfWork = Callable[[], AbstractContextManager[Session]]


def tune_gc_for_import() -> None:
    """For an import's own processes: leave long-lived objects out of every collection, collect less often.

    Batches allocate many short-lived objects and few cycles; with the defaults, collections scanning the whole heap
    took about a fifth of the CPU time (1,390 licences per CPU-second, 1,790 with this; see docs/performance.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def roomy_cache(session: Session) -> None:
    """Let a batch's pages stay in SQLite's cache until its commit: with the default 2 MiB, a batch of 1,000 (about
    5 MB of rows and index entries) spills pages to the WAL midway and writes many of them twice; with this, the
    bench's inserts took half the time. Only the import's own process does this (its connection keeps the setting).
    """
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")


def own_checkpoints(session: Session) -> None:
    """Leave checkpoints to the pipeline (by the WAL's size) rather than SQLite's automatic ones after each commit.

    An automatic checkpoint after every batch's commit copied that batch's pages to the database straight away, so a
    page changed by the next batch too was written to the database again, with an fsync of the database each time.
    Checkpoints decide only when committed pages are copied from the WAL into the database, never whether a commit
    is durable (each commit still syncs the WAL: synchronous stays FULL). Only the import's own process does this.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("PRAGMA wal_autocheckpoint = 0")


def issue_in_one_transaction(
    issuer: BulkIssuer, unit_of_work: UnitOfWork, rows: Sequence[BulkRow], *, issuer_code: str | None, actor: str
) -> list[RowOutcome]:
    """Check and write a batch in one transaction (BulkIssuer.issue_batch), again if it lost a race."""
    for attempt in range(RETRIES):
        try:
            with unit_of_work() as session:
                roomy_cache(session)
                return issuer.issue_batch(session, rows, issuer_code=issuer_code, actor=actor)
        except IntegrityError:
            if attempt == RETRIES - 1:
                raise
            log.warning("a batch lost a race for a number or a status slot; checking it again")
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker needs to prepare batches: where to read, the catalogue, and the master keys (in memory)."""

    database_url: str
    policies_dir: Path
    public_url: str
    keyring: Keyring


@dataclass(frozen=True)
class _Task:
    rows: list[BulkRow]
    issuer_code: str | None
    actor: str
    slots: dict[str, list[int]]


_worker: tuple[BulkIssuer, Database] | None = None


def _start_worker(setup: WorkerSetup) -> None:
    global _worker
    tune_gc_for_import()
    catalogue = load_catalogue(setup.policies_dir)
    keys = KeyService(setup.keyring)
    issuers = IssuerRegistry(keys, catalogue, setup.public_url)
    # a worker appends no event (the writer does), so its licence service has no access log
    licences = LicenceService(keys, cast("AuditLog", None), catalogue, issuers, StatusLists(issuers))
    _worker = (BulkIssuer(licences), Database(make_engine(setup.database_url)))


def _started() -> bool:
    return _worker is not None


def _prepare(task: _Task) -> PreparedBatch:
    assert _worker is not None, "the worker was not started"
    issuer, db = _worker
    with db.read_session() as session:
        return issuer.prepare(session, task.rows, issuer_code=task.issuer_code, actor=task.actor, slots=task.slots)


@dataclass
class _InFlight:
    rows: list[BulkRow]
    slots: dict[str, list[int]]
    prepared: Future[PreparedBatch]


@dataclass
class Pipeline:
    """Issue batches with `workers` processes preparing while this one writes; use as a context manager.

    `issue` yields each batch's outcomes in the order the batches came, each batch committed (or wholly not).
    """

    issuer: BulkIssuer
    db: Database
    setup: WorkerSetup
    workers: int = 2
    _pool: ProcessPoolExecutor | None = None
    _kept: dict[str, set[int]] = field(default_factory=dict)  # slots of batches in flight, by issuer

    def __enter__(self) -> Pipeline:
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),  # a fresh interpreter: nothing of ours but the setup
            initializer=_start_worker,
            initargs=(self.setup,),
        )
        for ready in [self._pool.submit(_started) for _ in range(self.workers)]:  # start them all now
            ready.result()
        return self

    def worker_pids(self) -> list[int]:
        """The workers' process ids (for measurements); the executor has no public way to tell."""
        return sorted(self._pool._processes) if self._pool is not None else []

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def issue(
        self,
        batches: Iterable[Sequence[BulkRow]],
        *,
        unit_of_work: UnitOfWork,
        actor: str,
        issuer_code: str | None = None,
    ) -> Iterator[list[RowOutcome]]:
        in_flight: deque[_InFlight] = deque()
        for rows in batches:
            in_flight.append(self._submit(list(rows), issuer_code, actor))
            if len(in_flight) > self.workers:  # each worker has the next batch queued while this one writes
                yield self._write(in_flight.popleft(), unit_of_work, issuer_code, actor)
                if self.db.wal_bytes() >= CHECKPOINT_WAL_BYTES:
                    # a checkpoint that truncates the WAL: the workers' reads overlap without end, so a WAL that is
                    # only checkpointed is never started again from its beginning, and grows
                    self.db.checkpoint_wal()
        while in_flight:
            yield self._write(in_flight.popleft(), unit_of_work, issuer_code, actor)
        self.db.checkpoint_wal()

    def _submit(self, rows: list[BulkRow], issuer_code: str | None, actor: str) -> _InFlight:
        assert self._pool is not None, "use the pipeline as a context manager"
        wanted: dict[str, int] = {}
        for row in rows:
            try:
                issuer = self.issuer.catalogue.type(row.type_code).issuer
            except UnknownLicenceType:
                continue
            if issuer_code is None or issuer == issuer_code:
                wanted[issuer] = wanted.get(issuer, 0) + 1
        slots: dict[str, list[int]] = {}
        with self.db.read_session() as session:
            for issuer, count in sorted(wanted.items()):
                kept = self._kept.setdefault(issuer, set())
                slots[issuer] = self.issuer.draw_slots(session, issuer, count, kept)
                kept.update(slots[issuer])
        future = self._pool.submit(_prepare, _Task(rows, issuer_code, actor, slots))
        return _InFlight(rows, slots, future)

    def _write(
        self, batch: _InFlight, unit_of_work: UnitOfWork, issuer_code: str | None, actor: str
    ) -> list[RowOutcome]:
        try:
            prepared = batch.prepared.result()
            try:
                with unit_of_work() as session:
                    roomy_cache(session)
                    own_checkpoints(session)
                    self.issuer.write(session, prepared)
                return prepared.outcomes
            except (IntegrityError, BatchStale):
                log.warning("a prepared batch lost a race or an owner was erased meanwhile; checking it again")
                return issue_in_one_transaction(
                    self.issuer, unit_of_work, batch.rows, issuer_code=issuer_code, actor=actor
                )
        finally:
            for issuer, slots in batch.slots.items():
                self._kept[issuer].difference_update(slots)
