"""The sequencer: the one writer of leaf indexes. It gives events that have committed and are still without a
place the next indexes, in the order it sees them, and adds their hashes to the tiles, all in one transaction.

Appenders take no log-wide lock: an event that commits after a batch was read (even one with a lower `seq`) is
still pending and simply goes into a later batch. A crash before the batch commits leaves every event pending.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Collection, Sequence

from sqlalchemy import Select, and_, bindparam, func, or_, text
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault.audit import tiles
from vault.audit.models import AuditEvent, AuditTile, AuditTileRoots

log = logging.getLogger("vault.audit.sequencer")

BATCH = 4096
_PG_SEQUENCER_LOCK = 0x7661756C7453  # a second sequencer (a leader that lost its lease) waits, never interleaves
_UPSERT_TILE = text(
    "INSERT INTO audit_tiles (level, idx, hashes) VALUES (:level, :idx, :hashes) "
    "ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes"
)
_INSERT_ROOTS = text(
    "INSERT INTO audit_tile_roots (level, idx, roots) VALUES (:level, :idx, :roots) "
    "ON CONFLICT (level, idx) DO UPDATE SET roots = excluded.roots"
)
_TILES = AuditTile.__table__  # type: ignore[attr-defined]
_ROOTS = AuditTileRoots.__table__  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=64)
def _select_tiles(count: int) -> Select[int, int, bytes, bytes | None]:
    """Tiles and their stored subtree roots by `count` exact keys (:l0, :i0, ...): SQLite searches the primary key
    for each term of the OR (a row-value IN would scan the table), PostgreSQL likewise, and each tile's roots by
    theirs; one statement per count, compiled once."""
    keys = (and_(_TILES.c.level == bindparam(f"l{n}"), _TILES.c.idx == bindparam(f"i{n}")) for n in range(count))
    joined = _TILES.outerjoin(_ROOTS, and_(_ROOTS.c.level == _TILES.c.level, _ROOTS.c.idx == _TILES.c.idx))
    return (
        sa_select(_TILES.c.level, _TILES.c.idx, _TILES.c.hashes, _ROOTS.c.roots).select_from(joined).where(or_(*keys))
    )


_SET_INDEX_SQLITE = "UPDATE audit_events SET leaf_index = ? WHERE seq = ? AND leaf_index IS NULL"
_SET_INDEXES_PG = text(
    "UPDATE audit_events AS e SET leaf_index = v.i FROM unnest(CAST(:i AS bigint[]), CAST(:s AS bigint[])) AS v(i, s) "
    "WHERE e.seq = v.s AND e.leaf_index IS NULL"
)


PAUSE_VARIABLE = "BENCH_SEQUENCER_PAUSE"


def fault_point(stage: str, count: int) -> None:
    """For bench/faults.py only: with BENCH_SEQUENCER_PAUSE=<seconds>:<step or *>:<file>, note (pid, step, batch
    size) in the file and wait there (at every step, or the one named), so its kill -9 lands inside an integration.
    Unset, as in service: nothing happens."""
    spec = os.environ.get(PAUSE_VARIABLE)
    if not spec or not count:
        return
    seconds, wanted, path = spec.split(":", 2)
    with open(path, "a") as marks:
        marks.write(f"{os.getpid()} {stage} {count}\n")
    if wanted in ("*", stage):
        time.sleep(float(seconds))


def tile_getter(session: Session) -> tiles.TileGetter:
    def get(level: int, idx: int) -> bytes:
        value = session.execute(
            text("SELECT hashes FROM audit_tiles WHERE level = :l AND idx = :i"), {"l": level, "i": idx}
        ).scalar()
        return bytes(value) if value is not None else b""

    return get


def tiles_getter(session: Session) -> tiles.TilesGetter:
    """Many tiles in one query: a proof's few tiles (one per level and side) with their subtree roots in one round
    trip."""

    def fetch(keys: Collection[tuple[int, int]]) -> dict[tuple[int, int], tuple[bytes, bytes]]:
        params = {f"{name}{n}": value for n, key in enumerate(keys) for name, value in zip("li", key, strict=True)}
        rows = session.connection().execute(_select_tiles(len(keys)), params)
        return {(int(level), int(idx)): (bytes(value), bytes(roots or b"")) for level, idx, value, roots in rows}

    return fetch


def tree_size(session: Session) -> int:
    """The number of integrated events (leaf indexes are 0..size-1 without gaps)."""
    last = session.scalar(select(func.max(AuditEvent.leaf_index)))
    return 0 if last is None else int(last) + 1


def pending_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(col(AuditEvent.leaf_index).is_(None))) or 0)


def _assign(session: Session, size: int, seqs: Sequence[int]) -> None:
    """Set the batch's indexes in one round trip (PostgreSQL: one statement over arrays)."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        result = conn.execute(_SET_INDEXES_PG, {"i": list(range(size, size + len(seqs))), "s": list(seqs)})
        done = result.rowcount
    else:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany(_SET_INDEX_SQLITE, [(size + n, s) for n, s in enumerate(seqs)])
        done = cursor.rowcount
    if done not in (-1, len(seqs)):  # another writer of indexes: give the whole batch back
        raise RuntimeError("leaf indexes changed under the sequencer")


def _write_tiles(session: Session, changed: dict[tuple[int, int], bytes]) -> None:
    """The changed tiles, and the subtree roots of those that became full (a full tile never changes again)."""
    session.execute(_UPSERT_TILE, [{"level": k[0], "idx": k[1], "hashes": v} for k, v in sorted(changed.items())])
    full = [
        {"level": k[0], "idx": k[1], "roots": tiles.subtree_roots(v)}
        for k, v in sorted(changed.items())
        if len(v) == tiles.FULL_TILE
    ]
    if full:
        session.execute(_INSERT_ROOTS, full)


def integrate(session: Session, limit: int = BATCH) -> int:
    """Give up to `limit` pending events their indexes and put them in the tree; returns how many."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SEQUENCER_LOCK})
    pending = (
        select(AuditEvent.seq, AuditEvent.leaf_hash)
        .where(col(AuditEvent.leaf_index).is_(None))
        .order_by(col(AuditEvent.seq))
        .limit(limit)
    )
    rows = session.connection().execute(pending).all()  # Core rows, not the ORM's: no entity loading per event
    if not rows:
        return 0
    fault_point("read", len(rows))
    size = tree_size(session)
    changed = tiles.append(tile_getter(session), size, [bytes(h) for _, h in rows])
    _assign(session, size, [int(s) for s, _ in rows])
    fault_point("indexed", len(rows))
    _write_tiles(session, changed)
    fault_point("tiled", len(rows))
    return len(rows)


async def loop(step: Callable[[], object], interval: float, *, leading: Callable[[], bool] = lambda: True) -> None:
    """Run `step` (integrate, sign, publish) every `interval` seconds while this process leads."""
    from starlette.concurrency import run_in_threadpool

    while True:
        try:
            if leading():
                await run_in_threadpool(step)
        except Exception:  # keep serving: the events stay pending and the next round takes them
            log.exception("sequencing round failed")
        await asyncio.sleep(interval)
