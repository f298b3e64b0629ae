"""The citizen's experience in Chromium, in Chinese on a phone and in English on a desktop, over the demo's history:
withdrawing takes no more taps than consenting (PIPL art. 15), a stale agency link or an expired request shows a
styled, localised page with a way on, company requests show in the personal space, and the console drills from an
owner to a grant. axe finds nothing serious on any of these pages; screenshots go to test-output/."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx2 as httpx
import pytest

from tests.browser.conftest import no_serious_axe_issues, shot
from tests.oauth_helpers import REDIRECT, details, pkce
from vault import clock, demo_history
from vault.consent.models import ConsentRequest
from vault.demo import CITIZEN_PASSWORD, ENTERPRISES, PERSONS, STAFF_LOGIN, STAFF_PASSWORD
from vault.owners.models import OwnerKind
from vault.wiring import Vault

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only]
HOUSING = ("housing-bureau", "demo-secret-housing-bureau")
TRANSPORT = ("transport-bureau", "demo-secret-transport-bureau")
FUND = "housing-provident-fund-withdrawal"
SIZES = [("zh", 360, 760), ("en", 1280, 900)]


class Taps:
    """Clicks a person makes, counted."""

    def __init__(self, page: Any) -> None:
        self.page, self.count = page, 0

    def tap(self, selector: str) -> None:
        self.count += 1
        self.page.click(selector)
        self.page.wait_for_load_state()


def with_history(vault: Vault) -> None:
    with vault.db.session() as session:
        persons = {p.key: p.id_number for p in PERSONS}
        owners = demo_history.owners_of(vault, session, persons, ENTERPRISES[0].credit_code)
        demo_history.write_history(vault, session, owners, clock.utcnow())


def open_page(page_factory: Any, base: str, lang: str, width: int, height: int, login: str, password: str) -> Any:
    page = page_factory(width=width, height=height, locale="zh-CN" if lang == "zh" else "en-GB")
    page.goto(f"{base}/login")
    if lang == "en":
        page.click("button[value=en]")
        page.wait_for_load_state()
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    return page


def check(page: Any, name: str) -> None:
    no_serious_axe_issues(page)
    shot(page, name)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1, f"{page.url} scrolls sideways"


def counter_request(base: str, agency: tuple[str, str], hint: str, item: str) -> None:
    with httpx.Client(base_url=base) as client:
        data = {"login_hint": hint, "authorization_details": details(item), "binding_message": "H-3"}
        assert client.post("/oauth/bc-authorize", auth=agency, data=data).status_code == 200


def pushed_link(base: str) -> str:
    _verifier, challenge = pkce()
    with httpx.Client(base_url=base) as client:
        pushed = client.post(
            "/oauth/par",
            auth=HOUSING,
            data={
                "response_type": "code",
                "redirect_uri": REDIRECT,
                "state": "s",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "authorization_details": details(FUND),
            },
        )
        assert pushed.status_code == 201
    return f"{base}/oauth/authorize?client_id={HOUSING[0]}&request_uri={pushed.json()['request_uri']}"


@pytest.mark.parametrize(("lang", "width", "height"), SIZES)
def test_withdrawing_takes_no_more_taps_than_consenting(
    live: tuple[str, Vault], page_factory: Any, lang: str, width: int, height: int
) -> None:
    base, vault = live
    counter_request(base, HOUSING, PERSONS[0].id_number, FUND)
    page = open_page(page_factory, base, lang, width, height, PERSONS[0].id_number, CITIZEN_PASSWORD)

    consenting = Taps(page)
    consenting.tap("nav.space-nav a[href='/inbox']")
    consenting.tap("main a[href^='/consent/']")
    check(page, f"consent-full-or-masked-{lang}-{width}")
    consenting.tap("button[value=approve]")
    assert "/grants?done=approved" in page.url
    assert page.locator("section.notice a[href$='/receipt']").count() == 1
    check(page, f"grants-approved-{lang}-{width}")

    page.goto(f"{base}/")
    withdrawing = Taps(page)
    withdrawing.tap("nav.space-nav a[href='/grants']")
    withdrawing.tap("details.withdraw-all summary")
    check(page, f"grants-withdraw-all-{lang}-{width}")
    withdrawing.tap("details.withdraw-all button[type=submit]")
    assert "done=withdrawn" in page.url
    check(page, f"grants-withdrawn-{lang}-{width}")
    # the PIPL art. 15 check: withdrawal may take no more taps than consent did
    assert withdrawing.count <= consenting.count, (withdrawing.count, consenting.count)
    with vault.db.session() as session:
        me = vault.owners.find(session, OwnerKind.PERSON, PERSONS[0].id_number)
        assert me is not None
        assert {g.state for g in vault.consent.grants_of(session, me.id) if g.client_id == HOUSING[0]} == {"revoked"}


@pytest.mark.parametrize(("lang", "width", "height"), SIZES)
def test_a_stale_link_and_an_expired_request_say_what_happened(
    live: tuple[str, Vault], page_factory: Any, monkeypatch: pytest.MonkeyPatch, lang: str, width: int, height: int
) -> None:
    base, vault = live
    page = open_page(page_factory, base, lang, width, height, PERSONS[0].id_number, CITIZEN_PASSWORD)
    link = pushed_link(base)
    later = clock.utcnow() + timedelta(seconds=61)
    monkeypatch.setattr("vault.oauth.server.utcnow", lambda: later)  # the server runs in this process
    response = page.goto(link)
    assert response is not None and response.status == 400
    assert page.locator("main a[href='/']").count() == 1
    assert ("此链接已过期或已被使用" if lang == "zh" else "This link has expired") in page.inner_text("main")
    check(page, f"link-expired-{lang}-{width}")
    monkeypatch.undo()

    counter_request(base, HOUSING, PERSONS[0].id_number, FUND)
    with vault.db.session() as session:
        request = session.query(ConsentRequest).filter(ConsentRequest.state == "pending").one()
        request.expires_at -= timedelta(minutes=11)
        request_id = request.id
    response = page.goto(f"{base}/consent/{request_id}")
    assert response is not None and response.status == 410
    assert ("此申请已过期" if lang == "zh" else "This request has expired") in page.inner_text("main")
    check(page, f"consent-expired-{lang}-{width}")


@pytest.mark.parametrize(("lang", "width", "height"), SIZES)
def test_company_requests_and_the_switch_in_the_personal_space(
    live: tuple[str, Vault], page_factory: Any, lang: str, width: int, height: int
) -> None:
    base, vault = live
    with_history(vault)
    counter_request(base, TRANSPORT, ENTERPRISES[0].credit_code, "road-transport-permit-renewal")
    page = open_page(page_factory, base, lang, width, height, PERSONS[0].id_number, CITIZEN_PASSWORD)
    page.goto(f"{base}/inbox")
    assert page.locator("main .badge").count() == 1
    check(page, f"inbox-company-badge-{lang}-{width}")
    page.click("main form[action='/acting-for'] button")
    page.wait_for_load_state()
    assert "/consent/" in page.url and page.locator("button[value=approve]").count() == 1
    check(page, f"consent-company-{lang}-{width}")
    for path, name in [("/activity", "activity-history"), ("/grants", "grants-history")]:
        page.goto(base + path)
        check(page, f"{name}-{lang}-{width}")
    # a personal request opened while acting for the company explains and offers to switch back
    page.goto(pushed_link(base))
    page.wait_for_load_state()
    assert page.locator("section.switch form[action='/acting-for']").count() == 1
    check(page, f"consent-switch-{lang}-{width}")


@pytest.mark.parametrize(("lang", "width", "height"), SIZES)
def test_staff_look_an_owner_up_and_drill_into_a_grant(
    live: tuple[str, Vault], page_factory: Any, lang: str, width: int, height: int
) -> None:
    base, vault = live
    with_history(vault)
    page = open_page(page_factory, base, lang, width, height, STAFF_LOGIN, STAFF_PASSWORD)
    page.goto(f"{base}/console/owners")
    check(page, f"console-lookup-{lang}-{width}")
    page.fill("#lookup-identifier", PERSONS[1].id_number)
    page.fill("#lookup-reason", "核查投诉" if lang == "zh" else "complaint check")
    page.click("main form[action='/console/owners/lookup'] button")
    page.wait_for_load_state()
    assert "/console/owners/" in page.url
    check(page, f"console-owner-{lang}-{width}")
    page.click("main a[href^='/console/grants/']")
    page.wait_for_load_state()
    text = page.inner_text("main")
    assert ("公民身份号码" if lang == "zh" else "Resident ID number") in text and "resident-id-card/" not in text
    check(page, f"console-grant-{lang}-{width}")
    page.goto(f"{base}/console/charts")
    check(page, f"console-charts-history-{lang}-{width}")
