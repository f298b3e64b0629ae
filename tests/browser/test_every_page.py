"""Every page in Chromium, in Chinese and English, phone-sized and desktop: axe finds nothing serious, screenshots
are saved; an enterprise representative approves for the enterprise; staff review flags and revoke a grant."""

from __future__ import annotations

import uuid
from typing import Any

import httpx2 as httpx
import pytest

from tests.browser.conftest import no_serious_axe_issues, shot
from tests.oauth_helpers import details
from vault.demo import CITIZEN_PASSWORD, ENTERPRISES, PERSONS, STAFF_LOGIN, STAFF_PASSWORD
from vault.wiring import Vault

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only]
TRANSPORT = ("transport-bureau", "demo-secret-transport-bureau")
TRAFFIC = ("traffic-police-vehicle-office", "demo-secret-traffic-police-vehicle-office")


def sign_in(page: Any, base: str, login: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    page.click("main button[type=submit]")
    page.wait_for_load_state()


def visit(page: Any, url: str, name: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{url}: {response.status if response else None}"
    no_serious_axe_issues(page)
    shot(page, name)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1, f"{url} scrolls sideways at {page.viewport_size['width']} px"


def backchannel(base: str, agency: tuple[str, str], login_hint: str, item: str) -> None:
    with httpx.Client(base_url=base) as client:
        started = client.post(
            "/oauth/bc-authorize",
            auth=agency,
            data={"login_hint": login_hint, "authorization_details": details(item), "binding_message": "B-7"},
        )
        assert started.status_code == 200, started.text


@pytest.mark.parametrize(("lang", "width"), [("zh", 360), ("en", 1280)])
def test_every_citizen_page(live: tuple[str, Vault], page_factory: Any, lang: str, width: int) -> None:
    base, _ = live
    backchannel(base, TRAFFIC, PERSONS[0].id_number, "vehicle-registration")
    page = page_factory(width=width, height=800)
    page.goto(f"{base}/login")
    if lang == "en":
        page.click("button[value=en]")
        page.wait_for_load_state()
    visit(page, f"{base}/login", f"login-{lang}-{width}")
    visit(page, f"{base}/activate", f"activate-{lang}-{width}")
    sign_in(page, base, PERSONS[0].id_number, CITIZEN_PASSWORD)
    for path, name in [
        ("/", "home"),
        ("/licences", "licences"),
        ("/inbox", "inbox"),
        ("/grants", "grants"),
        ("/activity", "activity"),
    ]:
        visit(page, base + path, f"{name}-{lang}-{width}")
    page.goto(f"{base}/licences")
    page.click("main a[href^='/licences/']")
    page.wait_for_load_state()
    no_serious_axe_issues(page)
    shot(page, f"licence-{lang}-{width}")
    page.click("form[action$='/reveal'] button")
    page.wait_for_load_state()
    no_serious_axe_issues(page)
    shot(page, f"licence-revealed-{lang}-{width}")
    boxes = page.locator("form[action$='/present'] input[type=checkbox]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("button[value=show]")
    page.wait_for_load_state()
    no_serious_axe_issues(page)
    shot(page, f"presentation-{lang}-{width}")
    assert page.locator("main svg").count() == 1  # the QR code, drawn inline
    missing = page.goto(f"{base}/no-such-page")
    assert missing is not None and missing.status == 404
    no_serious_axe_issues(page)
    shot(page, f"not-found-{lang}-{width}")
    page.goto(f"{base}/activity")
    page.click("main a[href$='/proof']")
    page.wait_for_load_state()
    no_serious_axe_issues(page)
    shot(page, f"proof-{lang}-{width}")
    page.goto(f"{base}/inbox")
    page.click("main a[href^='/consent/']")
    page.wait_for_load_state()
    no_serious_axe_issues(page)
    shot(page, f"consent-backchannel-{lang}-{width}")
    unknown = page.goto(f"{base}/consent/{uuid.uuid4()}")
    assert unknown is not None and unknown.status == 404
    no_serious_axe_issues(page)
    shot(page, f"consent-unknown-{lang}-{width}")
    visit(page, f"{base}/logout", f"logout-{lang}-{width}")


def test_a_representative_approves_for_the_enterprise(live: tuple[str, Vault], page_factory: Any) -> None:
    base, vault = live
    backchannel(base, TRANSPORT, ENTERPRISES[0].credit_code, "road-transport-permit-renewal")
    page = page_factory()
    sign_in(page, base, PERSONS[0].id_number, CITIZEN_PASSWORD)
    page.check("input[name=owner]:not([value=''])")
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    visit(page, f"{base}/representatives", "representatives-zh-360")
    visit(page, f"{base}/inbox", "inbox-enterprise-zh-360")
    page.click("main a[href^='/consent/']")
    page.wait_for_load_state()
    no_serious_axe_issues(page)
    shot(page, "consent-enterprise-zh-360")
    page.click("button[value=approve]")
    page.wait_for_load_state()
    assert "/grants" in page.url
    from vault.owners.models import OwnerKind

    with vault.db.session() as session:
        company = vault.owners.find(session, OwnerKind.ENTERPRISE, ENTERPRISES[0].credit_code)
        assert company is not None
        [grant] = vault.consent.grants_of(session, company.id)
        assert grant.state == "active" and grant.client_id == TRANSPORT[0]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_staff_review_flags_and_revoke_a_grant(live: tuple[str, Vault], page_factory: Any, lang: str) -> None:
    base, vault = live
    backchannel(base, TRAFFIC, PERSONS[0].id_number, "vehicle-registration")
    from vault.consent.services import Decider
    from vault.owners.models import OwnerKind

    with vault.db.session() as session:
        person = vault.owners.find(session, OwnerKind.PERSON, PERSONS[0].id_number)
        assert person is not None
        [request] = vault.consent.inbox(session, person.id)
        grant = vault.consent.approve(session, request.id, Decider(person.id, person.id), request.fields)
        grant.valid_until = grant.valid_from + (grant.valid_until - grant.valid_from) * 3  # longer than allowed
    page = page_factory(width=1280, height=900)
    if lang == "en":
        page.goto(f"{base}/login")
        page.click("button[value=en]")
        page.wait_for_load_state()
    sign_in(page, base, STAFF_LOGIN, STAFF_PASSWORD)
    visit(page, f"{base}/console", f"console-{lang}-1280")
    text = page.inner_text("main")
    assert "超过" in text or "longer" in text.lower()  # the "longer than allowed" flag is shown
    form = page.locator(f"form[action='/console/grants/{grant.id}/revoke']")
    page.locator("details.action", has=form).locator("summary").click()
    form.locator("textarea[name=reason]").fill("比对事项目录后发现授权期限过长")
    form.locator("button").click()
    page.wait_for_load_state()
    with vault.db.session() as session:
        assert vault.consent.grant(session, grant.id).state == "revoked"
    visit(page, f"{base}/console/charts", f"console-charts-{lang}-1280")
    visit(page, f"{base}/console/audit", f"console-audit-{lang}-1280")
    page.click("form[action='/console/audit/verify'] button")
    page.wait_for_load_state()
    no_serious_axe_issues(page)
    shot(page, f"console-audit-verified-{lang}-1280")
    visit(
        page,
        f"{base}/console/representatives?enterprise={ENTERPRISES[0].credit_code}",
        f"console-representatives-{lang}-1280",
    )
    page.set_viewport_size({"width": 360, "height": 800})
    visit(page, f"{base}/console", f"console-{lang}-360")
