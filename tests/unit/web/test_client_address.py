"""Which address sign-in throttling counts: X-Forwarded-For only from a trusted proxy."""

from __future__ import annotations

import pytest

from vault.config import load_settings
from vault.web.throttle import client_address

TRUSTING = load_settings({"VAULT_TRUSTED_PROXIES": "10.0.0.0/8"})
DEFAULT = load_settings({})


@pytest.mark.parametrize(
    ("peer", "forwarded", "settings", "expected"),
    [
        ("203.0.113.7", "198.51.100.1", DEFAULT, "203.0.113.7"),  # nobody is trusted by default
        ("127.0.0.1", "198.51.100.1", DEFAULT, "127.0.0.1"),  # not even the loopback (uvicorn's default)
        ("203.0.113.7", "198.51.100.1", TRUSTING, "203.0.113.7"),  # an untrusted peer's header is ignored
        ("10.0.0.5", "198.51.100.1", TRUSTING, "198.51.100.1"),
        ("10.0.0.5", "6.6.6.6, 198.51.100.1", TRUSTING, "198.51.100.1"),  # left of the proxy's entry: forged
        ("10.0.0.5", "198.51.100.1, 10.0.0.9", TRUSTING, "198.51.100.1"),  # a chain of trusted proxies
        ("10.0.0.5", None, TRUSTING, "10.0.0.5"),
        (None, "198.51.100.1", TRUSTING, "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: str | None, settings: object, expected: str) -> None:
    assert client_address(peer, forwarded, settings) == expected  # type: ignore[arg-type]
