"""A citizen in Chromium on a phone-sized screen: signs in, approves with a field unticked, revokes."""

from __future__ import annotations

import re
from typing import Any

import httpx2 as httpx
import pytest

from tests.browser.conftest import no_serious_axe_issues, shot
from tests.conftest import PROJECT_ROOT
from tests.oauth_helpers import REDIRECT, details, pkce, query_of
from vault.demo import CITIZEN_PASSWORD, PERSONS
from vault.wiring import Vault

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only]
HOUSING = ("housing-bureau", "demo-secret-housing-bureau")
ITEM = "housing-provident-fund-withdrawal"  # repeated reads: the grant outlives the first read, so it can be revoked


def _start_redirect_flow(base: str) -> tuple[str, str, str]:
    verifier, challenge = pkce()
    with httpx.Client(base_url=base) as agency:
        pushed = agency.post(
            "/oauth/par",
            auth=HOUSING,
            data={
                "response_type": "code",
                "redirect_uri": REDIRECT,
                "state": "browser-state",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "authorization_details": details(ITEM),
            },
        )
        assert pushed.status_code == 201, pushed.text
        url = f"{base}/oauth/authorize?client_id={HOUSING[0]}&request_uri={pushed.json()['request_uri']}"
    return url, verifier, "browser-state"


def _sign_in(page: Any, login: str) -> None:
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", CITIZEN_PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_load_state()


def test_citizen_approves_with_a_field_unticked_and_revokes(live: tuple[str, Vault], page_factory: Any) -> None:
    base, _vault = live
    authorize_url, verifier, state = _start_redirect_flow(base)
    page = page_factory()
    landed: list[str] = []
    # nothing listens at the agency's redirect URI here: note where the browser was sent
    page.on("request", lambda request: landed.append(request.url) if request.url.startswith(REDIRECT) else None)
    page.goto(authorize_url)
    assert "/login" in page.url
    shot(page, "login-zh")
    no_serious_axe_issues(page)
    _sign_in(page, PERSONS[0].id_number)
    assert "/consent/" in page.url
    shot(page, "consent-zh")
    no_serious_axe_issues(page)
    assert page.locator("text=《住房公积金管理条例》第二十四条").count() >= 1
    page.uncheck("input[value='resident-id-card/id_number']")
    page.click("button[value=approve]")
    page.wait_for_load_state()
    assert not landed and page.locator("main a[href$='/receipt']").count() == 1  # confirmed in the vault first
    with page.expect_request(lambda request: request.url.startswith(REDIRECT)):
        page.click("#continue")
    assert landed, "the browser was not sent back to the agency"
    params = query_of(landed[0])
    assert params["state"] == state and params["iss"] == base

    with httpx.Client(base_url=base) as agency:
        tokens = agency.post(
            "/oauth/token",
            auth=HOUSING,
            data={
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
        ).json()
        introspected = agency.post("/oauth/introspect", auth=HOUSING, data={"token": tokens["access_token"]}).json()
        fields = introspected["authorization_details"][0]["fields"]["resident-id-card"]
        assert "id_number" not in fields and "name" in fields

        query = (PROJECT_ROOT / "graphql" / "operations" / "agency-read-licences.graphql").read_text()
        read = agency.post(
            "/graphql",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
            json={"query": query, "variables": {"types": ["resident-id-card"], "names": ["name", "id_number"]}},
        ).json()
        assert read.get("data"), read
        [licence] = read["data"]["licences"]
        values = {f["name"]: f["value"] for f in licence["fields"] if f}  # a denied field resolves to null
        assert values == {"name": PERSONS[0].name}
        assert any(e["extensions"]["code"] == "FIELD_FORBIDDEN" for e in read["errors"])

        page.goto(f"{base}/activity")
        history = page.inner_text("main")
        assert (
            "读取数据" in history and "被拒绝的字段" in history
        )  # the read and the refused field, as shown to the owner
        shot(page, "activity-after-read-zh")
        no_serious_axe_issues(page)

        page.goto(f"{base}/grants")
        shot(page, "grants-zh")
        no_serious_axe_issues(page)
        page.click("li.card details.action summary")  # revoking asks once, saying what will stop
        assert "无法恢复" in page.inner_text("li.card details.action")
        page.click("li.card details.action button.danger")
        page.wait_for_load_state()
        after = agency.post("/oauth/introspect", auth=HOUSING, data={"token": tokens["access_token"]}).json()
        assert after == {"active": False}
    assert re.search("已撤销|revoked", page.inner_text("main"))


def test_pages_switch_to_english_and_remember_it(live: tuple[str, Vault], page_factory: Any) -> None:
    base, _ = live
    page = page_factory(width=1280, height=800)
    page.goto(f"{base}/login")
    assert page.locator("html").get_attribute("lang").startswith("zh")
    page.click("button[value=en]")
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    shot(page, "login-en")
    _sign_in(page, PERSONS[0].id_number)
    page.goto(f"{base}/grants")
    assert page.locator("html").get_attribute("lang") == "en"
    shot(page, "grants-en")
