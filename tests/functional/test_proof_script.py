"""The independent checker in docs/audit.md verifies an owner's proof from the web app, with only hashlib and
PyNaCl, and refuses a proof whose entry, path or cosignature was tampered with."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.functional.test_citizen_pages import events_of, housing_read, person, signed_in
from tests.logtools import attach, make_witness
from tests.oauth_helpers import BASE
from tests.webclient import browser
from vault.audit import merkle, publishing
from vault.wiring import Vault

DOCS = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


@pytest.fixture
def vault(demo_vault: Vault, tmp_path: Path) -> Vault:
    attach(demo_vault, make_witness(tmp_path / "witness"))
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(browser(vault).app, base_url=BASE) as client:
        yield client


def _script(tmp_path: Path) -> Path:
    text = DOCS.read_text()
    found = re.search(r"<!-- check_proof.py begins -->\n```python\n(.*?)```\n<!-- check_proof.py ends -->", text, re.S)
    assert found, "docs/audit.md has no check_proof.py block"
    imports = set(re.findall(r"^(?:from|import) (\w+)", found.group(1), re.M))
    assert imports <= {"base64", "hashlib", "json", "struct", "sys", "nacl"}, imports
    path = tmp_path / "check_proof.py"
    path.write_text(found.group(1))
    return path


def _run(script: Path, proof: dict[str, object], tmp_path: Path, *keys: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    return subprocess.run(
        [sys.executable, "-I", str(script), str(path), *keys], capture_output=True, text=True, timeout=60, check=False
    )


def test_an_owners_proof_checks_out_with_the_documented_script(vault: Vault, http: TestClient, tmp_path: Path) -> None:
    housing_read(vault, http)
    publishing.sequence_step(vault.audit, vault.db)
    assert publishing.witness_step(vault.audit, vault.db) == 1
    read = next(e for e in events_of(vault, person(vault)) if e.action == "fields.released")
    proof = signed_in(vault).get(f"/activity/{read.id}/proof.json").json()
    log_key = http.get("/log/key").text.strip()
    [witness_key] = [w.verifier.vkey for w in vault.audit.witnesses]
    script = _script(tmp_path)

    good = _run(script, proof, tmp_path, log_key, witness_key)
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"event {read.id} (fields.released by agency:" in good.stdout
    assert re.search(r"^ok +the checkpoint is cosigned by witness.test/w1$", good.stdout, re.M), good.stdout

    entry = proof["entry"].replace('"actor":"agency:', '"actor":"agency:x-')
    forged_entry = dict(proof, entry=entry, leaf_hash=base64.b64encode(merkle.leaf_hash(entry.encode())).decode())
    assert entry != proof["entry"]
    assert _run(script, forged_entry, tmp_path, log_key, witness_key).returncode == 1
    forged_path = dict(proof, path=[base64.b64encode(b"\x00" * 32).decode(), *proof["path"][1:]])
    assert _run(script, forged_path, tmp_path, log_key, witness_key).returncode == 1
    uncosigned = dict(proof, checkpoint=proof["checkpoint"].rsplit("\u2014 witness.test/w1", 1)[0])
    assert _run(script, uncosigned, tmp_path, log_key, witness_key).returncode == 1
    assert _run(script, proof, tmp_path, log_key).returncode == 0  # without a witness key: only the log's signature
