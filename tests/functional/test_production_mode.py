"""Production mode: no demo population or credentials, Secure __Host- cookies; proxies trusted only when named."""

from __future__ import annotations

import dataclasses

import pytest

from tests.webclient import browser, post
from vault.config import ConfigError, Mode
from vault.demo import CITIZEN_PASSWORD, STAFF_PASSWORD, banner, create_demo
from vault.serving import uvicorn_options
from vault.wiring import Vault


def production(vault: Vault) -> Vault:
    return dataclasses.replace(vault, settings=dataclasses.replace(vault.settings, mode=Mode.PRODUCTION))


def test_production_refuses_the_demo_population(demo_vault: Vault) -> None:
    with pytest.raises(ConfigError, match="production"):
        create_demo(production(demo_vault))


def test_the_production_banner_prints_no_credentials(demo_vault: Vault) -> None:
    shown = banner(production(demo_vault).settings)
    assert CITIZEN_PASSWORD not in shown and STAFF_PASSWORD not in shown and "demo-secret" not in shown
    assert CITIZEN_PASSWORD in banner(demo_vault.settings)  # development still shows them


def test_production_cookies_are_secure_and_host_prefixed(demo_vault: Vault) -> None:
    # without Settings.secure_cookies an http public URL gave plain cookies even in production
    client = browser(production(demo_vault))
    cookies = client.get("/login").headers.get_list("set-cookie")
    assert cookies and all("; Secure" in c and c.startswith("__Host-") for c in cookies), cookies


def test_forwarded_for_does_not_escape_address_throttling(demo_vault: Vault) -> None:
    # without client_address the server would take whatever X-Forwarded-For the client sent (as uvicorn did)
    client = browser(demo_vault, address="203.0.113.50")

    def attempt(n: int) -> int:
        form = {"login": f"nobody-{n}", "password": "guess"}
        return post(client, demo_vault, "/login", form, **{"X-Forwarded-For": f"198.51.100.{n}"}).status_code

    assert [attempt(n) for n in range(5)] == [200] * 5
    assert attempt(5) == 429


def test_serve_tells_uvicorn_to_ignore_forwarded_headers() -> None:
    # uvicorn's default trusts X-Forwarded-For from 127.0.0.1 and rewrites the client address with it
    assert uvicorn_options("info")["proxy_headers"] is False
