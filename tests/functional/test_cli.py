"""The operator's command line, run as a newcomer would: a real process, a fresh data directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from vault.demo import ENTERPRISES, PERSONS
from vault.owners.identifiers import synthetic_resident_id

CANARY_NAME = "金丝雀测试员"
CANARY_ID = synthetic_resident_id("110101", date(1999, 9, 9), 777)


def vault_cli(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    env.update(VAULT_DATA_DIR=str(data_dir), VAULT_LOG_LEVEL="DEBUG")
    result = subprocess.run(
        [sys.executable, "-m", "vault.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"vault {' '.join(args)} failed: {result.stderr}")
    return result


def _files_containing(root: Path, needles: list[bytes]) -> list[tuple[str, str]]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [(str(path), n.decode()) for n in needles if n in data]
    return found


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "var"
    vault_cli(data, "db", "upgrade")
    return data


def test_canary_owner_never_appears_in_plaintext_under_the_data_dir(data_dir: Path) -> None:
    added = vault_cli(data_dir, "owners", "add-person", "--id-number", CANARY_ID, "--name", CANARY_NAME)
    listing = vault_cli(data_dir, "owners", "list")
    bad = vault_cli(
        data_dir, "owners", "add-person", "--id-number", CANARY_ID[:-1] + "0", "--name", CANARY_NAME, check=False
    )
    assert bad.returncode == 2 and "check character" in bad.stderr
    outputs = added.stdout + added.stderr + listing.stdout + listing.stderr + bad.stdout + bad.stderr
    assert CANARY_ID not in outputs and CANARY_NAME not in outputs
    assert CANARY_ID[:3] + "*" * 11 + CANARY_ID[-4:] in listing.stdout
    assert (data_dir / "logs" / "vault.log").exists()
    needles = [CANARY_NAME.encode(), CANARY_ID.encode(), CANARY_ID[:-1].encode()]
    assert _files_containing(data_dir, needles) == []


def test_demo_population_never_appears_in_plaintext(data_dir: Path) -> None:
    vault_cli(data_dir, "demo")
    assert "demo population" in vault_cli(data_dir, "demo", "--if-empty").stdout
    needles = [p.name.encode() for p in PERSONS] + [p.id_number.encode() for p in PERSONS]
    needles += [e.name.encode() for e in ENTERPRISES] + [e.credit_code.encode() for e in ENTERPRISES]
    assert _files_containing(data_dir, needles) == []


def test_the_demo_comes_with_sixty_days_of_history_that_verifies(data_dir: Path) -> None:
    started = time.monotonic()
    out = vault_cli(data_dir, "demo").stdout
    elapsed = time.monotonic() - started
    assert "60 days of history" in out
    assert vault_cli(data_dir, "audit", "verify").stdout.startswith("ok:")
    assert elapsed < 60, f"vault demo took {elapsed:.1f} s"  # a few seconds on an idle machine
    assert "left as it is" in vault_cli(data_dir, "demo", "--if-empty").stdout


def test_rotate_then_status_shows_every_dek_on_the_new_key(data_dir: Path) -> None:
    vault_cli(data_dir, "demo")
    out = vault_cli(data_dir, "keys", "rotate").stdout
    new = out.split("new primary master key ")[1].split()[0]
    old = out.split("(was ")[1].split(")")[0]
    status = vault_cli(data_dir, "keys", "status").stdout
    assert f"{new}: 5 owner data keys" in status
    assert f"{old}: 0 owner data keys, 0 system keys" in status
    assert vault_cli(data_dir, "audit", "verify").stdout.startswith("ok:")
    vault_cli(data_dir, "keys", "retire", old)
    assert old not in vault_cli(data_dir, "keys", "status").stdout


def test_retiring_a_key_in_use_is_refused(data_dir: Path) -> None:
    vault_cli(data_dir, "demo")
    first = vault_cli(data_dir, "keys", "status").stdout.split("primary master key: ")[1].split()[0]
    vault_cli(data_dir, "keys", "rotate", "--rewrap-only")
    refused = vault_cli(data_dir, "keys", "retire", first, check=False)
    assert refused.returncode == 2 and re.search(r"still wraps \d+ keys", refused.stderr)


def _wrapped_keys(data_dir: Path) -> list[bytes]:
    import sqlite3

    with sqlite3.connect(data_dir / "vault.db") as db:
        return [row[0] for row in db.execute("SELECT wrapped FROM owner_keys WHERE wrapped IS NOT NULL")]


def test_erase_now_makes_the_owner_unreadable_and_is_logged(data_dir: Path) -> None:
    vault_cli(data_dir, "demo")
    before = _wrapped_keys(data_dir)
    erased = vault_cli(data_dir, "owners", "erase", PERSONS[0].id_number, "--now").stdout
    assert "erased" in erased
    listing = vault_cli(data_dir, "owners", "list").stdout
    assert listing.count("(erased)") == 1 and listing.count("active") == 4
    destroyed = set(before) - set(_wrapped_keys(data_dir))
    assert len(destroyed) == 1
    assert _files_containing(data_dir, list(destroyed)) == []  # not in the database, its WAL or free pages
    login = vault_cli(data_dir, "owners", "list")
    assert login.returncode == 0
    assert vault_cli(data_dir, "audit", "verify").stdout.startswith("ok:")
    later = vault_cli(data_dir, "owners", "erase", PERSONS[1].id_number).stdout
    assert "will be erased after" in later


def test_unmigrated_database_is_refused_with_the_command_that_fixes_it(tmp_path: Path) -> None:
    result = vault_cli(tmp_path / "fresh", "owners", "list", check=False)
    assert result.returncode == 2 and "vault db upgrade" in result.stderr


def test_bad_setting_names_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    env.update(VAULT_DATA_DIR=str(tmp_path), VAULT_PORT="eighty")
    result = subprocess.run(
        [sys.executable, "-m", "vault.cli", "owners", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "VAULT_PORT" in result.stderr


def test_demo_licences_list_present_verify_and_audit(data_dir: Path, tmp_path: Path) -> None:
    assert "11 licences" in vault_cli(data_dir, "demo").stdout
    assert vault_cli(data_dir, "audit", "verify").stdout.startswith("ok:")
    listing = vault_cli(data_dir, "licences", "list", "--owner", PERSONS[0].id_number).stdout
    assert PERSONS[0].name not in listing
    types = sorted(line.split()[1] for line in listing.splitlines())
    assert types == ["driving-licence", "household-register", "resident-id-card", "vehicle-licence"]
    licence = next(line.split()[0] for line in listing.splitlines() if "driving-licence" in line)
    shown = vault_cli(data_dir, "licences", "present", licence, "--fields", "name,class").stdout.strip()
    file = tmp_path / "presented.txt"
    file.write_text(shown)
    verified = vault_cli(data_dir, "licences", "verify", str(file)).stdout
    assert "genuine and in force" in verified and "C1" in verified and "Licence number" not in verified
    vault_cli(data_dir, "licences", "revoke", licence, "--reason", "test")
    refused = vault_cli(data_dir, "licences", "verify", str(file), check=False)
    assert refused.returncode == 1 and "revoked" in refused.stdout
    illegal = vault_cli(data_dir, "licences", "reinstate", licence, check=False)
    assert illegal.returncode == 2 and "that is revoked" in illegal.stderr
    assert vault_cli(data_dir, "audit", "verify").stdout.startswith("ok:")
