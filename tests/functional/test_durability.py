"""kill -9 under writes: every acknowledged write survives and the access log still verifies."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import threading
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is run from the checkout, not installed
from bench.processes import Server, free_port, server_env, vault_settings_env
from tests.oauth_helpers import details
from vault.audit import publishing
from vault.config import load_settings
from vault.consent.models import ConsentRequest
from vault.demo import PERSONS
from vault.wiring import build_vault

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]
AGENCY = ("traffic-police-vehicle-office", "demo-secret-traffic-police-vehicle-office")


def _writer(base: str, acknowledged: list[str], stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=5) as client:
        while not stop.is_set():
            try:
                response = client.post(
                    "/oauth/bc-authorize",
                    auth=AGENCY,
                    data={"login_hint": PERSONS[0].id_number, "authorization_details": details("vehicle-registration")},
                )
            except httpx.TransportError:
                return
            assert response.status_code < 500, response.text
            if response.status_code == 200:
                acknowledged.append(response.json()["auth_req_id"])


def test_acknowledged_writes_survive_kill_9_and_the_log_verifies(tmp_path: Path) -> None:
    data = tmp_path / "var"
    env = server_env(data, free_port())
    for args in (["db", "upgrade"], ["demo"]):
        subprocess.run([sys.executable, "-m", "vault.cli", *args], env=env, check=True, capture_output=True)
    acknowledged: list[str] = []
    rng = random.Random(20261127)
    server = Server(env, workers=1, start="serve")  # `vault serve` itself, started cold each time
    for _ in range(3):
        server.start()
        before, stop = len(acknowledged), threading.Event()
        writers = [threading.Thread(target=_writer, args=(server.base, acknowledged, stop)) for _ in range(3)]
        for w in writers:
            w.start()
        for _ in range(600):  # on a busy machine the first answers take a while: kill once writes flow
            if stop.wait(0.1) or len(acknowledged) > before:
                break
        stop.wait(rng.uniform(0.5, 2.0))
        server.kill()  # no shutdown, no last checkpoint: a power cut
        stop.set()
        for w in writers:
            w.join()
    assert len(acknowledged) > 10

    vault = build_vault(load_settings(vault_settings_env(env)))  # the same log (its origin) as the server's
    try:
        with vault.db.session() as session:
            stored = set(session.scalars(select(ConsentRequest.auth_req_hash)))
            missing = [a for a in acknowledged if hashlib.sha256(a.encode()).digest() not in stored]
            assert missing == []
        # the next leader integrates what the killed one left pending: committed events are never lost
        publishing.sequence_step(vault.audit, vault.db)
        report = vault.audit.verify(vault.db.engine, full=True)
        assert report.ok and report.pending == 0, report.problem
        with vault.db.session() as session:
            requested = vault.audit.size(session)
            assert requested >= len(acknowledged)  # every acknowledged request has its access event
    finally:
        vault.close()
