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


def test_production_requires_an_https_public_url() -> None:
    # without the check production ran on http, so its cookies went without Secure
    keys = {"VAULT_MODE": "production", "VAULT_MASTER_KEYS": "k1:" + "A" * 43 + "="}
    with pytest.raises(ConfigError, match="VAULT_PUBLIC_URL must be an https URL in production mode"):
        load_settings(keys)
    settings = load_settings({**keys, "VAULT_PUBLIC_URL": "https://vault.example"})
    assert settings.is_production and settings.secure_cookies


def test_trusted_proxies_default_to_none_and_parse_addresses_and_cidrs() -> None:
    assert load_settings({}).trusted_proxies == ()
    assert not load_settings({}).trusts_proxy("127.0.0.1")
    settings = load_settings({"VAULT_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1,::1"})
    assert [settings.trusts_proxy(a) for a in ("10.1.2.3", "192.0.2.1", "192.0.2.2", "::1", "junk", None)] == [
        True,
        True,
        False,
        True,
        False,
        False,
    ]
    with pytest.raises(ConfigError, match="VAULT_TRUSTED_PROXIES"):
        load_settings({"VAULT_TRUSTED_PROXIES": "10.0.0.0/8,proxy.example"})
