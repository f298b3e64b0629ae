"""In Chromium, Chinese and English, phone-sized and desktop: a counter request arrives as a notification with a
badge and as an e-mail in a local SMTP server; a presentation's QR code expires; the export downloads with one tap
and verifies offline, at /verify too, while a tampered one fails."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.browser.conftest import _free_port, no_serious_axe_issues, shot
from tests.browser.test_every_page import TRAFFIC, backchannel, sign_in, visit
from tests.conftest import settings_for
from tests.mailbox import Mailbox, smtp_server
from vault.crypto.services import VAULT_SIGNING
from vault.demo import CITIZEN_PASSWORD, PERSONS
from vault.owners.models import OwnerKind
from vault.portability.verify import verify_export
from vault.wiring import Vault, build_vault

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only]
ADDRESS = "demo-citizen-a@example.test"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    yield from smtp_server()


@pytest.fixture
def live(demo_vault: Vault, tmp_path: Path, mailbox: Mailbox) -> Iterator[tuple[str, Vault]]:
    """The demo vault served with an SMTP server and maintenance every second (so the outbox drains promptly)."""
    from vault.web.app import create_app

    port = _free_port()
    settings = settings_for(
        tmp_path,
        demo_vault.settings.database_url,
        VAULT_PORT=str(port),
        VAULT_LOG_LEVEL="WARNING",
        VAULT_SMTP_URL=mailbox.url,
        VAULT_CHECKPOINT_INTERVAL="1",
    )
    vault = build_vault(settings)
    server = uvicorn.Server(uvicorn.Config(create_app(vault=vault), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", vault
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        vault.close()


def _resigned_licences(vault: Vault) -> dict[str, uuid.UUID]:
    """Person a's licences renewed by this server, so their issuer ids name this server's address (the demo
    template was signed for another port, and a verifier rightly refuses an issuer it does not know)."""
    with vault.db.session() as session:
        owner = vault.owners.find(session, OwnerKind.PERSON, PERSONS[0].id_number)
        assert owner is not None
        renewed = {}
        for summary in vault.licences.list_for_owner(session, owner.id):
            if summary.state == "active":
                vault.licences.renew(session, summary.id, issuer_code=summary.issuer_code, changes={})
                renewed[summary.type_code] = summary.id
        return renewed


def _english(page: Any, base: str) -> None:
    page.goto(f"{base}/login")
    page.click("button[value=en]")
    page.wait_for_load_state()


@pytest.mark.parametrize(("lang", "width"), [("zh", 360), ("en", 1280)])
def test_a_counter_request_arrives_as_a_notification_and_an_email(
    live: tuple[str, Vault], page_factory: Any, mailbox: Mailbox, lang: str, width: int
) -> None:
    base, _ = live
    page = page_factory(width=width, height=800)
    if lang == "en":
        _english(page, base)
    sign_in(page, base, PERSONS[0].id_number, CITIZEN_PASSWORD)
    visit(page, f"{base}/notifications/settings", f"notification-settings-{lang}-{width}")
    page.check("input[name=channel][value=email]")
    page.fill("input[name=email]", ADDRESS)
    page.fill("input[name=quiet_start]", "22:00")
    page.fill("input[name=quiet_end]", "07:00")
    page.click("main button[type=submit].primary")
    page.wait_for_load_state()
    assert page.locator("p.alert[role=status]").count() == 1
    assert page.locator(".badge").count() == 0

    backchannel(base, TRAFFIC, PERSONS[0].id_number, "vehicle-registration")
    page.goto(f"{base}/licences")
    assert page.inner_text(".bell .badge").startswith("1")
    page.click(".bell")
    page.wait_for_load_state()
    no_serious_axe_issues(page)
    shot(page, f"notifications-{lang}-{width}")
    text = page.inner_text("main")
    assert ("柜台正在等待您的授权" if lang == "zh" else "A counter is waiting for your consent") in text
    for _ in range(100):  # maintenance drains the outbox every second; quiet hours do not hold a counter request
        if mailbox.messages:
            break
        time.sleep(0.1)
    [mail] = mailbox.messages
    assert mailbox.recipients == [[ADDRESS]]
    assert "柜台正在等待您的授权" in str(mail["Subject"])  # the person's message language was left at Chinese
    assert PERSONS[0].id_number not in mail.as_string()
    page.click("main form[action='/notifications/read'] button")
    page.wait_for_load_state()
    assert page.locator(".badge").count() == 0
    page.click("main a[href='/inbox']")
    page.wait_for_load_state()
    assert "/inbox" in page.url


@pytest.mark.parametrize(("lang", "width"), [("en", 1280), ("zh", 360)])
def test_a_presentation_qr_code_expires_and_the_counter_sees_the_verdict(
    live: tuple[str, Vault], page_factory: Any, lang: str, width: int
) -> None:
    base, vault = live
    licence = _resigned_licences(vault)["driving-licence"]
    counter = page_factory(width=width, height=800)
    if lang == "en":
        _english(counter, base)
    visit(counter, f"{base}/verify", f"verify-{lang}-{width}")
    code = counter.inner_text("#counter-code")

    holder = page_factory(width=360, height=800)
    holder.clock.install()
    sign_in(holder, base, PERSONS[0].id_number, CITIZEN_PASSWORD)
    holder.goto(f"{base}/licences/{licence}")
    holder.locator("form[action$='/present'] input[type=checkbox]").nth(0).check()
    holder.fill("input[name=nonce]", code)
    holder.click("button[value=show]")
    holder.wait_for_load_state()
    assert holder.locator("main svg.qr-code").is_visible()
    assert code in holder.inner_text("#showing-expiry")
    no_serious_axe_issues(holder)
    shot(holder, f"showing-{lang}-{width}")
    text = holder.input_value("#presentation-text")

    counter.fill("#presentation", text)
    counter.click("form[action='/verify'] button[type=submit]")
    counter.wait_for_load_state()
    assert counter.get_attribute("#verdict", "data-verdict") == "in_force"
    assert counter.inner_text("#verdict") == ("真实有效" if lang == "zh" else "Genuine and in force")
    no_serious_axe_issues(counter)
    shot(counter, f"verify-in-force-{lang}-{width}")

    holder.clock.fast_forward("05:01")
    holder.wait_for_selector("#showing-expired", state="visible")
    assert not holder.locator("main svg.qr-code").is_visible()
    no_serious_axe_issues(holder)
    shot(holder, f"showing-expired-{lang}-{width}")


@pytest.mark.parametrize(("lang", "width"), [("zh", 360), ("en", 1280)])
def test_my_data_downloads_in_one_tap_and_verifies_offline(
    live: tuple[str, Vault], page_factory: Any, tmp_path: Path, lang: str, width: int
) -> None:
    base, vault = live
    _resigned_licences(vault)
    page = page_factory(width=width, height=800)
    if lang == "en":
        _english(page, base)
    sign_in(page, base, PERSONS[0].id_number, CITIZEN_PASSWORD)
    page.goto(f"{base}/licences")
    with page.expect_download() as caught:
        page.click("form[action='/export'] button")
    path = tmp_path / "my-data.json"
    caught.value.save_as(path)
    with vault.db.session() as session:
        keys = vault.keys.trusted_public_keys(session, VAULT_SIGNING)
    report = verify_export(path.read_bytes(), trusted_keys=keys)
    assert report.ok and report.licences >= 1, report.problems

    document = json.loads(path.read_bytes())
    document["bundle"]["licences"].pop()
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document), encoding="utf-8")
    page.goto(f"{base}/verify")
    for file, verdict in ((path, "export_ok"), (tampered, "export_bad")):
        page.set_input_files("#export-file", str(file))
        page.click("form[action='/verify/export'] button")
        page.wait_for_load_state()
        assert page.get_attribute("#verdict", "data-verdict") == verdict
        no_serious_axe_issues(page)
        shot(page, f"verify-{verdict}-{lang}-{width}")
