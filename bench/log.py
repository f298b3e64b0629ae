"""The access log at scale: appends under 16 concurrent writers, the sequencer's integration throughput, and, for
logs of 10^4, 10^6 (and 10^7 with --sizes) events built directly at the storage layer, the time to sign a
checkpoint, inclusion and consistency proof time and size, and a full `verify`'s time and peak memory.

    .venv/bin/python bench/log.py                                 # SQLite, 10^4 and 10^6: some minutes
    .venv/bin/python bench/log.py --sizes 10000 1000000 10000000  # 10^7 takes long to build: run it when idle
    VAULT_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/log.py

PostgreSQL runs only when VAULT_BENCH_POSTGRES_URL names an account that may CREATE DATABASE; the benchmark makes
its own databases and drops them. `verify` runs in a child process, so its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vault import group_commit  # noqa: E402
from vault.audit import merkle, publishing, tiles  # noqa: E402
from vault.audit.events import Action, Event  # noqa: E402
from vault.audit.models import AuditEvent  # noqa: E402
from vault.config import load_settings  # noqa: E402
from vault.crypto import jws  # noqa: E402
from vault.db import make_engine, upgrade  # noqa: E402
from vault.wiring import Vault, build_vault  # noqa: E402

WRITERS = 16
PER_WRITER = 200  # 3,200 appends: long enough for a steady rate
INTEGRATE = 20_000
BUILD_CHUNK = 50_000


def event(i: int) -> Event:
    return Event(
        Action.FIELDS_RELEASED,
        f"agency:bench-{i % 7}",
        owner_id=uuid.uuid4(),
        licence_type="resident-id-card",
        fields=("resident-id-card/name", "resident-id-card/birth_date"),
        purpose="housing subsidy",
        service_item="housing-subsidy",
        grant_id=uuid.uuid4(),
        decision="allow",
        reason="policy:consented-read",
        request_id=uuid.uuid4().hex,
    )


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'vault.db'}"
        return
    admin_url = os.environ["VAULT_BENCH_POSTGRES_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"vault_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def open_vault(url: str, workdir: Path) -> Vault:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    settings = load_settings({"VAULT_DATA_DIR": str(workdir), "VAULT_DATABASE_URL": url, "VAULT_LOG_LEVEL": "WARNING"})
    return build_vault(settings)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def appends(vault: Vault, grouped: bool = False) -> str:
    """16 threads append one event each time, released together: each in a unit of work of its own, or (`grouped`)
    handed to the group-commit writer as a read's access event is, which inserts a batch's events together."""
    latencies: list[float] = []
    guard = threading.Lock()
    barrier = threading.Barrier(WRITERS)

    def one(number: int) -> None:
        if grouped:
            vault.db.group.run(
                lambda session: group_commit.later(session, "audit", event(number), vault.audit.append_many)
            )
            return
        with vault.db.session() as session:
            vault.audit.append(session, event(number))

    def writer(w: int) -> None:
        barrier.wait()
        for i in range(PER_WRITER):
            start = time.perf_counter()
            one(w * PER_WRITER + i)
            with guard:
                latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    how = "through group commit" if grouped else "a transaction each"
    return (
        f"append, {WRITERS} writers x {PER_WRITER}, {how}: p50 {ms(pct(latencies, 0.5))}, "
        f"p99 {ms(pct(latencies, 0.99))}, {len(latencies) / wall:.0f} appends/s"
    )


def integration(vault: Vault) -> str:
    """Pending events integrated by the sequencer: batches, tiles, a signed checkpoint each, files published."""
    for first in range(0, INTEGRATE, 1000):
        with vault.db.session() as session:
            for i in range(first, first + 1000):
                vault.audit.append(session, event(i))
    start, cpu = time.perf_counter(), time.process_time()
    count = publishing.sequence_step(vault.audit, vault.db)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return (
        f"integration of {count} pending events: {wall:.2f} s, {count / wall:.0f} events/s "
        f"({cpu:.2f} s of this process's CPU: {count / cpu:.0f} events per CPU second)"
    )


def build(vault: Vault, size: int) -> None:
    """A log of `size` integrated events written straight into the tables, tiles included, then one checkpoint.

    The entries and leaf hashes are the sequencer's (same event bodies, canonical JSON, RFC 9162 leaf hashes) and the
    tiles come from the same `tiles.append`, so the result is a real tree that `verify` checks leaf by leaf. To build
    10^7 events in minutes: event ids count up from a random base (their unique index grows at its right edge, as
    with time-ordered ids), owners come from a pool of 1,000, and on SQLite the build's own connection does not
    fsync each chunk (synchronous = OFF; the benchmark's database is thrown away).
    """
    engine = vault.db.engine
    sqlite = engine.dialect.name == "sqlite"
    edge: dict[tuple[int, int], bytes] = {}
    insert = "INSERT INTO audit_events (leaf_index, id, created_at, owner_id, actor, action, entry, leaf_hash) "
    copy_in = "COPY audit_events (leaf_index, id, created_at, owner_id, actor, action, entry, leaf_hash) FROM STDIN"
    base = uuid.uuid4().int & ~((1 << 64) - 1)
    owners = [uuid.uuid4() for _ in range(1000)]
    grants = [str(uuid.uuid4()) for _ in range(1000)]
    now = datetime.now(UTC)
    stored = {c.name: c.type.bind_processor(engine.dialect) or (lambda v: v) for c in AuditEvent.__table__.columns}
    stamp = now.replace(tzinfo=None).isoformat(sep=" ") if sqlite else now
    template = event(0).body(event_id=uuid.UUID(int=base), at=now)
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        indexes: list[str] = []
        if sqlite:  # load, then index: the same indexes, built once by sorting instead of row by row
            raw.execute("PRAGMA synchronous = OFF")
            raw.execute("PRAGMA cache_size = -262144")
            found = raw.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events' "
                "AND sql IS NOT NULL"
            ).fetchall()
            for name, sql in found:
                raw.execute(f'DROP INDEX "{name}"')
                indexes.append(sql)
        for first in range(0, size, BUILD_CHUNK):
            rows, hashes = [], []
            for i in range(first, min(size, first + BUILD_CHUNK)):
                event_id, owner = uuid.UUID(int=base | i), owners[i % len(owners)]
                body = {  # what Event.body gives for event(i), fields set directly: the build's hot loop
                    **template,
                    "id": str(event_id),
                    "actor": f"agency:bench-{i % 7}",
                    "owner": str(owner),
                    "grant": grants[i % len(grants)],
                    "request_id": f"{i:032x}",
                }
                entry = jws.canonical_json(body)
                hashed = merkle.leaf_hash(entry)
                hashes.append(hashed)
                rows.append(
                    (
                        i,
                        stored["id"](event_id),
                        stamp,
                        stored["owner_id"](owner),
                        body["actor"],
                        body["action"],
                        entry,
                        hashed,
                    )
                )
            changed = tiles.append(lambda level, idx, known=edge: known.get((level, idx), b""), first, hashes)
            tile_rows = [(k[0], k[1], v) for k, v in sorted(changed.items())]
            root_rows = [
                (level, idx, tiles.subtree_roots(v)) for level, idx, v in tile_rows if len(v) == tiles.FULL_TILE
            ]
            cursor = raw.cursor()
            if sqlite:
                cursor.executemany(insert + "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                cursor.executemany(
                    "INSERT INTO audit_tiles (level, idx, hashes) VALUES (?, ?, ?) "
                    "ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes",
                    tile_rows,
                )
                cursor.executemany("INSERT INTO audit_tile_roots (level, idx, roots) VALUES (?, ?, ?)", root_rows)
            else:
                with cursor.copy(copy_in) as copy:
                    for row in rows:
                        copy.write_row(row)
                cursor.executemany(
                    "INSERT INTO audit_tiles (level, idx, hashes) VALUES (%s, %s, %s) "
                    "ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes",
                    tile_rows,
                )
                cursor.executemany("INSERT INTO audit_tile_roots (level, idx, roots) VALUES (%s, %s, %s)", root_rows)
            raw.commit()
            edge = {k: v for k, v in {**edge, **changed}.items() if len(v) < tiles.FULL_TILE}
        for sql in indexes:
            raw.execute(sql)
        raw.commit()
    with vault.db.session() as session:
        vault.audit.checkpoint(session)


class Timer:
    """Wall-clock and this process's CPU time of each run (on a shared machine the CPU time is the steadier one)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    @contextmanager
    def run(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)

    def __str__(self) -> str:
        return f"median {ms(statistics.median(self.wall))} ({ms(statistics.median(self.cpu))} CPU)"


def load_average() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def at_size(vault: Vault, size: int, url: str, workdir: Path, *, verify: bool = True, runs: int = 30) -> list[str]:
    """Signing and proofs, timed one by one. Before the proofs, 10 x runs untimed proofs of other events, as in a
    server that has been proving a while: the tiles above level 0 are then hashed up in this process. Three
    figures per proof: "warm" as it then comes (in a log of 10^4 every level-0 tile is still cached as well, in a
    log of 10^7 the event's level-0 tile almost never is), "bottom tile uncached" with the full level-0 tiles
    forgotten before each proof (the same work at every size: the like-for-like comparison), and "cold" with
    every hashed-up tile forgotten."""
    lines = []
    signing = Timer()
    for i in range(runs):  # one more event each time: integrate it, then time the signature alone
        with vault.db.session() as session:
            vault.audit.append(session, event(i))
        with vault.db.session() as session:
            vault.audit.integrate(session)
            with signing.run():
                vault.audit.checkpoint(session)
    lines.append(f"  sign a checkpoint: {signing}  [{load_average()}]")
    with vault.db.session() as session:
        n = vault.audit.size(session)
        leaves = random.sample(range(n), runs * 13)
        found = session.execute(
            text("SELECT leaf_index, id FROM audit_events WHERE leaf_index IN :idx").bindparams(
                bindparam("idx", expanding=True)
            ),
            {"idx": leaves},
        ).all()
        by_leaf = {leaf: value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)) for leaf, value in found}
        ids = [by_leaf[leaf] for leaf in leaves]  # in random order: the warm-up's events lie anywhere in the log
        for event_id in ids[3 * runs :]:
            vault.audit.prove(session, event_id)
        # each series proves events of its own, read for the first time (as the database's pages are for a server)
        warm, bottom, cold, sizes = Timer(), Timer(), Timer(), []
        for event_id in ids[:runs]:
            with warm.run():
                proof = vault.audit.prove(session, event_id)
            sizes.append(len(proof.path) * 32)
        for event_id in ids[runs : 2 * runs]:
            tiles.clear_cache(bottom_only=True)
            with bottom.run():
                vault.audit.prove(session, event_id)
        for event_id in ids[2 * runs : 3 * runs]:
            tiles.clear_cache()
            with cold.run():
                vault.audit.prove(session, event_id)
        lines.append(f"  inclusion proof, warm: {warm}  [{load_average()}]")
        lines.append(f"  inclusion proof, bottom tile uncached: {bottom}  [{load_average()}]")
        lines.append(
            f"  inclusion proof, cold: {cold}, {statistics.median(sizes):.0f} bytes of hashes  [{load_average()}]"
        )
        olds = random.sample(range(1, n), runs * 13)
        for old in olds[3 * runs :]:
            vault.audit.tree(session, n).consistency_proof(old, n)
        warm, bottom, cold, sizes = Timer(), Timer(), Timer(), []
        for old in olds[:runs]:
            with warm.run():
                proof_hashes = vault.audit.tree(session, n).consistency_proof(old, n)
            sizes.append(len(proof_hashes) * 32)
        for old in olds[runs : 2 * runs]:
            tiles.clear_cache(bottom_only=True)
            with bottom.run():
                vault.audit.tree(session, n).consistency_proof(old, n)
        for old in olds[2 * runs : 3 * runs]:
            tiles.clear_cache()
            with cold.run():
                vault.audit.tree(session, n).consistency_proof(old, n)
        lines.append(f"  consistency proof, warm: {warm}  [{load_average()}]")
        lines.append(f"  consistency proof, bottom tile uncached: {bottom}  [{load_average()}]")
        lines.append(f"  consistency proof, cold: {cold}, {statistics.median(sizes):.0f} bytes  [{load_average()}]")
    if not verify:
        return lines
    child = subprocess.run(
        [sys.executable, __file__, "--verify", url, str(workdir)], capture_output=True, text=True, check=True
    )
    result = json.loads(child.stdout.strip().splitlines()[-1])
    lines.append(
        f"  verify --full: {result['seconds']:.1f} s ({result['size'] / result['seconds']:.0f} events/s), "
        f"ok={result['ok']}, peak RSS {result['rss_mb']:.0f} MB (interpreter and imports: {result['base_mb']:.0f} MB)"
    )
    return lines


def read_through(path: str) -> None:
    """Read a SQLite file once, so that the OS holds its pages as it would a serving database's (a log of 10^7 just
    built was half in memory: proofs of the first events then waited for the disk)."""
    with open(path, "rb") as data:
        while data.read(1 << 24):
            pass


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started (VmHWM; ru_maxrss would count the parent's at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def verify_child(url: str, workdir: str) -> None:
    base = peak_rss_mb()
    settings = load_settings({"VAULT_DATA_DIR": workdir, "VAULT_DATABASE_URL": url, "VAULT_LOG_LEVEL": "WARNING"})
    vault = build_vault(settings)
    start = time.perf_counter()
    report = vault.audit.verify(vault.db.engine, full=True)
    seconds = time.perf_counter() - start
    rss = peak_rss_mb()
    print(json.dumps({"seconds": seconds, "size": report.size, "ok": report.ok, "rss_mb": rss, "base_mb": base}))


def run(backend: str, sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="vault-bench-log-") as tmp:
        workdir = Path(tmp) / "live"
        with database(backend, workdir) as url:
            vault = open_vault(url, workdir)
            print(f"{backend}: {appends(vault)}", flush=True)
            print(f"{backend}: {appends(vault, grouped=True)}", flush=True)
            publishing.sequence_step(vault.audit, vault.db)
            print(f"{backend}: {integration(vault)}", flush=True)
            vault.close()
        for size in sizes:
            workdir = Path(tmp) / f"n{size}"
            with database(backend, workdir) as url:
                vault = open_vault(url, workdir)
                start = time.perf_counter()
                build(vault, size)
                print(f"{backend}: {size:,} events (built directly in {time.perf_counter() - start:.0f} s)", flush=True)
                for line in at_size(vault, size, url, workdir):
                    print(f"{backend}:{line}", flush=True)
                print(f"{backend}:  {load_average()}", flush=True)
                vault.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 1_000_000])
    parser.add_argument("--backends", nargs="*", default=["sqlite", "postgres"])
    parser.add_argument("--verify", nargs=2, metavar=("URL", "DATA_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=2, metavar=("URL", "DATA_DIR"), help="sign and prove on an existing log")
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each measurement (--measure)")
    parser.add_argument("--keep", metavar="DIR", help="build SQLite logs of --sizes into DIR/n<size> and keep them")
    args = parser.parse_args()
    if args.keep:
        for size in args.sizes:
            workdir = Path(args.keep) / f"n{size}"
            workdir.mkdir(parents=True)
            url = f"sqlite:///{workdir / 'vault.db'}"
            vault = open_vault(url, workdir)
            start = time.perf_counter()
            build(vault, size)
            vault.close()
            seconds = time.perf_counter() - start
            print(f"{size:,} events built in {seconds:.0f} s: --measure {url} {workdir}", flush=True)
        return 0
    if args.verify:
        verify_child(*args.verify)
        return 0
    if args.measure:
        if args.measure[0].startswith("sqlite:"):
            read_through(make_url(args.measure[0]).database or "")
        vault = open_vault(args.measure[0], Path(args.measure[1]))
        with vault.db.session() as session:
            size = vault.audit.size(session)
        for line in at_size(vault, size, args.measure[0], Path(args.measure[1]), verify=False, runs=args.runs):
            print(f"{size:,} events:{line}", flush=True)
        print(load_average())
        vault.close()
        return 0
    load = os.getloadavg()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {os.cpu_count()} CPUs ({platform.machine()}), "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    for backend in args.backends:
        if backend == "postgres" and not os.environ.get("VAULT_BENCH_POSTGRES_URL"):
            print("postgres: skipped (VAULT_BENCH_POSTGRES_URL is not set)")
            continue
        run(backend, args.sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
