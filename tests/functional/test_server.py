"""The server as `make run` starts it: a real process on a free port, answering health and readiness."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from vault.web.app import create_app
from vault.wiring import Vault


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_prints_where_to_go_and_answers_health(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    env.update(VAULT_DATA_DIR=str(tmp_path / "var"), VAULT_PORT=str(port), VAULT_LOG_LEVEL="WARNING")
    for args in (["db", "upgrade"], ["demo", "--if-empty"]):
        subprocess.run([sys.executable, "-m", "vault.cli", *args], env=env, check=True, capture_output=True)
    command = [str(Path(sys.executable).parent / "vault"), "serve"]  # the console script, as `make run` calls it
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                health = httpx.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not start")
        ready = httpx.get(f"{base}/readyz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "migrations": True, "keys": True}
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert base in output and "demo-citizen" in output and "compliance" in output


def test_readyz_says_not_ready_when_the_schema_is_behind(vault: Vault) -> None:
    from sqlalchemy import text

    client = TestClient(create_app(vault=vault))
    assert client.get("/readyz").status_code == 200
    with vault.db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'old'"))
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["checks"]["migrations"] is False


def test_serving_signs_checkpoints_and_expires_licences(vault: Vault) -> None:
    from datetime import date, timedelta

    from tests import factories

    with vault.db.session() as session:
        owner = factories.person(vault, session)
        licence = factories.driving_licence(vault, session, owner, valid_until=str(date.today() - timedelta(days=1)))
    with TestClient(create_app(vault=vault)) as client:
        assert client.get("/healthz").status_code == 200
        # the first maintenance round runs as soon as the app is the leader; wait for it rather than for a time
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with vault.db.session() as session:
                if vault.audit.latest_checkpoint(session) is not None:
                    break
            time.sleep(0.05)
    with vault.db.session() as session:
        assert vault.licences.get(session, licence.id).state == "expired"
        latest = vault.audit.latest_checkpoint(session)
        assert latest is not None and latest.tree_size == vault.audit.size(session)
        assert vault.audit.verify(session).ok
