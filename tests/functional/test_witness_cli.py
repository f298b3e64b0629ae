"""End to end over HTTP: `vault witness serve` cosigns the vault's checkpoints, `vault audit verify` checks the
database against it, and a truncated database fails even after the operator re-signs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text

from tests.logtools import drop_guards, rebuild_tiles

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "vault.cli", *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"vault {' '.join(args)} failed: {result.stderr}")
    return result


def test_a_witness_over_http_cosigns_and_verify_holds_the_database_to_it(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    vault_env = {**base, "VAULT_DATA_DIR": str(tmp_path / "var"), "VAULT_LOG_LEVEL": "WARNING"}
    witness_dir, port = tmp_path / "witness", _free_port()
    witness_key = _cli(
        "witness", "init", "--dir", str(witness_dir), "--name", "witness.test/w1", env=base
    ).stdout.strip()
    _cli("db", "upgrade", env=vault_env)
    _cli("demo", env=vault_env)
    log_key = _cli("audit", "key", env=vault_env).stdout.strip()
    _cli("witness", "add-log", "--dir", str(witness_dir), log_key, env=base)
    server = subprocess.Popen(
        [sys.executable, "-m", "vault.cli", "witness", "serve", "--dir", str(witness_dir), "--port", str(port)],
        env=base,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(400):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/key").text.strip() == witness_key:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        env = {**vault_env, "VAULT_WITNESSES": f"http://127.0.0.1:{port} {witness_key}"}
        signed = _cli("audit", "checkpoint", env=env).stdout
        assert "\u2014 witness.test/w1 " in signed
        verified = _cli("audit", "verify", "--full", env=env)
        assert verified.stdout.startswith("ok:") and "witness witness.test/w1 at" in verified.stdout

        engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'vault.db'}")
        drop_guards(engine)
        with engine.begin() as conn:  # the newest events go, with every checkpoint; the operator re-signs
            size = conn.execute(text("SELECT max(leaf_index) FROM audit_events")).scalar()
            conn.execute(text("DELETE FROM audit_events WHERE leaf_index >= :n"), {"n": size - 3})
            conn.execute(text("DELETE FROM audit_checkpoints"))
            conn.execute(text("DELETE FROM audit_cosignatures"))
        rebuild_tiles(engine)
        engine.dispose()
        (tmp_path / "var" / "log" / "checkpoint").unlink()
        resigned = _cli("audit", "checkpoint", env=vault_env).stdout  # signed by the vault's own key again
        assert resigned.splitlines()[1] == str(size - 3)
        assert _cli("audit", "verify", "--full", env=vault_env).stdout.startswith("ok:")  # the database alone
        failed = _cli("audit", "verify", "--full", env=env, check=False)
        assert failed.returncode == 1 and "witness witness.test/w1" in failed.stderr, failed.stderr
        assert "events were removed" in failed.stderr
    finally:
        server.kill()
        server.wait()
