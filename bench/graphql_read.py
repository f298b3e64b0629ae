"""The price of our guarantees: the agency read over GraphQL, against a bare Strawberry schema over the same data.

    .venv/bin/python bench/graphql_read.py [--owners 10000] [--seconds 20] [--clients 16] [--profile 300]

1. Builds a synthetic population in a fresh SQLite vault (WAL, synchronous=FULL): every owner a person with a
   resident ID card; up to 10,000 of them ("readers") also hold a driving licence and a vehicle licence. It is
   written in bulk with the vault's own primitives (per-owner keys, issuer-signed SD-JWTs, per-field encryption,
   blind indexes, status-list slots), without access events for its creation. The same data goes, as plaintext
   rows, into a second SQLite file for the baseline.
2. Starts each server as one uvicorn worker on a free loopback port, and drives the same read from --clients
   concurrent keep-alive connections for --seconds (after a warm-up): a police traffic unit, under the traffic
   accident mandate with a case reference, reads 5 fields from the 3 licences of a random reader.
   - Consent Vault: `uvicorn server:app`, exactly what `vault serve` runs (bearer token introspection, Cedar
     decisions, decryption of the released fields, presentations not asked for, one access event per read).
   - Baseline: a Strawberry schema over the plaintext rows, executed the same way (synchronously, one connection
     per request in Starlette's thread pool), with no authentication, policy, cryptography or audit.
3. Prints p50/p95/p99 latency, requests per second and errors of each, the ratio, and a profile of where the
   vault's time goes (in-process, the same read --profile times, self time grouped by component).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import pstats
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import strawberry
from strawberry.types import Info

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

READERS_MAX = 10_000
MANDATE = "traffic-accident-handling"
CLIENT = "bench-accident-unit"
FIELDS = ["id_number", "licence_number", "class", "plate_number", "vin"]  # 5 fields, each in one of the 3 types
TYPES = ["resident-id-card", "driving-licence", "vehicle-licence"]
QUERY = """query Read($owner: String!) {
  licences(owner: $owner, types: ["resident-id-card", "driving-licence", "vehicle-licence"]) {
    type state validUntil issuer { code }
    fields(names: ["id_number", "licence_number", "class", "plate_number", "vin"]) { name value masked }
  }
}"""


# the population


def values_for(i: int, identifier: str, type_code: str) -> dict[str, object]:
    name = f"演示{i}"
    if type_code == "resident-id-card":
        return {
            "name": name,
            "sex": "男" if i % 2 else "女",
            "ethnicity": "汉",
            "birth_date": "1980-01-01",
            "address": f"演示市示例路{i}号",
            "id_number": identifier,
            "issuing_authority": "演示市公安局",
            "valid_from": "2020-01-01",
            "valid_until": "2040-01-01",
            "photo": f"bench-photo:{i}",
        }
    if type_code == "driving-licence":
        return {
            "licence_number": identifier,
            "name": name,
            "sex": "男" if i % 2 else "女",
            "nationality": "中国",
            "address": f"演示市示例路{i}号",
            "birth_date": "1980-01-01",
            "first_issue_date": "2005-01-01",
            "class": "C1",
            "valid_from": "2021-01-01",
            "valid_until": "2031-01-01",
            "file_number": f"F{i:011d}",
            "issuing_authority": "演示市公安局交通管理局",
            "photo": f"bench-photo:{i}",
        }
    return {
        "plate_number": f"演A·{i:06d}",
        "vehicle_type": "K33",
        "owner_name": name,
        "address": f"演示市示例路{i}号",
        "use_character": "非营运",
        "brand_model": "演示牌DEMO7150",
        "vin": f"LBENCH{i:011d}",
        "engine_number": f"E{i:08d}",
        "registration_date": "2021-06-01",
        "issue_date": "2021-06-01",
        "file_number": f"V{i:09d}",
        "approved_passengers": 5,
    }


def end_of_day(day: date) -> int:
    """The `exp` LicenceService gives a licence valid until `day`: the end of that day, UTC."""
    return int((datetime.combine(day, datetime.min.time(), UTC) + timedelta(days=1)).timestamp())


@dataclass
class Builder:
    """Writes owners and licences in bulk, as OwnerService and LicenceService would write them one by one."""

    vault: Any
    plain: sqlite3.Connection
    slots: dict[str, int] = field(default_factory=dict)

    def batch(self, first: int, last: int, readers: int) -> list[str]:
        from sqlalchemy import insert

        from vault.crypto.blind_index import blind_index
        from vault.crypto.envelope import DataKey, FieldContext
        from vault.crypto.models import OwnerKey
        from vault.licences import sdjwt
        from vault.licences.models import Licence, LicenceField, LicenceVersion, StatusEntry
        from vault.licences.services import JWT_FIELD, LicenceService
        from vault.owners.identifiers import synthetic_resident_id
        from vault.owners.models import BlindIndex, Owner

        vault, now, iat, ctx = self.vault, datetime.now(UTC), int(time.time()), LicenceService._ctx
        models = (Owner, OwnerKey, BlindIndex, Licence, LicenceVersion, StatusEntry, LicenceField)
        rows: dict[Any, list[dict[str, Any]]] = {model: [] for model in models}
        plain: dict[str, list[tuple[str, ...]]] = {"licences": [], "fields": []}
        readers_here = []
        with vault.db.session() as session:
            index_key = vault.keys.index_key(session)
            signers = {code: vault.issuers.signer(session, code) for code in vault.issuers.codes()}
            for i in range(first, last):
                identifier = synthetic_resident_id(f"{110101 + i // 900:06d}", date(1980, 1, 1), i % 900)
                owner_id = uuid.uuid4()
                dek = DataKey.generate(owner_id)
                name_ct = dek.encrypt_text(f"演示{i}", FieldContext(owner_id, owner_id, "name"))
                id_ct = dek.encrypt_text(identifier, FieldContext(owner_id, owner_id, "identifier"))
                rows[Owner].append(
                    dict(id=owner_id, kind="person", created_at=now, name_ct=name_ct, identifier_ct=id_ct)
                )
                wrapped, kek = dek.wrap(vault.keyring), vault.keyring.primary_id
                rows[OwnerKey].append(
                    dict(owner_id=owner_id, dek_id=dek.dek_id, kek_id=kek, wrapped=wrapped, created_at=now)
                )
                digest = blind_index(index_key, "resident_id", identifier)
                rows[BlindIndex].append(
                    dict(id=uuid.uuid4(), owner_id=owner_id, kind="resident_id", digest=digest, record_id=None)
                )
                if i < readers:
                    readers_here.append(identifier)
                for type_code in TYPES if i < readers else TYPES[:1]:
                    licence_type = vault.catalogue.type(type_code)
                    checked = licence_type.validate_values(values_for(i, identifier, type_code))
                    issuer, licence_id, version_id = licence_type.issuer, uuid.uuid4(), uuid.uuid4()
                    slot = self.slots[issuer] = self.slots.get(issuer, -1) + 1  # in order: no fill-up retries
                    until = date.fromisoformat(str(checked["valid_until"])) if "valid_until" in checked else None
                    token = sdjwt.issue_sd_jwt(
                        issuer=vault.issuers.issuer_id(issuer),
                        kid=signers[issuer].kid,
                        key=signers[issuer].key,
                        vct=licence_type.vct,
                        fields=checked,
                        iat=iat,
                        exp=end_of_day(until) if until else None,
                        status=sdjwt.StatusRef(idx=slot, uri=vault.status_lists.uri(issuer)),
                    )
                    version = SimpleNamespace(id=version_id, version=1)  # what the service's associated data names
                    jwt_ct = dek.encrypt_text(sdjwt.split(token)[0], ctx(owner_id, version, JWT_FIELD))
                    rows[Licence].append(
                        dict(id=licence_id, owner_id=owner_id, type_code=type_code, issuer_code=issuer, state="active")
                        | dict(current_version=1, valid_until=until, created_at=now, updated_at=now)
                    )
                    digest = blind_index(index_key, f"licence:{type_code}", str(checked[licence_type.number_field]))
                    rows[BlindIndex].append(
                        dict(id=uuid.uuid4(), owner_id=owner_id, kind=f"licence:{type_code}", digest=digest)
                        | dict(record_id=licence_id)
                    )
                    rows[LicenceVersion].append(
                        dict(id=version_id, licence_id=licence_id, owner_id=owner_id, version=1, status_idx=slot)
                        | dict(kid=signers[issuer].kid, valid_until=until, issued_at=now, jwt_ct=jwt_ct)
                    )
                    rows[StatusEntry].append(
                        dict(issuer_code=issuer, idx=slot, version_id=version_id, status=0, updated_at=now)
                    )
                    for name, disclosure in sdjwt.disclosure_map(token).items():
                        sealed = dek.encrypt_text(disclosure, ctx(owner_id, version, name))
                        rows[LicenceField].append(
                            dict(id=uuid.uuid4(), version_id=version_id, owner_id=owner_id, name=name)
                            | dict(disclosure_ct=sealed)
                        )
                    plain["licences"].append((str(licence_id), identifier, type_code, issuer, "active", str(until)))
                    plain["fields"] += [(str(licence_id), k, str(v)) for k, v in checked.items()]
            for model in models:
                session.execute(insert(model), rows[model])
        for table, values in plain.items():
            marks = ", ".join("?" * len(values[0]))
            self.plain.executemany(f"INSERT INTO {table} VALUES ({marks})", values)  # noqa: S608 -- our own table names
        self.plain.commit()
        return readers_here


PLAIN_SCHEMA = """
CREATE TABLE licences (id TEXT PRIMARY KEY, owner TEXT NOT NULL, type TEXT NOT NULL, issuer TEXT NOT NULL,
                       state TEXT NOT NULL, valid_until TEXT);
CREATE INDEX licences_owner ON licences (owner, type);
CREATE TABLE fields (licence TEXT NOT NULL, name TEXT NOT NULL, value TEXT, PRIMARY KEY (licence, name));
"""


def build(data: Path, owners: int) -> tuple[list[str], float]:
    from vault.config import load_settings
    from vault.db import make_engine, upgrade
    from vault.oauth.adapter import unit_of_work
    from vault.wiring import build_vault

    settings = load_settings(env(data))
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    vault = build_vault(settings)
    plain = sqlite3.connect(data / "baseline.db")
    plain.executescript("PRAGMA journal_mode = WAL;" + PLAIN_SCHEMA)
    started = time.perf_counter()
    builder, readers = Builder(vault, plain), []
    step = 500
    for first in range(0, owners, step):
        readers += builder.batch(first, min(first + step, owners), min(owners, READERS_MAX))
        if first and first % 100_000 == 0:
            print(f"  {first:,} owners written", flush=True)
    with unit_of_work(vault.db) as session:
        vault.agencies.register(
            session,
            client_id=CLIENT,
            name_zh="演示市公安局交通管理局事故处理大队",
            name_en="Bench traffic accident unit",
            category="police",
            department="traffic-police",
            service_items=[],
            redirect_uris=[],
            grant_types=["client_credentials"],
            scopes=["licences:read"],
            auth_method="client_secret_basic",
            secret=f"bench-secret-{CLIENT}",
            actor="bench",
        )
    plain.close()
    vault.close()
    return readers, time.perf_counter() - started


# the servers


def env(data: Path, port: int = 8000) -> dict[str, str]:
    return {
        "VAULT_DATA_DIR": str(data),
        "VAULT_LOG_LEVEL": "WARNING",
        "VAULT_PORT": str(port),
        "VAULT_PUBLIC_URL": "http://127.0.0.1:8000",  # what the licences were issued under, whatever the port
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(command: list[str], environment: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env={**clean, **environment}, stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"server exited: see {log}") from None
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server did not start within a minute: see {log}")


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    sample: bytes = b""
    failures: list[str] = field(default_factory=list)

    def line(self, label: str) -> str:
        ordered = sorted(self.latencies) or [0.0]

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1e3

        rps = len(self.latencies) / self.seconds if self.seconds else 0.0
        return f"{label:<16}{rps:>9,.0f}{pct(0.5):>9.2f}{pct(0.95):>9.2f}{pct(0.99):>9.2f}{self.errors:>8}"

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def request_bytes(port: int, identifier: str, token: str | None) -> bytes:
    body = json.dumps({"query": QUERY, "variables": {"owner": identifier}}).encode()
    head = [
        f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if token:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def client(port: int, requests: list[bytes], until: float, measure_from: float, run: Run) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (started := time.perf_counter()) < until:
            writer.write(random.choice(requests))
            await writer.drain()
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            if started >= measure_from:
                run.latencies.append(time.perf_counter() - started)
                if b" 200 " not in status or b'"errors"' in body:
                    run.errors += 1
                    run.failures.append(status.decode().strip() + " " + body.decode(errors="replace")[-400:])
                else:
                    run.sample = run.sample or body
    finally:
        writer.close()


def drive(port: int, requests: list[bytes], clients: int, warmup: float, seconds: float) -> Run:
    run = Run(seconds=seconds)

    async def main() -> None:
        now = time.perf_counter()
        await asyncio.gather(
            *(client(port, requests, now + warmup + seconds, now + warmup, run) for _ in range(clients))
        )

    asyncio.run(main())
    return run


def token_from(port: int) -> str:
    import httpx2 as httpx

    details = json.dumps([{"type": "legal_mandate", "mandate": MANDATE, "case_reference": "事故-BENCH-0001"}])
    data = {"grant_type": "client_credentials", "scope": "licences:read", "authorization_details": details}
    response = httpx.post(f"http://127.0.0.1:{port}/oauth/token", data=data, auth=(CLIENT, f"bench-secret-{CLIENT}"))
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


# the profile


COMPONENTS = [
    ("policy (Cedar)", ("cedarpy", "/vault/policy/")),
    ("cryptography", ("nacl/", "/vault/crypto/", "/vault/licences/sdjwt")),
    ("access log", ("/vault/audit/",)),
    ("SQL (SQLAlchemy, driver)", ("sqlalchemy/", "sqlmodel/", "sqlite3", "psycopg", "{method 'execute'", "pydantic")),
    ("GraphQL (Strawberry, graphql-core)", ("strawberry/", "graphql/")),
    ("vault API code", ("/vault/api/", "/vault/oauth/", "/vault/consent/", "/vault/licences/", "/vault/owners/")),
]


def profile(data: Path, token_owner: list[str], count: int) -> list[tuple[str, float]]:
    from strawberry.http import GraphQLRequestData

    from vault.api.app import GraphQLView, execute
    from vault.api.context import RequestInfo
    from vault.config import load_settings
    from vault.oauth.adapter import unit_of_work
    from vault.oauth.tokens import ACCESS_LIFETIME
    from vault.wiring import build_vault

    vault = build_vault(load_settings(env(data)))
    view = GraphQLView(production=True)
    with unit_of_work(vault.db) as session:
        issued = vault.tokens.issue(
            session,
            client_id=CLIENT,
            scope=["licences:read"],
            grant_id=None,
            owner_id=None,
            authorization_details=[{"type": "legal_mandate", "mandate": MANDATE, "case_reference": "事故-PROFILE"}],
            refresh_until=None,
        )
    assert ACCESS_LIFETIME.total_seconds() > 60
    requests = [GraphQLRequestData(QUERY, {"owner": random.choice(token_owner)}, None, None) for _ in range(count)]
    for data_ in requests[:20]:
        execute(view, RequestInfo(vault, issued.access_token, uuid.uuid4().hex), data_)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for data_ in requests:
        execute(view, RequestInfo(vault, issued.access_token, uuid.uuid4().hex), data_)
    profiler.disable()
    elapsed = time.perf_counter() - started
    vault.close()
    totals: dict[str, float] = {}
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _, function), (_, _, tottime, _, _) in stats.items():
        where = f"{filename}:{function}"
        label = next((name for name, marks in COMPONENTS if any(m in where for m in marks)), "other (Python, stdlib)")
        totals[label] = totals.get(label, 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])
    return [("in-process ms per read, profiled", elapsed / count * 1e3)] + [(k, v / whole) for k, v in ranked]


# baseline server (run as a subprocess: --serve-baseline)


@strawberry.type
class PlainField:
    name: str
    value: str | None
    masked: bool


@strawberry.type
class PlainIssuer:
    code: str


@strawberry.type
class PlainLicence:
    type: str
    state: str
    valid_until: date | None
    issuer: PlainIssuer
    values: strawberry.Private[dict[str, str]]

    @strawberry.field
    def fields(self, names: list[str] | None = None) -> list[PlainField | None]:
        chosen = names if names is not None else list(self.values)
        return [PlainField(name=n, value=self.values[n], masked=False) for n in chosen if n in self.values]


@strawberry.type
class PlainQuery:
    @strawberry.field
    def licences(self, info: Info, owner: str, types: list[str] | None = None) -> list[PlainLicence]:
        connection = info.context
        rows = [
            row
            for row in connection.execute(
                "SELECT id, type, issuer, state, valid_until FROM licences WHERE owner = ?", (owner,)
            )
            if types is None or row[1] in types
        ]
        found: dict[str, dict[str, str]] = {row[0]: {} for row in rows}
        marks = ", ".join("?" * len(rows))
        for licence, name, value in connection.execute(
            f"SELECT licence, name, value FROM fields WHERE licence IN ({marks})",  # noqa: S608 -- placeholders only
            [row[0] for row in rows],
        ):
            found[licence][name] = value
        return [
            PlainLicence(
                type=kind,
                state=state.upper(),
                valid_until=date.fromisoformat(until) if until != "None" else None,
                issuer=PlainIssuer(code=issuer),
                values=found[lid],
            )
            for lid, kind, issuer, state, until in rows
        ]


def serve_baseline(database: Path, port: int) -> None:
    """The same read over plaintext rows: executed like the vault's (synchronously, in the thread pool)."""
    import queue

    import uvicorn
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.routing import Route
    from strawberry.asgi import GraphQL
    from strawberry.extensions import ParserCache, ValidationCache

    # the same document caches as the vault's schema: they are not a guarantee, so they are not part of the price
    cached = [partial(ParserCache, maxsize=256), partial(ValidationCache, maxsize=256)]
    schema = strawberry.Schema(query=PlainQuery, extensions=cached)
    pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
    for _ in range(8):
        pool.put(sqlite3.connect(database, check_same_thread=False))

    def run(data: Any) -> Any:
        connection = pool.get()
        try:
            return schema.execute_sync(data.query, data.variables, connection, None, data.operation_name)
        finally:
            pool.put(connection)

    class Baseline(GraphQL):  # type: ignore[type-arg]
        async def execute_single(self, *args: Any, request_data: Any, **kwargs: Any) -> Any:
            return await run_in_threadpool(run, request_data)

    app = Starlette(routes=[Route("/graphql", Baseline(schema, graphql_ide=None))])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--owners", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--profile", type=int, default=300, help="reads to profile in-process (0: none)")
    parser.add_argument("--serve-baseline", nargs=2, metavar=("DATABASE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(Path(args.serve_baseline[0]), int(args.serve_baseline[1]))
        return

    with tempfile.TemporaryDirectory(prefix="vault-bench-") as tmp:
        data = Path(tmp)
        print(f"building {args.owners:,} owners ...", flush=True)
        readers, built = build(data, args.owners)
        licences = args.owners + 2 * len(readers)
        print(f"population: {args.owners:,} owners, {licences:,} licences, written in {built:.0f} s", flush=True)
        results: dict[str, Run] = {}
        for label in ("Consent Vault", "bare Strawberry"):
            port = free_port()
            if label == "Consent Vault":
                command = [sys.executable, "-m", "uvicorn", "server:app", "--host", "127.0.0.1", "--port", str(port)]
                command += ["--no-access-log", "--log-level", "warning", "--workers", "1"]
                server = start(command, env(data, port), port, data / "vault-server.log")
            else:
                command = [sys.executable, __file__, "--serve-baseline", str(data / "baseline.db"), str(port)]
                server = start(command, {}, port, data / "baseline-server.log")
            try:
                token = token_from(port) if label == "Consent Vault" else None
                sample = random.sample(readers, min(len(readers), 2_000))
                requests = [request_bytes(port, identifier, token) for identifier in sample]
                results[label] = drive(port, requests, args.clients, args.warmup, args.seconds)
            finally:
                server.terminate()
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
        profiled = profile(data, readers, args.profile) if args.profile else []
    report(args, results, profiled)


def report(args: argparse.Namespace, results: dict[str, Run], profiled: list[tuple[str, float]]) -> None:
    vault, bare = results["Consent Vault"], results["bare Strawberry"]
    print(f"\nread: 5 fields of 3 licences of a random reader under {MANDATE}, one uvicorn worker each,")
    timing = f"{args.warmup:.0f} s warm-up, {args.seconds:.0f} s measured"
    print(f"      {args.clients} keep-alive clients on loopback, {timing}")
    cpu = platform.processor() or platform.machine()
    print(f"machine: {os.cpu_count()} CPUs, {cpu}, Python {platform.python_version()}")
    print(f"\n{'':<16}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}")
    print(vault.line("Consent Vault"))
    print(bare.line("bare Strawberry"))
    p50 = statistics.median(vault.latencies) / statistics.median(bare.latencies) if bare.latencies else 0
    print(
        f"\nprice of the guarantees: {bare.rps / vault.rps if vault.rps else 0:.1f}x the throughput, {p50:.1f}x the p50"
    )
    print("a response:", vault.sample[:200].decode(errors="replace"), "...")
    for failure in (vault.failures + bare.failures)[:3]:
        print("an error:", failure)
    if profiled:
        (label, per_read), *shares = profiled
        print(f"\nwhere the vault's time goes ({args.profile} reads in-process, {label}: {per_read:.2f}):")
        for name, share in shares:
            print(f"  {name:<40}{share * 100:>5.1f} %")


if __name__ == "__main__":
    main()
