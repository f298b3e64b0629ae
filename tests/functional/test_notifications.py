"""A counter (CIBA) request reaches the citizen as a notification in the app and as an e-mail through a real
SMTP server; the settings page refuses what it cannot use with a 400 naming it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import settings_for
from tests.mailbox import Mailbox, smtp_server
from tests.unit.api.support import client_token, gql, identifier, operation, register_client
from tests.webclient import browser, post, sign_in, token_in
from vault.demo import CITIZEN_PASSWORD
from vault.web.app import create_app
from vault.wiring import Vault, build_vault

COUNTER = "vehicle-office-counter"
CIBA = "urn:openid:params:grant-type:ciba"
ADDRESS = "citizen-a@example.test"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    yield from smtp_server()


@pytest.fixture
def vault(demo_vault: Vault, tmp_path: Path, mailbox: Mailbox) -> Iterator[Vault]:
    built = build_vault(settings_for(tmp_path, demo_vault.settings.database_url, VAULT_SMTP_URL=mailbox.url))
    register_client(
        built,
        COUNTER,
        department="traffic-police",
        category="traffic",
        scopes=["consent:request", "licences:read"],
        service_items=["vehicle-registration"],
        grant_types=["client_credentials", CIBA],
    )
    yield built
    built.close()


def _badge(html: str) -> int:
    found = re.search(r'class="badge">(\d+)', html)
    return int(found.group(1)) if found else 0


def test_a_counter_request_arrives_in_the_app_and_by_email(vault: Vault, mailbox: Mailbox) -> None:
    web = browser(vault)
    assert sign_in(web, vault, identifier("a"), CITIZEN_PASSWORD).status_code == 303
    chosen = {"email": ADDRESS, "channel": "email", "kind": "request", "quiet_start": "", "quiet_end": ""}
    saved = post(web, vault, "/notifications/settings", chosen, form_page="/notifications/settings")
    assert saved.status_code == 303 and saved.headers["location"] == "/notifications/settings?saved=1"
    assert _badge(web.get("/licences").text) == 0

    # not entered as a context manager: no lifespan, so no maintenance round delivers behind the test's back
    agency = TestClient(create_app(vault=vault), base_url=vault.settings.public_url)
    token = client_token(agency, COUNTER, "consent:request")
    started = gql(
        agency,
        token,
        operation("agency-request-consent"),
        {"owner": identifier("a"), "serviceItem": "vehicle-registration", "bindingMessage": "窗口 3"},
    )
    assert started.json()["data"]["requestConsent"]["__typename"] == "ConsentRequestStarted"

    page = web.get("/licences").text
    assert _badge(page) == 1
    centre = web.get("/notifications").text
    assert "柜台正在等待您的授权" in centre and "/inbox" in centre
    assert vault.outbox.run() == 1
    [mail] = mailbox.messages
    assert mailbox.recipients == [[ADDRESS]] and "柜台正在等待您的授权" in str(mail["Subject"])
    assert identifier("a") not in mail.as_string()
    read = post(web, vault, "/notifications/read", {}, form_page="/notifications")
    assert read.status_code == 303 and _badge(web.get("/licences").text) == 0


def test_settings_that_cannot_be_used_are_refused_naming_them(vault: Vault) -> None:
    web = browser(vault)
    sign_in(web, vault, identifier("a"), CITIZEN_PASSWORD)
    cases = {
        "电子邮件地址无法使用": {"email": "someone@", "channel": "email"},
        "免打扰时段": {"quiet_start": "25:00", "quiet_end": "07:00"},
        "Webhook 地址无法使用": {"webhook": "file:///etc/passwd"},
    }
    for expected, data in cases.items():
        answer = post(web, vault, "/notifications/settings", data, form_page="/notifications/settings")
        assert answer.status_code == 400 and expected in answer.text, expected
        assert token_in(answer.text)
    refused = web.post(
        "/notifications/settings", data={"email": ADDRESS}, headers={"Origin": vault.settings.public_url}
    )
    assert refused.status_code == 403, "no CSRF token, no change"


def test_a_read_under_a_mandate_queues_mail_only_for_an_owner_who_chose_it(vault: Vault) -> None:
    """The read finds the owner and whether they chose a channel in one statement, and its batch's notifications
    trust that rather than asking again: the owner who chose e-mail for such reads gets a message queued (for when
    the mandate's deferral ends), the other only the notification."""
    from sqlmodel import select

    from tests.unit.api.support import police_token
    from vault.notifications.models import Notification, OutboxMessage

    web = browser(vault)
    assert sign_in(web, vault, identifier("a"), CITIZEN_PASSWORD).status_code == 303
    chosen = {"email": ADDRESS, "channel": "email", "kind": "mandate_read", "quiet_start": "", "quiet_end": ""}
    assert post(web, vault, "/notifications/settings", chosen, form_page="/notifications/settings").status_code == 303

    agency = TestClient(create_app(vault=vault), base_url=vault.settings.public_url)
    token = police_token(agency)
    read = operation("agency-read-under-mandate")
    for person in ("a", "b"):
        variables = {"owner": identifier(person), "types": ["resident-id-card"], "names": ["name"]}
        assert gql(agency, token, read, variables).json()["data"]["licences"]
    with vault.db.session() as session:
        notes = session.scalars(select(Notification).where(Notification.kind == "mandate_read")).all()
        queued = session.scalars(select(OutboxMessage)).all()
    assert len({note.owner_id for note in notes}) == 2
    [message] = queued
    [told] = [note for note in notes if note.id == message.notification_id]
    assert message.channel == "email" and message.owner_id == told.owner_id
    assert message.not_before >= told.visible_at > told.created_at  # sent once the deferral has ended
