"""My data, exported: one POST downloads a signed bundle that verifies offline (the CLI and /verify), a tampered
one fails naming what, and a read under a mandate still within its deferral is not in it."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.functional.test_citizen_pages import housing_read, person, police_read, signed_in
from tests.oauth_helpers import BASE
from tests.webclient import browser, page_token
from vault.audit import publishing
from vault.cli import main as cli
from vault.crypto.services import VAULT_SIGNING
from vault.portability.verify import verify_export
from vault.web.app import create_app
from vault.wiring import Vault


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=vault), base_url=BASE) as client:
        yield client


def download(vault: Vault, key: str = "a") -> bytes:
    publishing.sequence_step(vault.audit, vault.db)  # what the leader does within a second: events get proofs
    client = signed_in(vault, key)
    answer = client.post(
        "/export", data={"csrf_token": page_token(client, "/licences")}, headers={"Origin": vault.settings.public_url}
    )
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-disposition"].startswith('attachment; filename="my-data-')
    return answer.content


def trusted(vault: Vault) -> dict[str, Any]:
    with vault.db.session() as session:
        return vault.keys.trusted_public_keys(session, VAULT_SIGNING)


def test_an_export_verifies_offline_with_everything_in_it(vault: Vault, http: TestClient, tmp_path: Path) -> None:
    housing_read(vault, http)
    data = download(vault)
    document = json.loads(data)
    bundle = document["bundle"]
    assert bundle["owner"] == str(person(vault))
    assert {lic["type"] for lic in bundle["licences"]} >= {"resident-id-card", "driving-licence"}
    assert bundle["grants"] and all(g["receipt"].count(".") == 2 for g in bundle["grants"])
    actions = [json.loads(e["entry"])["action"] for e in bundle["events"]]
    assert "fields.released" in actions and "owner.exported" in actions
    assert any(e["proof"] for e in bundle["events"])
    report = verify_export(data, trusted_keys=trusted(vault))
    assert report.ok, report.problems
    assert report.licences == len(bundle["licences"]) and report.proofs >= 1
    file = tmp_path / "export.json"
    file.write_bytes(data)
    assert cli(["export", "verify", str(file)]) == 0


def _tampered(data: bytes, change: Any) -> bytes:
    document = json.loads(data)
    change(document["bundle"])
    return json.dumps(document, ensure_ascii=False).encode()


def test_a_tampered_export_fails_and_says_where(vault: Vault, http: TestClient, tmp_path: Path) -> None:
    housing_read(vault, http)
    data = download(vault)

    def drop_event(bundle: dict[str, Any]) -> None:
        bundle["events"].pop(0)

    def revoke(bundle: dict[str, Any]) -> None:
        bundle["grants"][0]["state"] = "revoked"

    for change in (drop_event, revoke):
        report = verify_export(_tampered(data, change), trusted_keys=trusted(vault))
        assert not report.ok and report.problems == ["the vault's signature over the export does not verify"]
    file = tmp_path / "tampered.json"
    file.write_bytes(_tampered(data, revoke))
    assert cli(["export", "verify", str(file)]) == 1


def test_a_resigned_forgery_fails_against_the_vaults_keys_and_each_part_is_checked(vault: Vault) -> None:
    import nacl.signing

    from vault.crypto import jws
    from vault.portability.services import signing_input

    document = json.loads(download(vault))
    bundle = document["bundle"]
    first_event = json.loads(bundle["events"][0]["entry"])
    first_event["actor"] = "agency:someone-else"
    bundle["events"][0]["entry"] = jws.canonical_json(first_event).decode()
    licence = bundle["licences"][0]
    parts = licence["sd_jwt"].split("~")
    parts[1] = jws.b64url_encode(json.dumps(["salt", "name", "假名字"]).encode())
    licence["sd_jwt"] = "~".join(parts)
    forger = nacl.signing.SigningKey.generate()
    bundle["vault_keys"] = {"keys": [jws.public_jwk(forger.verify_key, "forged")]}
    signature = forger.sign(signing_input(bundle)).signature
    document["signature"] = {"alg": "EdDSA", "kid": "forged", "sig": jws.b64url_encode(signature)}
    forged = json.dumps(document).encode()
    against_vault = verify_export(forged, trusted_keys=trusted(vault))
    assert "the vault's signature over the export does not verify" in against_vault.problems
    against_itself = verify_export(forged)  # even trusting the forger's key, the parts do not hold
    assert against_itself.key_source == "the file itself"
    assert "licences[0]: digest_mismatch" in against_itself.problems
    assert any(p.startswith("events[0]: ") for p in against_itself.problems)
    assert any(p.startswith("grants[") for p in against_itself.problems) or not bundle["grants"]


def test_a_read_still_within_its_mandates_deferral_is_not_exported(vault: Vault, http: TestClient) -> None:
    police_read(http, key="b")
    bundle = json.loads(download(vault, key="b"))["bundle"]
    entries = [json.loads(e["entry"]) for e in bundle["events"]]
    assert entries and not [e for e in entries if e.get("mandate")]
    assert all(e.get("owner") == bundle["owner"] for e in entries)


def test_the_verify_page_checks_an_export_file(vault: Vault) -> None:
    data = download(vault)
    counter = browser(vault, address="198.51.100.20")

    def upload(content: bytes) -> Any:
        return counter.post(
            "/verify/export",
            data={"csrf_token": page_token(counter, "/verify")},
            files={"export": ("my-data.json", content, "application/json")},
            headers={"Origin": vault.settings.public_url},
        )

    good = upload(data)
    assert good.status_code == 200 and 'data-verdict="export_ok"' in good.text
    bad = upload(_tampered(data, lambda b: b.update(owner=str(uuid.uuid4()))))
    assert bad.status_code == 200 and 'data-verdict="export_bad"' in bad.text
    assert upload(b"hello").status_code == 400
    assert re.search(r"不是本库的导出文件", upload(b"{}").text)


def test_each_events_proof_is_checked_against_the_vaults_checkpoint_note(vault: Vault, http: TestClient) -> None:
    import base64

    import nacl.signing

    from vault.audit import note
    from vault.portability.verify import check_proof

    housing_read(vault, http)
    bundle = json.loads(download(vault))["bundle"]
    event = next(e for e in bundle["events"] if e["proof"] and e["proof"]["path"])
    entry, proof, keys = event["entry"], event["proof"], trusted(vault)
    assert check_proof(entry, proof, keys) is None
    hashes = [base64.b64decode(h) for h in proof["path"]]
    moved = {**proof, "path": [note.b64(bytes([hashes[0][0] ^ 1]) + hashes[0][1:]), *proof["path"][1:]]}
    assert check_proof(entry, moved, keys) == "the entry is not in the tree the proof names"
    signed = note.parse_note(proof["checkpoint"])
    forger = nacl.signing.SigningKey.generate()
    origin = note.parse_checkpoint(signed.text).origin
    forged = note.Note(signed.text, (note.sign(signed.text, origin, forger),)).render()
    assert check_proof(entry, {**proof, "checkpoint": forged}, keys) == "the checkpoint is not signed by the vault"
    first = signed.signatures[0]
    broken = note.Signature(first.name, first.key_id, bytes([first.data[0] ^ 1]) + first.data[1:])
    garbled = note.Note(signed.text, (broken,)).render()
    assert check_proof(entry, {**proof, "checkpoint": garbled}, keys) == "a signature on the checkpoint does not verify"
    old = {k: v for k, v in proof.items() if k != "format"}
    assert check_proof(entry, old, keys) == "the proof is not in the access log's proof format"
