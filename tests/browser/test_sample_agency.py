"""The sample agency (built only on the SDK) in Chromium, end to end: the redirect flow with one field unticked and
the form pre-filled from it (each field's source shown), a counter request (CIBA) the person approves in their
inbox, the transport bureau's ride-hailing check answered without values, and a QR code verified."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from sample_agency.app import create_app
from tests.browser.conftest import _free_port, shot
from tests.browser.test_citizen import _sign_in
from tests.browser.test_notices_showings_export import _resigned_licences
from vault.demo import PERSONS, demo_licences
from vault.oauth.models import Agency
from vault.wiring import Vault

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only]
OFFICE = "traffic-police-vehicle-office"


@pytest.fixture
def agency(live: tuple[str, Vault]) -> Iterator[str]:
    """The sample agency on a free port, its /callback registered for the demo office (8001 may be taken)."""
    base, vault = live
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with vault.db.session() as session:
        row = session.query(Agency).filter(Agency.client_id == OFFICE).one()
        row.redirect_uris = [*row.redirect_uris, f"{url}/callback"]
    server = uvicorn.Server(uvicorn.Config(create_app(base, url), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_the_sample_agency_end_to_end(live: tuple[str, Vault], agency: str, page_factory: Any) -> None:
    base, vault = live
    page = page_factory(width=1280, height=900, locale="en-US")

    # an online service: the form comes back pre-filled, each value marked with its source
    page.goto(f"{agency}/apply")
    _sign_in(page, PERSONS[0].id_number)
    assert "/consent/" in page.url
    page.uncheck("input[value='resident-id-card/address']")
    page.click("button[value=approve]")
    page.wait_for_selector("#continue")  # the vault's confirmation; it also continues by itself after a while
    page.click("#continue")
    page.wait_for_url(f"{agency}/callback**")
    assert page.locator("[data-source='vault']").count() == 4
    assert page.locator("input.vault[value='" + PERSONS[0].id_number + "']").count() == 1
    assert "not granted: typed by you" in page.inner_text("form")
    sources = page.locator("label .src").all_inner_texts()
    assert sources[:4] == [
        f"from the vault: resident-id-card / {name}, with your consent"
        for name in ("name", "sex", "birth_date", "id_number")
    ]
    assert sources[4:] == ["not granted: typed by you", "typed by you", "typed by you"]
    assert page.locator("input.vault").count() == 4 and page.input_value("label:has-text('Address') input") == ""
    shot(page, "sample-agency-form-en-1280")

    # the counter: the clerk asks, the person approves in their inbox, the fields arrive
    clerk = page_factory(width=1280, height=900, locale="en-US")
    clerk.goto(f"{agency}/counter")
    clerk.fill("input[name=id_number]", PERSONS[1].id_number)
    clerk.click("button")
    clerk.wait_for_load_state()
    assert "waiting for the person" in clerk.inner_text("body")
    person = page_factory()
    person.goto(f"{base}/login")
    _sign_in(person, PERSONS[1].id_number)
    person.goto(f"{base}/inbox")
    person.click("a[href^='/consent/']")
    person.click("button[value=approve]")
    person.wait_for_load_state()
    clerk.reload()
    clerk.wait_for_selector("text=the fields arrived", timeout=20000)
    assert PERSONS[1].id_number in clerk.inner_text("table")
    shot(clerk, "sample-agency-counter-en-1280")

    # answers instead of data: the transport bureau asks three questions about the first person, who approves them
    # in the same browser they used above; the clerk sees yes or no, signed and verified offline, and no value
    clerk.goto(f"{agency}/check")
    clerk.fill("input[name=id_number]", PERSONS[0].id_number)
    clerk.fill("input[name=name]", PERSONS[0].name)
    clerk.click("button")
    clerk.wait_for_selector("text=waiting for the person")
    page.goto(f"{base}/inbox")
    page.click("a[href^='/consent/']")
    assert page.locator("input[name=question]").count() == 3  # the consent page shows questions, not fields
    page.click("button[value=approve]")
    page.wait_for_load_state()
    clerk.wait_for_selector("text=answered", timeout=30000)
    assert clerk.locator("[data-answer='true']").count() == 3
    assert clerk.locator("text=verified offline").count() == 3
    shown = clerk.content() + clerk.inner_text("body")
    assert "driving licence of class C1" in shown and "at least 18" in shown
    values = {
        str(value)
        for key, _, licence in demo_licences()
        if key == PERSONS[0].key
        for name, value in licence.items()
        if name != "class" and len(str(value)) > 1  # C1 is what the item asks about; one character matches anywhere
    }
    assert values and not [v for v in values if v in shown]
    shot(clerk, "sample-agency-check-en-1280")

    # a QR code the first person makes in their vault for this counter's code, verified offline by the SDK
    clerk.goto(f"{agency}/verify")
    code = clerk.inner_text("#counter-code")
    licence = _resigned_licences(vault)["driving-licence"]  # signed for this server's address
    page.goto(f"{base}/licences/{licence}")
    page.locator("form[action$='/present'] input[type=checkbox]").nth(0).check()
    page.fill("input[name=nonce]", code)
    page.click("button[value=show]")
    page.wait_for_load_state()
    clerk.fill("textarea[name=qr]", page.input_value("#presentation-text"))
    assert clerk.input_value("input[name=code]") == code
    clerk.click("button")
    clerk.wait_for_load_state()
    assert "Genuine and in force" in clerk.inner_text("body")
    assert clerk.inner_text("table").split() == ["licence_number", PERSONS[0].id_number]  # the one field ticked
    shot(clerk, "sample-agency-verify-en-1280")
