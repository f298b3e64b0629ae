"""Issue licences as fast as the vault will, and compare with the bare Ed25519 signature each one needs.

    .venv/bin/python bench/issue.py [--licences 10000] [--owners 1000] [--database-url URL]

Each licence is issued in its own transaction (as an issuer's mutation would be): validated, signed as an
SD-JWT, every disclosure encrypted under the owner's key, a random status slot allocated, the access event
appended, and committed with synchronous=FULL. Printed: licences per second, per-licence latency, and in the
same run the bare Ed25519 signing time per licence, so the overhead above the signature is visible.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import nacl.signing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vault.config import load_settings
from vault.crypto import jws
from vault.db import make_engine, upgrade
from vault.owners.identifiers import synthetic_resident_id
from vault.wiring import build_vault


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
    args = parser.parse_args()

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
                number = synthetic_resident_id(f"{110101 + i // 900:06d}", date(1980, 1, 1), i % 900)
                owners.append(vault.owners.add_person(session, id_number=number, name=f"演示{i}", actor="bench").id)

        latencies = []
        sample = ""
        start = time.perf_counter()
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
        elapsed = time.perf_counter() - start
        with vault.db.session() as session:
            report = vault.audit.verify(session)
        vault.close()

    signing_input = len(sample.rsplit(".", 1)[0]) if sample else 600
    bare = bare_signing(min(args.licences, 20_000), signing_input)
    per_licence = elapsed / args.licences
    backend = "PostgreSQL" if args.database_url else "SQLite (WAL, synchronous=FULL)"
    print(f"backend:                 {backend}")
    print(f"licences issued:         {args.licences} to {args.owners} owners, one transaction each")
    print(f"licences per second:     {args.licences / elapsed:,.0f}")
    print(
        f"latency per licence:     p50 {statistics.median(latencies) * 1e3:.2f} ms, "
        f"p99 {sorted(latencies)[int(len(latencies) * 0.99)] * 1e3:.2f} ms"
    )
    print(f"bare Ed25519 signature:  {bare * 1e6:.1f} µs per licence ({signing_input}-byte signing input)")
    print(f"overhead above signing:  {per_licence / bare:,.0f}x the signature ({(per_licence - bare) * 1e3:.2f} ms)")
    print(f"access log after run:    {'verifies' if report.ok else 'DOES NOT VERIFY'} ({report.size} events)")
    assert jws.ALG == "EdDSA"


if __name__ == "__main__":
    main()
