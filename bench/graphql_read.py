"""The price of our guarantees: the agency read over GraphQL, against a bare Strawberry schema over the same data.

    .venv/bin/python bench/graphql_read.py [--owners 10000] [--seconds 20] [--clients 16] [--profile 300]
                                           [--database sqlite|postgresql] [--workers 1 [2 ...]]
                                           [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

1. Builds a synthetic population in a fresh vault: SQLite (WAL, synchronous=FULL) or, with --database postgresql,
   a throw-away PostgreSQL database made for the run and dropped after it: every owner a person with a
   resident ID card; up to 10,000 of them ("readers") also hold a driving licence and a vehicle licence. It is
   written in bulk with the vault's own primitives (per-owner keys, issuer-signed SD-JWTs, per-field encryption
   bound to owner, version and field, blind indexes, status-list slots), without access events for its
   creation. The same licences go, as plaintext rows, into a second SQLite file for the baseline.
2. Starts each server on a free loopback port and drives the same read from --clients keep-alive connections
   for --seconds after a warm-up (the vault once per --workers count, in the same run, with `vault serve
   --workers N`; the baseline always as one uvicorn worker over SQLite): a police traffic unit, under the
   traffic-accident mandate with a case reference, reads 5 fields of the 3 licences of a random reader.
   - Consent Vault: `vault serve [--workers N]`: bearer token introspected in-process, one
     Cedar batch, only the released fields decrypted, one access event per read, all committed together.
   - Baseline: a Strawberry schema over the plaintext rows, executed the same way (synchronously in Starlette's
     thread pool, the same parse and validation caches), with no authentication, policy, cryptography or audit.
3. Prints requests per second, p50/p95/p99 latency and errors of each, their ratio, the CPU the load generator
   and each server took (the load generator competes for the same cores), and where the vault's time goes: the
   same read --profile times in-process under cProfile, split into its steps.
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
import re
import shutil
import socket
import sqlite3
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
TYPES = ["resident-id-card", "driving-licence", "vehicle-licence"]
QUERY = """query Read($owner: String!) {
  licences(owner: $owner, types: ["resident-id-card", "driving-licence", "vehicle-licence"]) {
    type state validUntil issuer { code }
    fields(names: ["id_number", "licence_number", "class", "plate_number", "vin"]) { name value masked }
  }
}"""  # 5 fields, each defined by exactly one of the 3 types, all named by the mandate


def values_for(i: int, identifier: str, type_code: str) -> dict[str, object]:
    person = {"name": f"演示{i}", "sex": "男女"[i % 2], "birth_date": "1980-01-01", "address": f"演示市示例路{i}号"}
    if type_code == "resident-id-card":
        card = {"ethnicity": "汉", "id_number": identifier, "issuing_authority": "演示市公安局"}
        return person | card | {"valid_from": "2020-01-01", "valid_until": "2040-01-01", "photo": f"photo:{i}"}
    if type_code == "driving-licence":
        licence = {"licence_number": identifier, "nationality": "中国", "first_issue_date": "2005-01-01", "class": "C1"}
        dates = {"valid_from": "2021-01-01", "valid_until": "2031-01-01", "file_number": f"F{i:011d}"}
        return person | licence | dates | {"issuing_authority": "演示市公安局交通管理局", "photo": f"photo:{i}"}
    vehicle = {"plate_number": f"演A·{i:06d}", "vehicle_type": "K33", "owner_name": f"演示{i}", "vin": f"LB{i:015d}"}
    use = {"address": person["address"], "use_character": "非营运", "brand_model": "演示牌DEMO7150"}
    dates = {"registration_date": "2021-06-01", "issue_date": "2021-06-01", "file_number": f"V{i:09d}"}
    return vehicle | use | dates | {"engine_number": f"E{i:08d}", "approved_passengers": 5}


def end_of_day(day: date) -> int:
    """The `exp` LicenceService gives a licence valid until `day`: the end of that day, UTC."""
    return int((datetime.combine(day, datetime.min.time(), UTC) + timedelta(days=1)).timestamp())


@dataclass
class Builder:
    """Writes owners and licences in bulk, as OwnerService and LicenceService write them one by one.

    Columns left out get their model defaults (timestamps); the associated data of every ciphertext is the
    services' own (LicenceService._ctx), so a drift makes the vault's reads fail, not this benchmark lie.
    """

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
        rows: dict[Any, list[dict[str, Any]]] = {}
        plain_licences, plain_fields, batch_readers = [], [], []

        def add(model: Any, **values: Any) -> None:
            rows.setdefault(model, []).append(values)

        with vault.db.session() as session:
            index_key, kek = vault.keys.index_key(session), vault.keyring.primary_id
            signers = {code: vault.issuers.signer(session, code) for code in vault.issuers.codes()}
            for i in range(first, last):
                identifier = synthetic_resident_id(f"{110101 + i // 900:06d}", date(1980, 1, 1), i % 900)
                owner_id = uuid.uuid4()
                dek = DataKey.generate(owner_id)
                name_ct = dek.encrypt_text(f"演示{i}", FieldContext(owner_id, owner_id, "name"))
                id_ct = dek.encrypt_text(identifier, FieldContext(owner_id, owner_id, "identifier"))
                add(Owner, id=owner_id, kind="person", created_at=now, name_ct=name_ct, identifier_ct=id_ct)
                add(OwnerKey, owner_id=owner_id, dek_id=dek.dek_id, kek_id=kek, wrapped=dek.wrap(vault.keyring))
                digest = blind_index(index_key, "resident_id", identifier)
                add(BlindIndex, id=uuid.uuid4(), owner_id=owner_id, kind="resident_id", digest=digest, record_id=None)
                if i < readers:
                    batch_readers.append(identifier)
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
                    add(
                        Licence,
                        id=licence_id,
                        owner_id=owner_id,
                        type_code=type_code,
                        issuer_code=issuer,
                        state="active",
                        current_version=1,
                        valid_until=until,
                    )
                    number = str(checked[licence_type.number_field])
                    digest = blind_index(index_key, f"licence:{type_code}", number)
                    kind = f"licence:{type_code}"
                    add(BlindIndex, id=uuid.uuid4(), owner_id=owner_id, kind=kind, digest=digest, record_id=licence_id)
                    add(
                        LicenceVersion,
                        id=version_id,
                        licence_id=licence_id,
                        owner_id=owner_id,
                        version=1,
                        kid=signers[issuer].kid,
                        status_idx=slot,
                        valid_until=until,
                        jwt_ct=jwt_ct,
                    )
                    add(StatusEntry, issuer_code=issuer, idx=slot, version_id=version_id, status=0, updated_at=now)
                    for name, disclosure in sdjwt.disclosure_map(token).items():
                        sealed = dek.encrypt_text(disclosure, ctx(owner_id, version, name))
                        field_id = uuid.uuid4()
                        add(LicenceField, id=field_id, version_id=version_id, owner_id=owner_id, name=name)
                        rows[LicenceField][-1]["disclosure_ct"] = sealed
                    plain_licences.append((str(licence_id), identifier, type_code, issuer, "active", str(until)))
                    plain_fields += [(str(licence_id), k, str(v)) for k, v in checked.items()]
            for model in (Owner, OwnerKey, BlindIndex, Licence, LicenceVersion, StatusEntry, LicenceField):
                session.execute(insert(model), rows[model])
        self.plain.executemany("INSERT INTO licences VALUES (?, ?, ?, ?, ?, ?)", plain_licences)
        self.plain.executemany("INSERT INTO fields VALUES (?, ?, ?)", plain_fields)
        self.plain.commit()
        return batch_readers


PLAIN_SCHEMA = """
PRAGMA journal_mode = WAL;
CREATE TABLE licences (id TEXT PRIMARY KEY, owner TEXT NOT NULL, type TEXT NOT NULL, issuer TEXT NOT NULL,
                       state TEXT NOT NULL, valid_until TEXT);
CREATE INDEX licences_owner ON licences (owner, type);
CREATE TABLE fields (licence TEXT NOT NULL, name TEXT NOT NULL, value TEXT, PRIMARY KEY (licence, name));
"""


def build(data: Path, owners: int, database_url: str | None) -> tuple[list[str], float]:
    from vault.config import load_settings
    from vault.db import make_engine, upgrade
    from vault.oauth.adapter import unit_of_work
    from vault.wiring import build_vault

    settings = load_settings(env(data, database_url=database_url))
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    vault = build_vault(settings)
    plain = sqlite3.connect(data / "baseline.db")
    plain.executescript(PLAIN_SCHEMA)
    started, builder, readers = time.perf_counter(), Builder(vault, plain), []
    for first in range(0, owners, 500):
        readers += builder.batch(first, min(first + 500, owners), min(owners, READERS_MAX))
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
    settle(vault.db)
    vault.close()
    return readers, time.perf_counter() - started


def settle(db: Any) -> None:
    """Leave the freshly written population as a deployed database would be before the timed runs: on PostgreSQL
    vacuumed and analysed (autovacuum would otherwise do it during the first run, on the same two cores) and
    checkpointed; on SQLite its WAL folded into the database."""
    if db.is_sqlite:
        db.checkpoint_wal()
        return
    from sqlalchemy import text

    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        conn.execute(text("CHECKPOINT"))


def env(data: Path, port: int = 8000, database_url: str | None = None) -> dict[str, str]:
    # the public URL the licences were issued under, whatever port the server listens on
    settings = {"VAULT_DATA_DIR": str(data), "VAULT_LOG_LEVEL": "WARNING", "VAULT_PORT": str(port)} | {
        "VAULT_HOST": "127.0.0.1",
        "VAULT_PUBLIC_URL": "http://127.0.0.1:8000",
        "VAULT_POLICIES_DIR": str(bench_policies(data)),
    }
    return settings | ({"VAULT_DATABASE_URL": database_url} if database_url else {})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(command: list[str], environment: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=clean | environment, stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"server exited: {log.read_text(errors='replace')[-2000:]}") from None
            time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not start within a minute")


@dataclass
class Run:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    sample: bytes = b""
    load_cpu: float = 0.0
    server_cpu: float = 0.0
    database_cpu: float = 0.0  # PostgreSQL's server processes (0 for SQLite, which runs inside the server)
    machine_busy: float = 0.0  # every CPU of the machine, from /proc/stat: all processes, ours and others'

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def ms(self, share: float) -> float:
        ordered = sorted(self.latencies) or [0.0]
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1e3

    def line(self, label: str) -> str:
        figures = f"{self.rps:>9,.0f}{self.ms(0.5):>9.2f}{self.ms(0.95):>9.2f}{self.ms(0.99):>9.2f}"
        return f"{label:<16}{figures}{len(self.failures):>8}"


def request_bytes(port: int, identifier: str, token: str | None) -> bytes:
    body = json.dumps({"query": QUERY, "variables": {"owner": identifier}}).encode()
    head = f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n" + (f"Authorization: Bearer {token}\r\n" if token else "")
    return (head + "\r\n").encode() + body


async def client(port: int, requests: list[bytes], until: float, measure_from: float, run: Run) -> None:
    """One keep-alive connection sending reads back to back (a minimal HTTP/1.1 client: nothing to slow it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (started := time.perf_counter()) < until:
            writer.write(random.choice(requests))
            status, length = await reader.readline(), 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            if started >= measure_from:
                run.latencies.append(time.perf_counter() - started)
                if b" 200 " not in status or b'"errors"' in body:
                    run.failures.append(f"{status.decode().strip()} {body.decode(errors='replace')[-300:]}")
                run.sample = run.sample or body
    finally:
        writer.close()


def drive(port: int, requests: list[bytes], clients: int, warmup: float, seconds: float) -> Run:
    run = Run(seconds=seconds)

    async def together() -> None:
        now = time.perf_counter()
        until, measure_from = now + warmup + seconds, now + warmup
        await asyncio.gather(*(client(port, requests, until, measure_from, run) for _ in range(clients)))

    asyncio.run(together())
    return run


def vault_of(data: Path, database_url: str | None) -> Any:
    from vault.config import load_settings
    from vault.wiring import build_vault

    return build_vault(load_settings(env(data, database_url=database_url)))


def bench_policies(data: Path) -> Path:
    """The project's policies with the bench mandate's rate limits lifted: a load test is not a mandate's use."""
    target = data / "policies"
    if not target.exists():
        shutil.copytree(ROOT / "policies", target)
        mandates = target / "mandates.toml"
        text = re.sub(r"per_(case|client) = \d+", r"per_\1 = 100000000", mandates.read_text(encoding="utf-8"))
        mandates.write_text(text, encoding="utf-8")
    return target


def mandate_tokens(vault: Any, identifiers: list[str]) -> dict[str, str]:
    """One mandate token per owner, issued in-process as the token endpoint would (a token names its owners)."""
    from vault.mandates.services import MandateClaim, MandateService
    from vault.oauth.adapter import unit_of_work

    service = MandateService(vault.keys, vault.audit, vault.policy.catalogue)
    named = ["driving-licence/licence_number", "resident-id-card/id_number"]
    tokens = {}
    with unit_of_work(vault.db) as session:
        case = service.case_digest(session, MANDATE, "SG-2026-000001")
        for identifier in identifiers:
            owner = service.identifier_digest(session, identifier)[1]
            claim = MandateClaim(MANDATE, case, frozenset({owner}), "012345", tuple(named))
            issued = vault.tokens.issue(
                session,
                client_id=CLIENT,
                scope=["licences:read"],
                grant_id=None,
                owner_id=None,
                authorization_details=[claim.details()],
                refresh_until=None,
            )
            tokens[identifier] = issued.access_token
    return tokens


# (label, file, function): the steps of one read, timed with everything they call
PHASES = [
    ("authenticate: introspect token, agency", "/vault/api/context.py", "get_context"),
    ("find the owner (blind index)", "/vault/mandates/services.py", "owner_by_digest"),
    ("count the read (mandate limits)", "/vault/mandates/services.py", "count_read"),
    ("policy: one Cedar batch", "/vault/policy/engine.py", "decide_reads"),
    ("load licences + versions (1 statement)", "/vault/api/licences.py", "_load"),
    ("load + decrypt released fields", "/vault/api/loaders.py", "_open"),
    ("append the access event", "/vault/api/reads.py", "flush"),
    ("commit (fsync, synchronous=FULL)", "~", "<method 'commit' of 'sqlite3.Connection' objects>"),
    ("commit (PostgreSQL)", "/psycopg/connection.py", "commit"),
    # with group commit the write (count, event, commit above) runs in the writer thread, which cProfile does not
    # see: the request's wait for it is counted here instead
    ("the write, waited for (group commit)", "/vault/group_commit.py", "run"),
]
IN_RESOLVERS = slice(1, 6)  # the phases that run inside GraphQL execution


def profile(
    data: Path, readers: list[str], count: int, database_url: str | None
) -> tuple[float, list[tuple[str, float]]]:
    """ms per read in-process under the profiler, and ms per read of each phase."""
    from strawberry.http import GraphQLRequestData

    from vault.api.app import GraphQLView, execute
    from vault.api.context import RequestInfo
    from vault.config import load_settings
    from vault.wiring import build_vault

    vault = build_vault(load_settings(env(data, database_url=database_url)))
    view = GraphQLView(production=True)
    tokens = mandate_tokens(vault, random.sample(readers, min(len(readers), count + 20)))
    profiler, started = cProfile.Profile(), 0.0
    for number in range(count + 20):
        if number == 20:  # warmed up
            started = time.perf_counter()
            profiler.enable()
        identifier, token = random.choice(list(tokens.items()))
        request = GraphQLRequestData(QUERY, {"owner": identifier}, None, None)
        execute(view, RequestInfo(vault, token, uuid.uuid4().hex), request)
    profiler.disable()
    per_read = (time.perf_counter() - started) / count * 1e3
    vault.close()
    cumulative = pstats.Stats(profiler).stats  # type: ignore[attr-defined]

    def ms(suffix: str, function: str) -> float:
        spent = (row[3] for (file, _, name), row in cumulative.items() if name == function and file.endswith(suffix))
        return sum(spent) / count * 1e3

    phases = [(label, ms(suffix, function)) for label, suffix, function in PHASES]
    phases = [(label, spent) for label, spent in phases if spent]  # steps the code under test does not have
    resolvers = sum(spent for _, spent in phases[IN_RESOLVERS])
    phases.append(("GraphQL: parse, validate (cached), execute", ms("/schema/schema.py", "execute_sync") - resolvers))
    phases.append(("the rest (unit of work, Python)", per_read - sum(spent for _, spent in phases)))
    return per_read, phases


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
        found = connection.execute(
            "SELECT id, type, issuer, state, valid_until FROM licences WHERE owner = ?", (owner,)
        )
        rows = [row for row in found if types is None or row[1] in types]
        values: dict[str, dict[str, str]] = {row[0]: {} for row in rows}
        marks = ", ".join("?" * len(rows))
        query = f"SELECT licence, name, value FROM fields WHERE licence IN ({marks})"  # noqa: S608 -- placeholders
        for licence, name, value in connection.execute(query, [row[0] for row in rows]):
            values[licence][name] = value
        return [
            PlainLicence(
                type=kind,
                state=state.upper(),
                valid_until=date.fromisoformat(until) if until != "None" else None,
                issuer=PlainIssuer(code=issuer),
                values=values[lid],
            )
            for lid, kind, issuer, state, until in rows
        ]


def serve_baseline(database: Path, port: int) -> None:
    import queue

    import uvicorn
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.routing import Route
    from strawberry.asgi import GraphQL
    from strawberry.extensions import ParserCache, ValidationCache

    # the vault's document caches are not a guarantee, so the baseline has them too
    cached = [partial(ParserCache, maxsize=256), partial(ValidationCache, maxsize=256)]
    schema = strawberry.Schema(query=PlainQuery, extensions=cached)
    connections: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
    for _ in range(8):
        connections.put(sqlite3.connect(database, check_same_thread=False))

    def run(data: Any) -> Any:
        connection = connections.get()
        try:
            return schema.execute_sync(data.query, data.variables, connection, None, data.operation_name)
        finally:
            connections.put(connection)

    class Baseline(GraphQL):  # type: ignore[type-arg]
        async def execute_single(self, *args: Any, request_data: Any, **kwargs: Any) -> Any:
            return await run_in_threadpool(run, request_data)

    app = Starlette(routes=[Route("/graphql", Baseline(schema, graphql_ide=None))])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (from /proc; 0 for those gone)."""
    total = 0
    for pid in pids:
        try:
            fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> dict[int, float]:
    """CPU seconds so far of every PostgreSQL server process on this machine, by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    found[int(entry.name)] = cpu_seconds([int(entry.name)])
            except OSError:
                continue
    return found


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), sum(fields) / os.sysconf("SC_CLK_TCK")


def measured(port: int, requests: list[bytes], args: argparse.Namespace, pids: list[int]) -> Run:
    """Drive the server; record the CPU the load generator (this process), the server, PostgreSQL and the whole
    machine took per wall second."""
    before, own, wall, database, machine = (
        cpu_seconds(pids),
        os.times(),
        time.perf_counter(),
        postgres_cpu(),
        machine_cpu(),
    )
    run = drive(port, requests, args.clients, args.warmup, args.seconds)
    after, spent, elapsed = cpu_seconds(pids), os.times(), time.perf_counter() - wall
    database_after, machine_after = postgres_cpu(), machine_cpu()
    run.load_cpu = (spent.user + spent.system - own.user - own.system) / elapsed
    run.server_cpu = (after - before) / elapsed
    run.database_cpu = sum(t - database.get(pid, 0.0) for pid, t in database_after.items()) / elapsed
    run.machine_busy = (machine_after[0] - machine[0]) / elapsed
    return run


def run_vault(data: Path, url: str | None, workers: int, sample: list[str], args: argparse.Namespace) -> Run:
    from bench.processes import Server, server_env

    port = free_port()
    environment = server_env(data / "var", port, url) | env(data, port, url)
    server = Server(environment, workers, log=data / f"v{workers}.log", start="serve")
    server.start()
    try:
        tokens = mandate_tokens(vault_of(data, url), sample)
        requests = [request_bytes(port, identifier, tokens.get(identifier)) for identifier in sample]
        return measured(port, requests, args, server.pids())
    finally:
        server.stop()
        server.close()


def run_baseline(data: Path, sample: list[str], args: argparse.Namespace) -> Run:
    port = free_port()
    command = [sys.executable, __file__, "--serve-baseline", str(data / "baseline.db"), str(port)]
    server = start(command, {}, port, data / "b.log")
    try:
        requests = [request_bytes(port, identifier, None) for identifier in sample]
        return measured(port, requests, args, [server.pid])
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    from bench.processes import DEFAULT_POSTGRES, throwaway_database

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--owners", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--profile", type=int, default=300, help="reads to profile in-process (0: none)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="vault serve --workers N, each in turn")
    parser.add_argument("--postgres-url", default=os.environ.get("VAULT_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES)
    parser.add_argument("--serve-baseline", nargs=2, metavar=("DATABASE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(Path(args.serve_baseline[0]), int(args.serve_baseline[1]))
        return
    if any(n < 1 for n in args.workers):
        parser.error("--workers must be at least 1")
    with (
        tempfile.TemporaryDirectory(prefix="vault-bench-") as tmp,
        throwaway_database(args.database, args.postgres_url) as url,
    ):
        data = Path(tmp)
        print(f"building {args.owners:,} owners on {args.database} ...", flush=True)
        readers, built = build(data, args.owners, url)
        print(f"population: {args.owners:,} owners, {args.owners + 2 * len(readers):,} licences in {built:.0f} s")
        sample = random.sample(readers, min(len(readers), 2_000))
        results = {}
        for workers in args.workers:
            results[f"vault {workers} worker" + "s" * (workers > 1)] = run_vault(data, url, workers, sample, args)
        results["bare Strawberry"] = run_baseline(data, sample, args)
        profiled = profile(data, readers, args.profile, url) if args.profile else None
    report(args, results, profiled)


def report(args: argparse.Namespace, results: dict[str, Run], profiled: tuple[float, list[Any]] | None) -> None:
    print(f"\nread: 5 fields of 3 licences of a random reader under {MANDATE}; vault on {args.database},")
    print(f"      bare Strawberry over SQLite, one uvicorn worker; {args.clients} keep-alive clients on loopback,")
    print(f"      {args.warmup:.0f} s warm-up, {args.seconds:.0f} s")
    cpu = platform.processor() or platform.machine()
    print(f"machine: {os.cpu_count()} CPUs, {cpu}, {platform.system()}, Python {platform.python_version()}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    heading = f"{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}{'server CPU':>12}{'load CPU':>10}"
    heading += f"{'PG CPU':>8}{'machine':>9}"
    print(f"\n{'':<16}{heading}")
    for label, run in results.items():
        figures = f"{run.server_cpu:>12.2f}{run.load_cpu:>10.2f}{run.database_cpu:>8.2f}{run.machine_busy:>9.2f}"
        print(f"{run.line(label)}{figures}")
    print("(CPU: cores busy on average during the run, warm-up included; 'load CPU' is this load generator's,")
    print(" 'PG CPU' PostgreSQL's server processes', 'machine' every process's on the machine, others' included)")
    bare = results["bare Strawberry"]
    vaults = [(label, run) for label, run in results.items() if run is not bare]
    for label, run in vaults:
        throughput, p50 = bare.rps / max(run.rps, 1e-9), run.ms(0.5) / max(bare.ms(0.5), 1e-9)
        print(f"price of the guarantees, {label}: {throughput:.1f}x the throughput, {p50:.1f}x the p50 latency")
    if len(vaults) > 1:
        first = vaults[0][1].rps
        for label, run in vaults[1:]:
            print(f"{label} / {vaults[0][0]}: {run.rps / max(first, 1e-9):.2f}x the throughput")
    for _, run in vaults:
        print("a vault response:", run.sample[:160].decode(errors="replace"), "...")
        for failure in run.failures[:3]:
            print("an error:", failure)
    for failure in bare.failures[:3]:
        print("a baseline error:", failure)
    if profiled:
        per_read, phases = profiled
        print(f"\nwhere the vault's time goes ({args.profile} reads in-process, {per_read:.2f} ms each, profiled):")
        for label, spent in phases:
            print(f"  {label:<46}{spent:>7.2f} ms {spent / per_read * 100:>5.1f} %")


if __name__ == "__main__":
    main()
