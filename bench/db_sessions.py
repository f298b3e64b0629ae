"""Sync sessions in Starlette's thread pool against SQLAlchemy's AsyncSession, on one unit of work.

A unit is what an agency read costs the database: read 3 rows by primary key from one table, insert one row
into another, commit. N asyncio tasks run units back to back, as N concurrent requests would, for each
variant in turn, each on a fresh database:

  sqlite    sync Session (vault.db.make_engine: WAL, synchronous=FULL, BEGIN IMMEDIATE) via run_in_threadpool
  sqlite    AsyncSession over aiosqlite, with the same connect hook, pragmas and BEGIN IMMEDIATE
  postgres  sync Session over psycopg 3 (vault.db.make_engine) via run_in_threadpool
  postgres  AsyncSession over psycopg 3 async, with the same pool sizes

The PostgreSQL pair runs only when VAULT_BENCH_POSTGRES_URL is set.

Latency is measured from the asyncio task, so it includes waiting for a thread, a pooled connection and the
SQLite write lock. "loop lag" is how late a 5 ms asyncio.sleep wakes up: how busy the event loop is.

    .venv/bin/python bench/db_sessions.py                        # about 15 s
    VAULT_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/db_sessions.py

The PostgreSQL URL names an account that may CREATE DATABASE; the benchmark creates its own database there and
drops it afterwards. The async variants need aiosqlite and greenlet, which are development dependencies only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from random import sample

import anyio.to_thread
import sqlalchemy
from sqlalchemy import DateTime, Integer, LargeBinary, Uuid, create_engine, event, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.concurrency import run_in_threadpool

from vault.db import BUSY_TIMEOUT_MS, SQLITE_PRAGMAS, Database, _on_sqlite_connect, make_engine, sqlite_pragmas

PAYLOAD = os.urandom(200)  # about the size of an encrypted field
ENTRY = os.urandom(400)  # about the size of an access-log entry
TICK = 0.005


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class Event(Base):
    __tablename__ = "bench_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    entry: Mapped[bytes] = mapped_column(LargeBinary)


# the two units of work: identical statements, one through Session, one through AsyncSession


def unit_sync(db: Database, rows: int) -> None:
    with db.session() as session:
        items = [session.get(Item, i) for i in sample(range(1, rows + 1), 3)]
        assert all(items)
        session.add(Event(item_id=items[0].id, created_at=datetime.now(UTC), entry=ENTRY))  # type: ignore[union-attr]


async def unit_async(factory: async_sessionmaker[AsyncSession], rows: int) -> None:
    async with factory() as session, session.begin():
        items = [await session.get(Item, i) for i in sample(range(1, rows + 1), 3)]
        assert all(items)
        session.add(Event(item_id=items[0].id, created_at=datetime.now(UTC), entry=ENTRY))  # type: ignore[union-attr]


# engines


def make_async_engine(url: str) -> AsyncEngine:
    """The async twin of vault.db.make_engine: same SQLite hook and BEGIN IMMEDIATE, same PostgreSQL pool."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(
            parsed.set(drivername="sqlite+aiosqlite"), connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}
        )
        # the documented recipe for aiosqlite: turn off the driver's own BEGIN and emit ours
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        event.listen(engine.sync_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


async def async_sqlite_pragmas(engine: AsyncEngine) -> dict[str, object]:
    async with engine.connect() as conn:
        return {name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar() for name in SQLITE_PRAGMAS}


def create_schema(url: str, rows: int) -> None:
    engine = make_engine(url)
    try:
        Base.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                insert(Item), [{"id": i, "owner_id": uuid.uuid4(), "payload": PAYLOAD} for i in range(1, rows + 1)]
            )
    finally:
        engine.dispose()


def reset_events(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM bench_events"))
    finally:
        engine.dispose()


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server named by admin_url, dropped afterwards."""
    admin_url = admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"vault_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# measurement


@dataclass
class Result:
    backend: str
    variant: str
    tasks: int
    seconds: float
    latencies: list[float]
    lags: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def drive(unit: Callable[[], Awaitable[None]], tasks: int, warmup: float, seconds: float) -> Result:
    """Run `unit` from `tasks` concurrent tasks; keep the units that finish inside the measured window."""
    measure_from = time.perf_counter() + warmup
    stop_at = measure_from + seconds
    latencies: list[float] = []
    lags: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        while (started := time.perf_counter()) < stop_at:
            try:
                await unit()
            except DBAPIError:
                errors += 1
                continue
            finished = time.perf_counter()
            if measure_from <= started and finished <= stop_at:
                latencies.append(finished - started)

    async def ticker() -> None:
        while (started := time.perf_counter()) < stop_at:
            await asyncio.sleep(TICK)
            if started >= measure_from:
                lags.append(time.perf_counter() - started - TICK)

    await asyncio.gather(ticker(), *(worker() for _ in range(tasks)))
    return Result("", "", tasks, seconds, latencies, lags, errors)


async def run_sync_variant(url: str, rows: int, tasks: int, warmup: float, seconds: float) -> Result:
    db = Database(make_engine(url))
    try:
        return await drive(lambda: run_in_threadpool(unit_sync, db, rows), tasks, warmup, seconds)
    finally:
        db.engine.dispose()


async def run_async_variant(url: str, rows: int, tasks: int, warmup: float, seconds: float) -> Result:
    engine = make_async_engine(url)
    try:
        if engine.dialect.name == "sqlite":
            sync_side = make_engine(url)
            try:
                expected = sqlite_pragmas(sync_side)
            finally:
                sync_side.dispose()
            actual = await async_sqlite_pragmas(engine)
            if {k: str(v) for k, v in actual.items()} != {k: str(v) for k, v in expected.items()}:
                raise SystemExit(f"aiosqlite connection settings differ: {actual} != {expected}")
        factory = async_sessionmaker(engine, expire_on_commit=False)
        return await drive(lambda: unit_async(factory, rows), tasks, warmup, seconds)
    finally:
        await engine.dispose()


async def bench_backend(backend: str, url_for: Callable[[], str], args: argparse.Namespace) -> list[Result]:
    results = []
    variants = (
        ("sync Session, thread pool", run_sync_variant),
        ("AsyncSession", run_async_variant),
    )
    for tasks in args.tasks:
        for variant, run in variants:
            url = url_for()
            result = await run(url, args.rows, tasks, args.warmup, args.seconds)
            result.backend, result.variant = backend, variant
            results.append(result)
            print(format_row(result), flush=True)
    return results


# report


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def format_row(r: Result) -> str:
    ms = 1000
    return (
        f"{r.backend:<9} {r.variant:<26} {r.tasks:>5} {r.rate:>9.0f} {percentile(r.latencies, 0.5) * ms:>8.2f} "
        f"{percentile(r.latencies, 0.99) * ms:>8.2f} {percentile(r.lags, 0.99) * ms:>9.2f} {r.errors:>6}"
    )


def format_ratios(results: list[Result]) -> list[str]:
    lines = []
    by_key = {(r.backend, r.tasks, r.variant): r for r in results}
    for (backend, tasks, variant), sync in by_key.items():
        if not variant.startswith("sync"):
            continue
        other = by_key.get((backend, tasks, "AsyncSession"))
        if other is None or not other.latencies or not sync.latencies:
            continue
        lines.append(
            f"{backend:<9} N={tasks:<4} sync/async  throughput x{sync.rate / other.rate:.2f}   "
            f"p50 x{percentile(sync.latencies, 0.5) / percentile(other.latencies, 0.5):.2f}   "
            f"p99 x{percentile(sync.latencies, 0.99) / percentile(other.latencies, 0.99):.2f}"
        )
    return lines


def parse_tasks(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("every task count must be at least 1")
    return values


async def main(args: argparse.Namespace) -> int:
    postgres = os.environ.get("VAULT_BENCH_POSTGRES_URL")
    limiter = anyio.to_thread.current_default_thread_limiter()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {os.cpu_count()} CPUs ({cpu_model()})  "
        f"Python {platform.python_version()}  SQLAlchemy {sqlalchemy.__version__}  SQLite {sqlite3.sqlite_version}"
    )
    print(
        f"unit: 3 reads by primary key + 1 insert + commit; {args.rows} rows; warm-up {args.warmup:g} s, "
        f"measured {args.seconds:g} s per variant; thread pool {limiter.total_tokens:g} threads"
    )
    columns = ("units/s", 9), ("p50 ms", 8), ("p99 ms", 8), ("lag99 ms", 9), ("errors", 6)
    print(f"{'backend':<9} {'variant':<26} {'tasks':>5} " + " ".join(f"{name:>{width}}" for name, width in columns))
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="vault-bench-") as tmp:

        def sqlite_url() -> str:
            url = f"sqlite:///{Path(tmp) / (uuid.uuid4().hex + '.db')}"
            create_schema(url, args.rows)
            return url

        results += await bench_backend("sqlite", sqlite_url, args)

    if postgres:
        with postgres_database(postgres) as url:
            create_schema(url, args.rows)

            def postgres_url() -> str:
                reset_events(url)
                return url

            results += await bench_backend("postgres", postgres_url, args)
    else:
        print("postgres  (skipped: VAULT_BENCH_POSTGRES_URL is not set)")
    print()
    print("\n".join(format_ratios(results)))
    return 1 if any(r.errors for r in results) else 0


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per variant (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each (default 1)")
    parser.add_argument(
        "--tasks", type=parse_tasks, default=[16], help="concurrent tasks, comma separated (default 16)"
    )
    parser.add_argument("--rows", type=int, default=10_000, help="rows in the table read from (default 10000)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(arguments(sys.argv[1:]))))
