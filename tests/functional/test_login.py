"""Signing in and out through HTTP (ASVS 5 §6, §7): sessions, timeouts, throttling, fixation, next=, languages."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tests.webclient import (
    PASSWORD,
    Clock,
    browser,
    citizen,
    cookie_attributes,
    post,
    session_cookies,
    sign_in,
    staff,
)
from vault.web.models import LoginAttempt, WebSession
from vault.wiring import Vault


def _sessions(vault: Vault) -> int:
    with vault.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(WebSession)) or 0)


def test_a_citizen_signs_in_and_sees_their_role_and_enterprises(vault: Vault) -> None:
    person = citizen(vault, name="测试居民甲", enterprises=("测试运输有限公司",))
    client = browser(vault)
    assert client.get("/").headers["location"] == "/login"
    response = sign_in(client, vault, person.login)
    assert response.status_code == 303 and response.headers["location"] == "/"
    (cookie,) = session_cookies(response)
    name, value, attributes = cookie_attributes(cookie)
    # over plain http (development) a __Host- cookie cannot be set, so the plain name is used, without Secure
    assert name == "vault_session" and len(value) >= 43
    assert {"httponly", "samesite=lax", "path=/"} <= attributes and "secure" not in attributes
    home = client.get("/")
    assert home.status_code == 200
    assert "测试居民甲" in home.text and "居民" in home.text and "测试运输有限公司" in home.text
    assert str(person.enterprises[0].id) in home.text


def test_staff_land_on_the_console(vault: Vault) -> None:
    client = browser(vault)
    response = sign_in(client, vault, staff(vault))
    assert response.status_code == 303 and response.headers["location"] == "/console"
    assert "合规工作人员" in client.get("/").text


def test_acting_for_an_enterprise_the_person_represents(vault: Vault) -> None:
    person = citizen(vault, enterprises=("测试科技有限公司",))
    other = citizen(vault, enterprises=("别人的有限公司",))
    client = browser(vault)
    sign_in(client, vault, person.login)
    enterprise = person.enterprises[0]
    response = post(client, vault, "/acting-for", {"owner": str(enterprise.id)}, form_page="/")
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert re.search(rf'value="{enterprise.id}" checked', client.get("/").text)
    refused = post(client, vault, "/acting-for", {"owner": str(other.enterprises[0].id)}, form_page="/")
    assert refused.status_code == 403 and "您无权代表该企业" in refused.text
    assert post(client, vault, "/acting-for", {"owner": "not-an-id"}, form_page="/").status_code == 403
    assert post(client, vault, "/acting-for", {"owner": ""}, form_page="/").status_code == 303
    assert re.search(r'value="" checked', client.get("/").text)


def test_unknown_user_and_wrong_password_look_alike(vault: Vault) -> None:
    person = citizen(vault)
    unknown = "11010119900101999X"
    wrong_password = sign_in(browser(vault), vault, person.login, "not the password")
    unknown_user = sign_in(browser(vault), vault, unknown, PASSWORD)
    assert wrong_password.status_code == unknown_user.status_code == 200
    assert "登录名或密码错误" in wrong_password.text

    def normalised(html: str, login: str) -> str:
        html = re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token" value=""', html)
        return html.replace(login, "LOGIN")

    assert normalised(wrong_password.text, person.login) == normalised(unknown_user.text, unknown)
    assert session_cookies(wrong_password) == session_cookies(unknown_user) == []


def test_throttling_per_account_answers_429_without_checking_the_password(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    person = citizen(vault)
    for attempt in range(5):
        # each guess from another address, so only the per-account limit applies
        assert sign_in(browser(vault, address=f"198.51.100.{attempt}"), vault, person.login, "guess").status_code == 200
    blocked = sign_in(browser(vault, address="198.51.100.99"), vault, person.login, PASSWORD)
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["retry-after"]) <= 15 * 60
    assert "登录失败次数过多" in blocked.text and session_cookies(blocked) == []
    clock.advance(minutes=15, seconds=1)
    assert sign_in(browser(vault, address="198.51.100.99"), vault, person.login, PASSWORD).status_code == 303


def test_throttling_per_address(vault: Vault) -> None:
    person = citizen(vault)
    client = browser(vault, address="192.0.2.10")
    for n in range(5):
        assert sign_in(client, vault, f"nobody-{n}", "guess").status_code == 200
    blocked = sign_in(client, vault, person.login, PASSWORD)
    assert blocked.status_code == 429 and "retry-after" in blocked.headers
    assert sign_in(browser(vault, address="192.0.2.11"), vault, person.login, PASSWORD).status_code == 303


def test_a_success_resets_the_account_counter_but_not_the_address_counter(vault: Vault) -> None:
    person = citizen(vault)
    first = browser(vault, address="192.0.2.20")
    for _ in range(4):
        assert sign_in(first, vault, person.login, "guess").status_code == 200
    assert sign_in(first, vault, person.login).status_code == 303
    second = browser(vault, address="192.0.2.21")
    for _ in range(4):
        assert sign_in(second, vault, person.login, "guess").status_code == 200
    # 8 failures for this login in the window, but only 4 since the success
    assert sign_in(second, vault, person.login).status_code == 303
    # the first address still has its 4 failures: one more and it is throttled
    again = browser(vault, address="192.0.2.20")
    assert sign_in(again, vault, "nobody", "guess").status_code == 200
    assert sign_in(again, vault, person.login).status_code == 429


def test_the_attempts_table_holds_no_login_names_or_addresses(vault: Vault) -> None:
    person = citizen(vault)
    sign_in(browser(vault, address="192.0.2.30"), vault, person.login, "guess")
    with vault.db.session() as session:
        rows = session.scalars(select(LoginAttempt)).all()
    assert {r.scope for r in rows} == {"account", "address"}
    for row in rows:
        assert person.login.encode() not in row.digest and b"192.0.2.30" not in row.digest


def test_a_new_session_id_at_sign_in(vault: Vault) -> None:
    person = citizen(vault)
    client = browser(vault)
    planted = "attacker-chosen-session-token-000000000000000"
    client.cookies.set("vault_session", planted)
    first = sign_in(client, vault, person.login)
    (cookie,) = session_cookies(first)
    first_token = cookie_attributes(cookie)[1]
    assert first_token != planted
    second = sign_in(client, vault, person.login, form_page="/")  # again, with the first session's cookie
    (cookie,) = session_cookies(second)
    second_token = cookie_attributes(cookie)[1]
    assert second_token != first_token
    assert _sessions(vault) == 1  # the first session was destroyed, not left behind
    for dead in (planted, first_token):
        stranger = browser(vault)
        stranger.cookies.set("vault_session", dead)
        assert stranger.get("/").status_code == 303
    with vault.db.session() as session:
        (row,) = session.scalars(select(WebSession)).all()
    assert row.id != second_token and len(row.id) == 64  # only the token's hash is stored


def test_sign_out_ends_the_session_on_the_server(vault: Vault) -> None:
    person = citizen(vault)
    client = browser(vault)
    token = cookie_attributes(session_cookies(sign_in(client, vault, person.login))[0])[1]
    assert client.get("/logout").status_code == 200
    response = post(client, vault, "/logout", {}, form_page="/")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    _name, value, attributes = cookie_attributes(session_cookies(response)[0])
    assert value == "" and "max-age=0" in attributes
    assert _sessions(vault) == 0
    copied = browser(vault)
    copied.cookies.set("vault_session", token)  # the cookie as it was before signing out
    assert copied.get("/").headers["location"] == "/login"


def test_idle_timeout(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    person = citizen(vault)
    client = browser(vault)
    sign_in(client, vault, person.login)
    for _ in range(3):
        clock.advance(minutes=25)  # active every 25 minutes: still signed in after 75
        assert client.get("/").status_code == 200
    clock.advance(minutes=30, seconds=1)
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert _sessions(vault) == 0


def test_absolute_timeout(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    person = citizen(vault)
    client = browser(vault)
    sign_in(client, vault, person.login)
    for _ in range(36):  # active every 20 minutes for 12 hours
        clock.advance(minutes=20)
        assert client.get("/").status_code == 200
    clock.advance(minutes=20)  # 12 h 20 min after signing in, though only 20 minutes idle
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert _sessions(vault) == 0


@pytest.mark.parametrize(
    "bad",
    [
        "//evil.example/",
        "https://evil.example/",
        "http:/evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/x\\y",
        "javascript:alert(1)",
        "evil.example",
        "/\tevil",
        "/\r\nSet-Cookie:x=1",
        "/\x00",
        "/ /evil.example",
        "",
    ],
)
def test_next_only_same_origin_paths(vault: Vault, bad: str) -> None:
    person = citizen(vault)
    client = browser(vault)
    form = client.get("/login", params={"next": bad}).text
    assert 'name="next" value=""' in form
    response = sign_in(client, vault, person.login, next=bad)
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_a_page_that_needs_sign_in_comes_back_after_it(vault: Vault) -> None:
    person = citizen(vault)
    client = browser(vault)
    assert client.get("/", params={"x": "1"}).headers["location"] == "/login?next=%2F%3Fx%3D1"
    assert 'name="next" value="/?x=1"' in client.get("/login", params={"next": "/?x=1"}).text
    response = sign_in(client, vault, person.login, next="/?x=1")
    assert response.status_code == 303 and response.headers["location"] == "/?x=1"


def test_language_chinese_by_default_then_remembered_before_and_after_sign_in(vault: Vault) -> None:
    person = citizen(vault)
    client = browser(vault)
    page = client.get("/login")
    assert '<html lang="zh-CN">' in page.text and "登录" in page.text
    switched = post(client, vault, "/lang", {"lang": "en", "next": "/login"})
    assert switched.status_code == 303 and switched.headers["location"] == "/login"
    assert any(c.startswith("lang=en;") for c in switched.headers.get_list("set-cookie"))
    assert '<html lang="en">' in client.get("/login").text
    sign_in(client, vault, person.login)
    assert "Your account" in client.get("/").text
    post(client, vault, "/lang", {"lang": "zh", "next": "/"}, form_page="/")
    client.cookies.delete("lang")
    assert "我的账户" in client.get("/").text  # kept in the session, not only in the cookie
    assert post(client, vault, "/lang", {"lang": "fr"}, form_page="/").status_code == 303
    assert "我的账户" in client.get("/").text


def test_signed_in_visitors_skip_the_sign_in_page(vault: Vault) -> None:
    person = citizen(vault)
    client = browser(vault)
    sign_in(client, vault, person.login)
    assert client.get("/login").headers["location"] == "/"
    assert client.get("/login", params={"next": "/grants"}).headers["location"] == "/grants"


def test_empty_fields_are_asked_for_again(vault: Vault) -> None:
    response = post(browser(vault), vault, "/login", {"login": "", "password": ""})
    assert response.status_code == 200 and "请输入登录名和密码" in response.text
