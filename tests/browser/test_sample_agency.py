"""The sample agency (built only on the SDK) in Chromium: the redirect flow with one field unticked and the form
pre-filled from it, a counter request (CIBA) the person approves in their inbox, and a QR code verified."""

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
from vault.demo import PERSONS
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
    page.wait_for_load_state()
    assert page.url.startswith(f"{agency}/callback")
    assert page.locator("[data-source='vault']").count() == 4
    assert page.locator("input.vault[value='" + PERSONS[0].id_number + "']").count() == 1
    assert "not granted: typed by you" in page.inner_text("form")
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

    # a QR code a person shows, verified offline by the SDK
    from tests import factories

    with vault.db.session() as session:
        owner = factories.person(vault, session)
        licence = factories.driving_licence(vault, session, owner)
        shown, _ = vault.licences.show(session, licence.id, ["name", "class"], actor="test")
    clerk.goto(f"{agency}/verify")
    clerk.fill("textarea[name=qr]", shown)
    clerk.click("button")
    clerk.wait_for_load_state()
    assert "Genuine and in force" in clerk.inner_text("body")
