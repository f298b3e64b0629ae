"""Issue licences as fast as the vault will, and compare with the bare Ed25519 signature each one needs.

    .venv/bin/python bench/issue.py [--licences 10000] [--owners 1000] [--database-url URL]
                                    [--bulk N [--batch B] [--workers W]]
    .venv/bin/python bench/issue.py --make-file rows.jsonl --rows 1000000 [--owners 20000]

`--bulk N` then issues N more licences in the same run through bulk issuance (licences/bulk.py), a batch of B
rows per transaction, with every guarantee of a single issuance, and prints both rates with the load average.
With W worker processes (default 2, as `vault licences import`; 0 for none) the workers check, sign and
encrypt the batches while this process writes them (licences/pipeline.py); the CPU time printed is that of all
the processes, the workers' read from /proc.

`--make-file` writes a file for `vault licences import` (.jsonl or .csv by its extension) of vehicle licences
and road transport permits spread over `--owners` synthetic people, and first adds those people to the vault
that VAULT_DATA_DIR / VAULT_DATABASE_URL name (skipping any already there).

Each licence is issued in its own transaction (as an issuer's mutation would be): validated, signed as an
SD-JWT, every disclosure encrypted under the owner's key, a random status slot allocated, the access event
appended, and committed with synchronous=FULL. Printed: licences per second (and per second of this process's
CPU time, which a busy shared machine disturbs less than the wall clock), per-licence latency, and in the
same run the bare Ed25519 signing time per licence, so the overhead above the signature is visible.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import nacl.signing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vault.config import load_settings
from vault.crypto import jws
from vault.db import make_engine, upgrade
from vault.licences.bulk import BulkIssuer, BulkRow, RowOutcome
from vault.licences.pipeline import Pipeline, WorkerSetup, issue_in_one_transaction, tune_gc_for_import
from vault.owners.errors import DuplicateOwner
from vault.owners.identifiers import synthetic_resident_id
from vault.wiring import Vault, build_vault


def person(i: int) -> tuple[str, str]:
    """The i-th synthetic person: (resident ID number, name)."""
    return synthetic_resident_id(f"{110101 + i // 900:06d}", date(1980, 1, 1), i % 900), f"演示{i}"


def vehicle(i: int, name: str) -> dict[str, object]:
    return {
        "plate_number": f"演A·{i:06d}",
        "vehicle_type": "K33",
        "owner_name": name,
        "address": f"演示市示例路{i}号",
        "use_character": "非营运",
        "brand_model": "演示牌DEMO7150",
        "vin": f"LDEMO{i:012d}",
        "engine_number": f"E{i:08d}",
        "registration_date": "2021-06-01",
        "issue_date": "2021-06-01",
        "file_number": f"F{i:09d}",
        "approved_passengers": 5,
    }


def permit(i: int, name: str) -> dict[str, object]:
    return {
        "permit_number": f"演交运字{i:09d}号",
        "holder_name": name,
        "address": f"演示市示例路{i}号",
        "business_scope": "道路普通货物运输",
        "valid_from": "2024-01-01",
        "valid_until": "2027-12-31",
        "issuing_authority": "演示市交通运输局",
        "issue_date": "2024-01-01",
    }


def add_owners(vault: Vault, count: int) -> list[tuple[str, str]]:
    people = [person(i) for i in range(count)]
    for start in range(0, count, 1000):
        with vault.db.session() as session:
            for number, name in people[start : start + 1000]:
                try:
                    with session.begin_nested():
                        vault.owners.add_person(session, id_number=number, name=name, actor="bench")
                except DuplicateOwner:
                    continue
    return people


def row_of(i: int, people: list[tuple[str, str]]) -> tuple[str, str, dict[str, object]]:
    """Row i: alternately a vehicle licence (traffic police) and a road transport permit (transport)."""
    number, name = people[i % len(people)]
    if i % 2:
        return number, "road-transport-permit", permit(i, name)
    return number, "vehicle-licence", vehicle(i, name)


def make_file(path: Path, rows: int, owners: int) -> None:
    settings = load_settings(dict(os.environ))
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    vault = build_vault(settings)
    start = time.perf_counter()
    people = add_owners(vault, owners)
    vault.close()
    print(f"{owners} owners in the vault ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    with path.open("w", encoding="utf-8", newline="") as out:
        if path.suffix == ".csv":
            names = list(dict.fromkeys([*vehicle(0, ""), *permit(0, "")]))
            writer = csv.writer(out)
            writer.writerow(["owner", "type", *names])
            for i in range(rows):
                owner, type_code, values = row_of(i, people)
                writer.writerow([owner, type_code, *(values.get(n, "") for n in names)])
        else:
            for i in range(rows):
                owner, type_code, values = row_of(i, people)
                out.write(json.dumps({"owner": owner, "type": type_code, "values": values}, ensure_ascii=False))
                out.write("\n")
    print(f"wrote {rows} rows to {path}", file=sys.stderr)


def bulk_issue(
    vault: Vault, people: list[tuple[str, str]], first: int, count: int, batch: int, workers: int
) -> tuple[float, float]:
    """(Seconds, CPU-seconds of this process and its workers) to issue `count` licences in bulk, a transaction a batch.

    With `workers`, worker processes prepare the batches while this one writes them (licences/pipeline.py); their
    start-up (a fresh interpreter each) is outside the time.
    """
    issuer = BulkIssuer(vault.licences)

    def batches() -> Iterator[list[BulkRow]]:
        for offset in range(first, first + count, batch):
            end = min(offset + batch, first + count)
            yield [BulkRow(o, t, list(v.items())) for o, t, v in (row_of(i, people) for i in range(offset, end))]

    def check(outcomes: list[RowOutcome]) -> None:
        bad = [o for o in outcomes if o.status != "issued"]
        assert not bad, bad[0]

    if not workers:
        start, cpu = time.perf_counter(), time.process_time()
        for rows in batches():
            check(issue_in_one_transaction(issuer, vault.db.session, rows, issuer_code=None, actor="bench"))
        return time.perf_counter() - start, time.process_time() - cpu
    setup = WorkerSetup(
        vault.settings.database_url, vault.settings.policies_dir, vault.settings.public_url, vault.keyring.in_memory()
    )
    with Pipeline(issuer, vault.db, setup, workers=workers) as pipeline:
        pids = pipeline.worker_pids()
        workers_cpu = sum(process_cpu(p) for p in pids)
        start, cpu = time.perf_counter(), time.process_time()
        for outcomes in pipeline.issue(batches(), unit_of_work=vault.db.session, actor="bench"):
            check(outcomes)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        workers_cpu = sum(process_cpu(p) for p in pids) - workers_cpu
    return elapsed, cpu + workers_cpu


def process_cpu(pid: int) -> float:
    """CPU-seconds (user and system) another process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_signing(count: int, payload_size: int) -> float:
    """Seconds per Ed25519 signature over a payload the size of a licence's issuer JWT."""
    key = nacl.signing.SigningKey.generate()
    payload = b"x" * payload_size
    start = time.perf_counter()
    for _ in range(count):
        key.sign(payload)
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--licences", type=int, default=10_000)
    parser.add_argument("--owners", type=int, default=1_000)
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--bulk", type=int, default=0, metavar="N", help="then issue N licences in bulk")
    parser.add_argument("--batch", type=int, default=1000, help="rows per bulk transaction")
    parser.add_argument(
        "--workers", type=int, default=2, help="processes preparing bulk batches while one writes (0: none)"
    )
    parser.add_argument("--make-file", type=Path, metavar="PATH", help="write an import file instead")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of --make-file")
    args = parser.parse_args()
    if args.make_file:
        make_file(args.make_file, args.rows, args.owners)
        return

    with tempfile.TemporaryDirectory() as tmp:
        env = {"VAULT_DATA_DIR": tmp, "VAULT_LOG_LEVEL": "WARNING"}
        if args.database_url:
            env["VAULT_DATABASE_URL"] = args.database_url
        settings = load_settings(env)
        engine = make_engine(settings.database_url)
        upgrade(engine)
        engine.dispose()
        vault = build_vault(settings)
        owners = []
        with vault.db.session() as session:
            for i in range(args.owners):
                number, name = person(i)
                owners.append(vault.owners.add_person(session, id_number=number, name=name, actor="bench").id)

        latencies = []
        sample = ""
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(args.licences):
            t0 = time.perf_counter()
            with vault.db.session() as session:
                licence = vault.licences.issue(
                    session,
                    issuer_code="traffic-police",
                    owner_id=owners[i % len(owners)],
                    type_code="vehicle-licence",
                    values=vehicle(i, f"演示{i % len(owners)}"),
                )
                if i == 0:
                    version = vault.licences.current_version(session, licence)
                    dek = vault.keys.owner_key(session, licence.owner_id)
                    sample = dek.decrypt_text(
                        version.jwt_ct, vault.licences._ctx(licence.owner_id, version, "_issuer_jwt")
                    )
            latencies.append(time.perf_counter() - t0)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        people = [person(i) for i in range(args.owners)]
        bulk_elapsed = bulk_cpu = 0.0
        if args.bulk:
            tune_gc_for_import()  # as `vault licences import` does
            bulk_elapsed, bulk_cpu = bulk_issue(vault, people, args.licences, args.bulk, args.batch, args.workers)
        with vault.db.session() as session:
            while vault.audit.sequence(session)[0]:
                pass
        with vault.db.session() as session:
            report = vault.audit.verify(session)
        vault.close()

    signing_input = len(sample.rsplit(".", 1)[0]) if sample else 600
    bare = bare_signing(min(args.licences, 20_000), signing_input)
    per_licence = elapsed / args.licences
    backend = "PostgreSQL" if args.database_url else "SQLite (WAL, synchronous=FULL)"
    print(f"backend:                 {backend}")
    print(f"licences issued:         {args.licences} to {args.owners} owners, one transaction each")
    print(f"licences per second:     {args.licences / elapsed:,.0f} ({args.licences / cpu:,.0f} per CPU-second)")
    print(
        f"latency per licence:     p50 {statistics.median(latencies) * 1e3:.2f} ms, "
        f"p99 {sorted(latencies)[int(len(latencies) * 0.99)] * 1e3:.2f} ms"
    )
    print(f"bare Ed25519 signature:  {bare * 1e6:.1f} µs per licence ({signing_input}-byte signing input)")
    print(f"overhead above signing:  {per_licence / bare:,.0f}x the signature ({(per_licence - bare) * 1e3:.2f} ms)")
    if args.bulk:
        print(
            f"bulk issuance:           {args.bulk} licences in batches of {args.batch}, "
            f"{f'{args.workers} workers preparing' if args.workers else 'in one process'}: "
            f"{args.bulk / bulk_elapsed:,.0f} licences per second, {args.bulk / bulk_cpu:,.0f} per CPU-second "
            f"of all its processes ({args.bulk / bulk_elapsed / (args.licences / elapsed):.1f}x single)"
        )
    print(f"access log after run:    {'verifies' if report.ok else 'DOES NOT VERIFY'} ({report.size} events)")
    print(f"load average:            {' '.join(f'{x:.2f}' for x in os.getloadavg())} (shared machine)")
    assert jws.ALG == "EdDSA"


if __name__ == "__main__":
    main()
