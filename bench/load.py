"""A realistic mix at fixed arrival rates over HTTP, against a real server, for a set time; prints what it measured.

    python bench/load.py [--database sqlite|postgresql] [--workers N] [--minutes 2] [--warmup 20] [--scale 1.0]
                         [--verify-storm] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

Open loop: each kind of request arrives at its own rate (Poisson arrivals), whether or not earlier ones have been
answered, so a slow server shows up as latency and errors rather than as a politely slower client. The kinds:
citizen pages (signed in), redirect consent flows (PAR, the consent page, approval, code redemption), agency reads
under repeated-use grants, issuer mutations (issue, suspend, reinstate), presentation verification (10 per call)
and /readyz. With --verify-storm, six clients also send 1,000-presentation verifyLicences calls back to back for
the whole measured period, and /readyz is probed ten times a second: its p99 is printed on its own line
(`--scale 0 --verify-storm`: the storm and the probe alone).

Printed: throughput; p50/p95/p99 per kind; responses by status; server RSS per worker and in sum at start, after
warm-up and at the end; database and table growth; and whether the access log holds exactly one fields.released
event for each agency read that returned values. Loopback only; every loop is bounded by the deadline.
SQLite runs one worker, PostgreSQL two (a throw-away database), unless --workers says otherwise.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2 as httpx
from sqlalchemy import text

from bench import traffic
from bench.processes import (
    DEFAULT_POSTGRES,
    Server,
    free_port,
    server_env,
    throwaway_database,
    vault_settings_env,
)
from vault.audit.events import Action
from vault.config import load_settings
from vault.db import make_engine, upgrade
from vault.wiring import Vault, build_vault

PAGES = ("/", "/licences", "/grants", "/activity", "/inbox")
RATES = {  # arrivals per second at --scale 1
    "citizen page": 4.0,
    "consent flow": 0.5,
    "agency read": 3.0,
    "issuer mutation": 0.5,
    "verify 10": 1.0,
    "readyz": 2.0,
}
STORM_CLIENTS, STORM_SIZE = 6, 1_000
MAX_IN_FLIGHT = 48  # per kind: beyond it an arrival is counted as shed by the client, not sent


@dataclass
class Mix:
    """The shared state of one run: who is signed in, which grants an agency holds, what came back."""

    base: str
    population: traffic.Population
    stats: traffic.Stats
    citizens: dict[str, traffic.Client] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)  # access tokens under repeated-use grants
    licences: list[tuple[str, str]] = field(default_factory=list)  # (licence id, state) issued here
    lock: threading.Lock = field(default_factory=threading.Lock)
    reads_with_data: int = 0
    tokens: dict[str, str] = field(default_factory=dict)
    issued: dict[str, float] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def client(self) -> traffic.Client:
        return traffic.Client(self.base, self.stats)

    def citizen(self) -> tuple[str, traffic.Client]:
        login = self.rng.choice(self.population.citizens)
        return login, self.citizens[login]


def _consent_flow(mix: Mix, http: traffic.Client, item: str = traffic.REPEATED_ITEM) -> str:
    _, citizen = mix.citizen()
    client_id = traffic.ITEM_AGENCY[item]
    request_id, verifier = http.par(client_id, item)
    approved = http.expect(citizen.approve(request_id), 200)
    code = traffic.code_of(traffic.returning_to(approved))
    if code is None:
        raise traffic.Unexpected("approval without a code")
    token = str(http.expect(http.redeem(client_id, code, verifier), 200).json()["access_token"])
    if item == traffic.REPEATED_ITEM:
        with mix.lock:
            mix.held.append(token)
    return token


def _read(mix: Mix, http: traffic.Client) -> None:
    with mix.lock:
        token = mix.rng.choice(mix.held)
    response, released = http.read(token)
    if response.status_code == 401:  # access tokens live 10 minutes: read with the newer ones consent flows add
        with mix.lock, suppress(ValueError):
            mix.held.remove(token)
    if released:
        with mix.lock:
            mix.reads_with_data += 1


def _issue(mix: Mix, http: traffic.Client) -> None:
    token = _client_token(mix, http, "issuer")
    with mix.lock:
        pick = mix.rng.randrange(len(mix.licences)) if mix.licences and mix.rng.random() < 0.6 else None
        chosen = mix.licences.pop(pick) if pick is not None else None
    if chosen is None:
        login = mix.rng.choice(mix.population.citizens)
        response = http.issue(token, login, mix.population.names[login])
        result = (response.json().get("data") or {}).get("issueLicence") or {}
    else:
        response = http.change(token, chosen[0], suspend=chosen[1] == "ACTIVE")
        data = response.json().get("data") or {}
        result = data.get("suspendLicence") or data.get("reinstateLicence") or {}
    if result.get("__typename") == "LicenceChanged":
        with mix.lock:
            mix.licences.append((result["licence"]["id"], result["licence"]["state"]))


def _verify(mix: Mix, http: traffic.Client, count: int, kind: str) -> None:
    presented = mix.population.presentations
    batch = [presented[i % len(presented)] for i in range(count)]
    response = http.graphql(kind, _client_token(mix, http, "verifier"), traffic.VERIFY, {"presentations": batch})
    if response.status_code == 200 and not (response.json().get("data") or {}).get("verifyLicences"):
        raise traffic.Unexpected("verifyLicences answered without results")


CLIENTS = {"issuer": (traffic.ISSUER, "licences:issue"), "verifier": (traffic.HALL, "licences:verify")}


def _client_token(mix: Mix, http: traffic.Client, name: str) -> str:
    """A client-credentials token, renewed every 5 minutes (they live 10)."""
    with mix.lock:
        token, issued = mix.tokens.get(name, ""), mix.issued.get(name, 0.0)
    if not token or time.monotonic() - issued > 300:
        token = http.client_token(*CLIENTS[name])
        with mix.lock:
            mix.tokens[name], mix.issued[name] = token, time.monotonic()
    return token


def _page(mix: Mix, http: traffic.Client) -> None:
    _, citizen = mix.citizen()
    citizen.request("citizen page", "GET", mix.rng.choice(PAGES))


def _readyz(mix: Mix, http: traffic.Client, kind: str = "readyz") -> None:
    http.request(kind, "GET", "/readyz")


TASKS: dict[str, Callable[[Mix, traffic.Client], Any]] = {
    "citizen page": _page,
    "consent flow": _consent_flow,
    "agency read": _read,
    "issuer mutation": _issue,
    "verify 10": lambda mix, http: _verify(mix, http, 10, "verify 10"),
    "readyz": _readyz,
}


def _arrivals(
    kind: str, rate: float, mix: Mix, pool: ThreadPoolExecutor, deadline: float, late: dict[str, int]
) -> None:
    """Submit `kind` at `rate` per second until the deadline, never waiting for answers (open loop)."""
    rng = random.Random(hash(kind))
    in_flight = [0]
    lock = threading.Lock()
    local = threading.local()

    def run(scheduled: float) -> None:
        if time.monotonic() - scheduled > 0.1:
            with lock:  # the client itself was behind: say so rather than hide it
                late[kind] = late.get(kind, 0) + 1
        if not hasattr(local, "http"):
            local.http = mix.client()
        try:
            TASKS[kind](mix, local.http)
        except (httpx.TransportError, traffic.Unexpected, KeyError, ValueError, IndexError):
            pass  # counted by status (or as transport) where it happened
        finally:
            with lock:
                in_flight[0] -= 1

    at = time.monotonic()
    while True:
        at += rng.expovariate(rate)
        if at >= deadline:
            return
        time.sleep(max(0.0, at - time.monotonic()))
        with lock:
            if in_flight[0] >= MAX_IN_FLIGHT:
                mix.stats.record(kind, "shed by client", None)
                continue
            in_flight[0] += 1
        pool.submit(run, at)


def _storm(mix: Mix, deadline: float) -> None:
    """Six 1,000-presentation verifications back to back, and /readyz ten times a second, until the deadline."""

    def verifier() -> None:
        http = mix.client()
        http.http.timeout = httpx.Timeout(300)
        while time.monotonic() < deadline:
            try:
                _verify(mix, http, STORM_SIZE, f"verify {STORM_SIZE} (storm)")
            except (httpx.TransportError, traffic.Unexpected):
                time.sleep(0.5)
        http.close()

    def probe() -> None:
        http = mix.client()
        while time.monotonic() < deadline:
            started = time.monotonic()
            with suppress(httpx.TransportError):
                _readyz(mix, http, "readyz during storm")
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
        http.close()

    threads = [threading.Thread(target=verifier) for _ in range(STORM_CLIENTS)] + [threading.Thread(target=probe)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _prepare(mix: Mix, grants: int) -> None:
    """Sign every citizen in (one at a time: sign-in throttling counts parallel tries), give the agencies grants."""
    for login in mix.population.citizens:
        client = mix.client()
        client.sign_in(login)
        mix.citizens[login] = client
    http = mix.client()
    for name in CLIENTS:
        _client_token(mix, http, name)
    for _ in range(grants):
        _consent_flow(mix, http)
    http.close()


def _drive(mix: Mix, seconds: float, scale: float, storm: bool, late: dict[str, int]) -> None:
    deadline = time.monotonic() + seconds
    with ThreadPoolExecutor(max_workers=64) as pool:
        threads = [
            threading.Thread(target=_arrivals, args=(kind, rate * scale, mix, pool, deadline, late))
            for kind, rate in RATES.items()
            if rate * scale > 0
        ]
        if storm:
            threads.append(threading.Thread(target=_storm, args=(mix, deadline)))
        if not threads:  # --scale 0 without the storm: the warm-up is only a pause
            time.sleep(seconds)
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def _scalar(vault: Vault, sql: str, **params: Any) -> int:
    """One number, read without taking SQLite's write lock (which a busy server may hold for a while)."""
    engine = vault.db.engine
    if engine.dialect.name == "sqlite":
        with closing(sqlite3.connect(f"file:{engine.url.database}?mode=ro", uri=True, timeout=60)) as conn:
            return int(conn.execute(sql.replace(":t", "?"), tuple(params.values())).fetchone()[0] or 0)
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar() or 0)


def _released(vault: Vault) -> int:
    return _scalar(vault, "SELECT count(*) FROM audit_events WHERE action = :t", t=Action.FIELDS_RELEASED.value)


TABLES = ("audit_events", "tokens", "grants", "consent_requests", "licences", "licence_versions", "web_sessions")


def _storage(vault: Vault) -> dict[str, int]:
    """Bytes on disk (SQLite: database and WAL files; PostgreSQL: the database and each table) and row counts."""
    found = {f"rows {table}": _scalar(vault, f"SELECT count(*) FROM {table}") for table in TABLES}  # noqa: S608 -- our own table names
    engine = vault.db.engine
    if engine.dialect.name == "postgresql":
        found["bytes database"] = _scalar(vault, "SELECT pg_database_size(current_database())")
        for table in TABLES:
            found[f"bytes {table}"] = _scalar(vault, "SELECT pg_total_relation_size(:t)", t=table)
    elif engine.url.database:
        path = Path(engine.url.database)
        for suffix in ("", "-wal"):
            file = path.with_name(path.name + suffix)
            found[f"bytes {file.name}"] = file.stat().st_size if file.exists() else 0
    return found


def _percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"p50 {at(0.5):8.1f}  p95 {at(0.95):8.1f}  p99 {at(0.99):8.1f} ms"


def _rss(server: Server) -> str:
    sizes = server.rss()
    per = ", ".join(f"{pid}: {size / 2**20:.1f}" for pid, size in sorted(sizes.items()))
    return f"{sum(sizes.values()) / 2**20:.1f} MiB in sum ({per})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workers", type=int, help="default: 1 on SQLite, 2 on PostgreSQL")
    parser.add_argument("--minutes", type=float, default=2.0, help="measured time, after the warm-up")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds of the same mix before measuring")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every arrival rate (0: none, storm only)")
    parser.add_argument("--verify-storm", action="store_true", help="six 1,000-presentation verifications throughout")
    parser.add_argument("--citizens", type=int, default=20)
    parser.add_argument("--postgres-url", default=os.environ.get("VAULT_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES)
    parser.add_argument("--log", type=Path, help="append the server's output here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop every worker on the way out, not only on ^C
    workers = args.workers or (2 if args.database == "postgresql" else 1)

    with (
        tempfile.TemporaryDirectory(prefix="vault-load-") as tmp,
        throwaway_database(args.database, args.postgres_url) as url,
    ):
        env = server_env(Path(tmp) / "var", free_port(), url)
        settings = load_settings(vault_settings_env(env))
        engine = make_engine(settings.database_url)
        upgrade(engine)
        engine.dispose()
        vault = build_vault(settings)
        server = Server(env, workers, log=args.log or Path(tmp) / "server.log", start="serve")
        try:
            population = traffic.populate(vault, citizens=args.citizens, erasable=0, presentations=50)
            server.start()
            print(f"server: {server.describe()} on {args.database}", flush=True)
            rss_start = _rss(server)
            mix = Mix(server.base, population, traffic.Stats())
            released_before = _released(vault)
            _prepare(mix, grants=len(population.citizens))
            late: dict[str, int] = {}
            _drive(mix, args.warmup, args.scale, False, late)
            rss_warm, storage_before = _rss(server), _storage(vault)
            measured = traffic.Stats()
            mix.stats = measured
            for client in mix.citizens.values():
                client.stats = measured
            started = time.monotonic()
            _drive(mix, args.minutes * 60, args.scale, args.verify_storm, late)
            elapsed = time.monotonic() - started
            time.sleep(1.0)  # the last answers in flight are counted on both sides
            rss_end, storage_after = _rss(server), _storage(vault)
            server.stop()
            released = _released(vault) - released_before
            ok = _report(
                args, workers, measured, elapsed, (rss_start, rss_warm, rss_end), storage_before, storage_after, late
            )
            reads = mix.reads_with_data
            verdict = "equal" if released == reads else "NOT EQUAL"
            print(f"\naccess events:      {released} fields.released for {reads} agency reads with values ({verdict})")
            return 0 if ok and released == mix.reads_with_data else 1
        finally:
            server.close()
            vault.close()


def _report(
    args: argparse.Namespace,
    workers: int,
    stats: traffic.Stats,
    elapsed: float,
    rss: tuple[str, str, str],
    before: dict[str, int],
    after: dict[str, int],
    late: dict[str, int],
) -> bool:
    total = sum(len(v) for v in stats.latencies.values())
    print(f"\ndatabase:           {args.database}, {workers} worker(s)")
    print(
        f"measured:           {elapsed:.0f} s after {args.warmup:.0f} s of warm-up, rates x{args.scale}"
        + (", with the verification storm" if args.verify_storm else "")
    )
    print(f"throughput:         {total / elapsed:.1f} requests/s ({total} requests)")
    print("\nper kind of request (latency of each HTTP request, client clock):")
    for kind in sorted(stats.latencies):
        answered = [s for s, n in stats.statuses[kind].items() for _ in range(n)]
        print(f"  {kind:<28} {len(answered):>7}  {_percentiles(stats.latencies[kind])}")
    print("\nresponses by status:")
    server_errors = 0
    for kind in sorted(stats.statuses):
        by = stats.statuses[kind]
        server_errors += sum(n for s, n in by.items() if s.startswith("5"))
        print(f"  {kind:<28} " + ", ".join(f"{s}: {n}" for s, n in sorted(by.items())))
    if late:
        print(
            "client behind schedule (started > 100 ms late): " + ", ".join(f"{k} {n}" for k, n in sorted(late.items()))
        )
    print(f"\n5xx responses:      {server_errors}")
    print(f"server RSS start:   {rss[0]}")
    print(f"after warm-up:      {rss[1]}")
    print(f"at end:             {rss[2]}")
    print("storage growth during the measured period:")
    for key in sorted(after):
        grown = after[key] - before.get(key, 0)
        print(f"  {key:<32} {before.get(key, 0):>14,} -> {after[key]:>14,}  (+{grown:,})")
    for kind in ("readyz", "readyz during storm"):
        if stats.latencies.get(kind):
            print(f"{kind + ':':<20}{_percentiles(stats.latencies[kind])}")
    return server_errors == 0


if __name__ == "__main__":
    sys.exit(main())
