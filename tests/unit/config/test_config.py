"""Settings: defaults, and a bad value stops start-up with a message naming the variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vault.config import VARIABLES, ConfigError, Mode, load_settings

README = Path(__file__).resolve().parents[3] / "README.md"


def test_defaults(tmp_path: Path) -> None:
    s = load_settings({"VAULT_DATA_DIR": str(tmp_path)})
    assert s.mode is Mode.DEVELOPMENT and (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.database_url == f"sqlite:///{tmp_path / 'vault.db'}"
    assert s.public_url == "http://127.0.0.1:8000"
    assert s.timezone == "Asia/Shanghai"


def test_a_known_time_zone_is_taken() -> None:
    assert load_settings({"VAULT_TIMEZONE": "Europe/Berlin"}).timezone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VAULT_PORT", "eighty"),
        ("VAULT_PORT", "70000"),
        ("VAULT_MODE", "staging"),
        ("VAULT_DATABASE_URL", "mysql://x"),
        ("VAULT_PUBLIC_URL", "ftp://vault"),
        ("VAULT_LOG_LEVEL", "LOUD"),
        ("VAULT_ERASURE_GRACE_DAYS", "-1"),
        ("VAULT_POLICIES_DIR", "/nonexistent"),
        ("VAULT_TYPO", "1"),
        ("VAULT_TIMEZONE", "Mars/Olympus_Mons"),
        ("VAULT_TIMEZONE", "../../etc/passwd"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_production_requires_master_keys_from_the_environment() -> None:
    with pytest.raises(ConfigError, match="VAULT_MASTER_KEYS"):
        load_settings({"VAULT_MODE": "production"})


def test_postgres_url_gets_the_psycopg_driver() -> None:
    s = load_settings({"VAULT_DATABASE_URL": "postgresql://postgres@127.0.0.1/db"})
    assert s.database_url == "postgresql+psycopg://postgres@127.0.0.1/db"


def test_readme_documents_every_variable() -> None:
    documented = set(re.findall(r"`(VAULT_[A-Z_]+)`", README.read_text()))
    assert set(VARIABLES) <= documented


def test_witnesses_are_validated_and_parsed() -> None:
    from vault.audit import note

    key = note.Verifier("witness.test/w1", note.COSIGNATURE, b"\x05" * 32).vkey
    other = note.Verifier("witness.test/w2", note.COSIGNATURE, b"\x06" * 32).vkey
    s = load_settings({"VAULT_WITNESSES": f"http://127.0.0.1:8090 {key}, https://w2.test/ {other}"})
    assert [w.url for w in s.witnesses] == ["http://127.0.0.1:8090", "https://w2.test"]
    for bad, says in [
        ("http://127.0.0.1:8090", "<url> <verifier key>"),
        (f"ftp://w.test {key}", "http(s)"),
        ("http://w.test witness+00000000+AAAA", "verifier key"),
        (f"http://w.test {key[:-2]}xx", "verifier key"),
        (f"http://a.test {key}, http://b.test {key}", "same name"),
    ]:
        with pytest.raises(ConfigError, match="VAULT_WITNESSES") as raised:
            load_settings({"VAULT_WITNESSES": bad})
        assert says in str(raised.value), (bad, str(raised.value))
