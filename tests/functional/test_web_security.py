"""The checklist's "Web pages" lines (ASVS 5 §3, §6, §7), through HTTP: CSRF and Origin, headers, cookies, escaping."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2 as httpx
import pytest
from starlette.requests import Request
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.conftest import settings_for
from tests.webclient import (
    Clock,
    browser,
    citizen,
    cookie_attributes,
    page_token,
    post,
    session_cookies,
    sign_in,
    token_in,
)
from vault.db import make_engine, upgrade
from vault.web.app import create_app
from vault.wiring import Vault, build_vault

SIGNED_IN_POSTS = [("/logout", {}), ("/acting-for", {"owner": ""}), ("/lang", {"lang": "en", "next": "/"})]


def _signed_in(vault: Vault) -> TestClient:
    client = browser(vault)
    assert sign_in(client, vault, citizen(vault).login).status_code == 303
    return client


def _still_signed_in(client: TestClient) -> bool:
    return client.get("/").status_code == 200


# CSRF token and Origin on every state-changing POST


@pytest.mark.parametrize(("path", "data"), SIGNED_IN_POSTS)
def test_a_post_without_the_csrf_token_is_refused(vault: Vault, path: str, data: dict[str, str]) -> None:
    client = _signed_in(vault)
    response = client.post(path, data=data, headers={"Origin": vault.settings.public_url})
    assert response.status_code == 403 and "表单已过期，或并非从本网站提交" in response.text
    assert _still_signed_in(client)


@pytest.mark.parametrize(("path", "data"), SIGNED_IN_POSTS)
def test_a_post_with_a_wrong_csrf_token_is_refused(vault: Vault, path: str, data: dict[str, str]) -> None:
    client = _signed_in(vault)
    other = _signed_in(vault)
    for token in ("x" * 43, page_token(other, "/"), page_token(browser(vault), "/login")):
        response = client.post(path, data={"csrf_token": token, **data}, headers={"Origin": vault.settings.public_url})
        assert response.status_code == 403, token
    assert _still_signed_in(client)


@pytest.mark.parametrize(("path", "data"), SIGNED_IN_POSTS)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://evil.example"},
        {"Origin": "http://127.0.0.1:8000.evil.example"},
        {"Origin": "http://127.0.0.1:8001"},
        {"Origin": "https://127.0.0.1:8000"},
        {"Origin": "null"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null", "Sec-Fetch-Site": "same-site"},
        {"Referer": "https://evil.example/page"},
        {"Origin": "https://evil.example", "Referer": "http://127.0.0.1:8000/"},
    ],
)
def test_a_post_from_another_origin_is_refused_even_with_the_token(
    vault: Vault, path: str, data: dict[str, str], headers: dict[str, str]
) -> None:
    client = _signed_in(vault)
    token = page_token(client, "/")
    response = client.post(path, data={"csrf_token": token, **data}, headers=headers)
    assert response.status_code == 403 and "并非从本网站的页面提交" in response.text
    assert _still_signed_in(client)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://127.0.0.1:8000"},
        {"Origin": "HTTP://127.0.0.1:8000"},
        {"Referer": "http://127.0.0.1:8000/some/page?x=1"},
        # what browsers send for our own forms under Referrer-Policy: no-referrer
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_a_post_from_our_own_pages_is_accepted(vault: Vault, headers: dict[str, str]) -> None:
    client = _signed_in(vault)
    response = client.post("/logout", data={"csrf_token": page_token(client, "/")}, headers=headers)
    assert response.status_code == 303 and not _still_signed_in(client)


def test_the_sign_in_form_is_protected_too(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    person = citizen(vault)
    form = {"login": person.login, "password": "correct horse battery"}
    origin = {"Origin": vault.settings.public_url}
    client = browser(vault)
    assert client.post("/login", data=form, headers=origin).status_code == 403  # no token at all
    token = page_token(client)
    assert client.post("/login", data={"csrf_token": token, **form}).status_code == 403  # no Origin
    stranger = browser(vault)  # another browser: the token is bound to the first one's cookie
    stranger.get("/login")
    assert stranger.post("/login", data={"csrf_token": token, **form}, headers=origin).status_code == 403
    clock = Clock(monkeypatch)
    clock.advance(hours=2, minutes=1)  # pre-session tokens last two hours
    assert client.post("/login", data={"csrf_token": token, **form}, headers=origin).status_code == 403
    clock.advance(hours=-2)
    assert client.post("/login", data={"csrf_token": token, **form}, headers=origin).status_code == 303


# headers on every page


def _pages(vault: Vault) -> dict[str, httpx.Response]:
    anonymous = browser(vault)
    client = _signed_in(vault)
    return {
        "login": anonymous.get("/login"),
        "home": client.get("/"),
        "logout": client.get("/logout"),
        "404": client.get("/no/such/page"),
        "anonymous 404": anonymous.get("/no/such/page"),
        "403": client.post("/acting-for", data={}, headers={"Origin": "https://evil.example"}),
        "405": anonymous.put("/login"),
        "redirect": anonymous.get("/"),
        "stylesheet": anonymous.get("/static/app.css"),
        "health": anonymous.get("/healthz"),
    }


def test_security_headers_on_every_response(vault: Vault) -> None:
    nonces = set()
    pages = _pages(vault)
    for name, response in pages.items():
        headers = response.headers
        csp = headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]{22,})'", directives["script-src"])
        assert nonce, name
        nonces.add(nonce.group(1))
        assert directives["default-src"] == "'none'", name
        assert directives["style-src"] == f"'self' 'nonce-{nonce.group(1)}'", name
        assert directives["frame-ancestors"] == "'none'", name
        assert directives["object-src"] == "'none'" and directives["base-uri"] == "'none'", name
        assert directives["form-action"] == "'self'", name
        assert headers["x-frame-options"] == "DENY", name
        assert headers["referrer-policy"] == "no-referrer", name
        assert headers["x-content-type-options"] == "nosniff", name
        assert headers["cross-origin-opener-policy"] == "same-origin", name
        assert "camera=()" in headers["permissions-policy"], name
        if headers.get("content-type", "").startswith("text/html"):
            assert headers["cache-control"] == "no-store", name
    assert len(nonces) == len(pages), "a fresh nonce per response"


def test_no_third_party_resources(vault: Vault) -> None:
    for name, response in _pages(vault).items():
        if not response.headers.get("content-type", "").startswith("text/html"):
            continue
        for attribute, url in re.findall(r'\b(src|href|action)="([^"]*)"', response.text):
            assert url.startswith(("/", "#")) and not url.startswith("//"), (name, attribute, url)
        assert "@import" not in response.text and "url(http" not in response.text
    css = browser(vault).get("/static/app.css").text
    assert "http" not in css and "@import" not in css and "@font-face" not in css


def test_an_unexpected_error_page_carries_the_headers_too(vault: Vault) -> None:
    app = create_app(vault=vault)

    async def boom(request: Request) -> None:
        raise RuntimeError("a bug")

    app.router.routes.append(Route("/boom", boom))
    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500 and "a bug" not in response.text
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


# cookies


def _https_vault(tmp_path: Path, database_url: str) -> Vault:
    settings = settings_for(tmp_path, database_url, VAULT_PUBLIC_URL="https://vault.example")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    return build_vault(settings)


def test_cookies_over_https_are_host_prefixed_and_secure(tmp_path: Path, database_url: str) -> None:
    vault = _https_vault(tmp_path, database_url)
    try:
        person = citizen(vault)
        client = browser(vault)
        login_page = client.get("/login")
        (pre,) = login_page.headers.get_list("set-cookie")
        name, _value, attributes = cookie_attributes(pre)
        assert name == "__Host-vault-pre"
        assert {"secure", "httponly", "samesite=lax", "path=/"} <= attributes
        assert not any(a.startswith("domain") for a in attributes)
        assert login_page.headers["strict-transport-security"].startswith("max-age=")
        response = sign_in(client, vault, person.login)
        assert response.status_code == 303
        (cookie,) = session_cookies(response)
        name, value, attributes = cookie_attributes(cookie)
        assert name == "__Host-vault" and len(value) >= 43
        assert {"secure", "httponly", "samesite=lax", "path=/"} <= attributes
        assert not any(a.startswith("domain") for a in attributes)
        assert client.get("/").status_code == 200
        language = post(client, vault, "/lang", {"lang": "en"}, form_page="/")
        lang_cookie = next(c for c in language.headers.get_list("set-cookie") if c.startswith("lang="))
        assert "secure" in cookie_attributes(lang_cookie)[2]
    finally:
        vault.close()


def test_cookies_over_http_use_plain_names(vault: Vault) -> None:
    (pre,) = browser(vault).get("/login").headers.get_list("set-cookie")
    name, _value, attributes = cookie_attributes(pre)
    assert name == "vault_pre" and "secure" not in attributes and {"httponly", "samesite=lax"} <= attributes


# escaping


def test_names_render_inert(vault: Vault) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    person = citizen(vault, name="测试居民", enterprises=(f"{hostile}有限公司",))
    client = browser(vault)
    sign_in(client, vault, person.login)
    home = client.get("/").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;有限公司" in home
    assert "<script" not in home and "<img" not in home


def test_a_login_name_echoed_back_renders_inert(vault: Vault) -> None:
    response = sign_in(browser(vault), vault, '"><script>alert(1)</script>', "guess")
    assert response.status_code == 200
    assert "<script" not in response.text and "&#34;&gt;&lt;script&gt;" in response.text
    assert token_in(response.text)
