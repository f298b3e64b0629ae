"""The operator's command line, run as a newcomer would: a real process, a fresh data directory."""

from __future__ import annotations

import os
import re
import shutil
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


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory as `vault db upgrade` then `vault demo` leave it, made once by the command line."""
    data = tmp_path_factory.mktemp("cli-demo") / "var"
    vault_cli(data, "db", "upgrade")
    vault_cli(data, "demo")
    return data


@pytest.fixture
def demo_dir(demo_template: Path, tmp_path: Path) -> Path:
    """A copy of the demo data directory for a test that starts from the demo (the tests of `vault demo` itself
    run it in a fresh directory)."""
    data = tmp_path / "var"
    shutil.copytree(demo_template, data)
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


def test_rotate_then_status_shows_every_dek_on_the_new_key(demo_dir: Path) -> None:
    out = vault_cli(demo_dir, "keys", "rotate").stdout
    new = out.split("new primary master key ")[1].split()[0]
    old = out.split("(was ")[1].split(")")[0]
    status = vault_cli(demo_dir, "keys", "status").stdout
    assert f"{new}: 5 owner data keys" in status
    assert f"{old}: 0 owner data keys, 0 system keys" in status
    assert vault_cli(demo_dir, "audit", "verify").stdout.startswith("ok:")
    vault_cli(demo_dir, "keys", "retire", old)
    assert old not in vault_cli(demo_dir, "keys", "status").stdout


def test_retiring_a_key_in_use_is_refused(demo_dir: Path) -> None:
    first = vault_cli(demo_dir, "keys", "status").stdout.split("primary master key: ")[1].split()[0]
    vault_cli(demo_dir, "keys", "rotate", "--rewrap-only")
    refused = vault_cli(demo_dir, "keys", "retire", first, check=False)
    assert refused.returncode == 2 and re.search(r"still wraps \d+ keys", refused.stderr)


def _wrapped_keys(data_dir: Path) -> list[bytes]:
    import sqlite3

    with sqlite3.connect(data_dir / "vault.db") as db:
        return [row[0] for row in db.execute("SELECT wrapped FROM owner_keys WHERE wrapped IS NOT NULL")]


def test_erase_now_makes_the_owner_unreadable_and_is_logged(demo_dir: Path) -> None:
    before = _wrapped_keys(demo_dir)
    erased = vault_cli(demo_dir, "owners", "erase", PERSONS[0].id_number, "--now").stdout
    assert "erased" in erased
    listing = vault_cli(demo_dir, "owners", "list").stdout
    assert listing.count("(erased)") == 1 and listing.count("active") == 4
    destroyed = set(before) - set(_wrapped_keys(demo_dir))
    assert len(destroyed) == 1
    assert _files_containing(demo_dir, list(destroyed)) == []  # not in the database, its WAL or free pages
    login = vault_cli(demo_dir, "owners", "list")
    assert login.returncode == 0
    assert vault_cli(demo_dir, "audit", "verify").stdout.startswith("ok:")
    later = vault_cli(demo_dir, "owners", "erase", PERSONS[1].id_number).stdout
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


def test_a_directory_without_a_vault_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    # without _refuse_missing_vault a mistyped VAULT_DATA_DIR silently became a second, empty vault
    wrong = tmp_path / "typo"
    result = vault_cli(wrong, "owners", "list", check=False)
    assert result.returncode == 2 and "there is no vault here" in result.stderr and "VAULT_DATA_DIR" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (wrong / "master.keys").exists() and not (wrong / "vault.db").exists()
    assert vault_cli(wrong, "db", "upgrade").returncode == 0  # asked to initialise: it does
    assert vault_cli(wrong, "owners", "list").returncode == 0


def test_presenting_a_licence_not_in_force_warns_and_needs_force(demo_dir: Path) -> None:
    # without the state check a suspended licence was presented silently, exit status 0
    listing = vault_cli(demo_dir, "licences", "list", "--owner", PERSONS[0].id_number).stdout
    licence = next(line.split()[0] for line in listing.splitlines() if "driving-licence" in line)
    vault_cli(demo_dir, "licences", "suspend", licence, "--reason", "test")
    refused = vault_cli(demo_dir, "licences", "present", licence, "--fields", "name", check=False)
    assert refused.returncode != 0 and refused.stdout == ""
    assert "suspended" in refused.stderr and "--force" in refused.stderr
    forced = vault_cli(demo_dir, "licences", "present", licence, "--fields", "name", "--force")
    assert forced.stdout.count("~") == 2 and "suspended" in forced.stderr


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (("licences", "present", "--fields", "colour"), "the licence has no field 'colour'"),
        (("licences", "present", "not-a-licence", "--fields", "name"), "'not-a-licence' is not a licence id"),
        (("licences", "suspend", "12", "--reason", "x"), "'12' is not a licence id"),
    ],
)
def test_errors_are_sentences_not_python(data_dir: Path, args: tuple[str, ...], sentence: str) -> None:
    # without UnknownField's message and _licence_id these printed "error: colour" and a UUID parser's complaint
    if "--fields" in args and args[2] == "--fields":
        vault_cli(data_dir, "demo")
        listing = vault_cli(data_dir, "licences", "list", "--owner", PERSONS[0].id_number).stdout
        args = (*args[:2], listing.split()[0], *args[2:])
    result = vault_cli(data_dir, *args, check=False)
    assert result.returncode == 2 and sentence in result.stderr and "Traceback" not in result.stderr


def test_an_unexpected_failure_is_a_sentence_with_a_correlation_id(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vault import cli

    def broken(*args: object) -> str:
        raise RuntimeError("internal detail")

    monkeypatch.setenv("VAULT_DATA_DIR", str(data_dir))
    monkeypatch.setattr(cli, "current_revision", broken)
    assert cli.main(["db", "status"]) == 1
    err = capsys.readouterr().err
    assert "failed unexpectedly" in err and "internal detail" not in err and "Traceback" not in err
    error_id = err.strip().rsplit(" ", 1)[-1]
    assert error_id in (data_dir / "logs" / "vault.log").read_text()


def test_agencies_list_verbose_shows_what_an_integrator_needs(data_dir: Path) -> None:
    vault_cli(data_dir, "db", "upgrade")
    vault_cli(data_dir, "demo")
    shown = vault_cli(data_dir, "agencies", "list", "--verbose").stdout
    assert "redirect URIs: http://127.0.0.1:8001/callback" in shown
    assert "service items: vehicle-registration" in shown
    lines = shown.split("traffic-police-counter", 1)[1].splitlines()[1:]
    counter = "\n".join(line for line in lines[: next(i for i, x in enumerate(lines) if not x.startswith(" "))])
    assert "client_credentials" in counter and "consent:request" in counter
