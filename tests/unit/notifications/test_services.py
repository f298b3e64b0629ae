"""Notifications are written with the event that causes them, shown from when they may be, and queued for the
channels a person chose, with addresses encrypted and no value or identifier in any message."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from tests import factories
from tests.conftest import settings_for
from tests.mailbox import Mailbox, smtp_server
from tests.webclient import Clock
from vault.audit.events import Action, Event
from vault.config import Settings
from vault.notifications.errors import BadPreference
from vault.notifications.models import Kind, Notification, NotificationPreference, OutboxMessage
from vault.notifications.quiet import parse_hhmm
from vault.notifications.services import DEFAULT_PREFERENCES, Preferences
from vault.wiring import Vault

ADDRESS = "canary-person@example.test"
ALL_KINDS = frozenset(k.value for k in Kind)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    yield from smtp_server()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, mailbox: Mailbox) -> Settings:
    return settings_for(tmp_path, database_url, VAULT_SMTP_URL=mailbox.url)


def _person(
    vault: Vault, *, quiet: tuple[str, str] | None = None, channels: frozenset[str] = frozenset({"email"})
) -> uuid.UUID:
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        prefs = Preferences(
            ADDRESS,
            None,
            channels,
            ALL_KINDS,
            parse_hhmm(quiet[0]) if quiet else None,
            parse_hhmm(quiet[1]) if quiet else None,
            "zh",
        )
        vault.notifications.save_preferences(session, owner.id, prefs)
        return owner.id


def _counter_request(owner_id: uuid.UUID) -> Event:
    return Event(
        Action.CONSENT_REQUESTED,
        "agency:vehicle-office-counter",
        owner_id=owner_id,
        service_item="vehicle-registration",
        fields=("resident-id-card/id_number", "resident-id-card/name"),
        decision="allow",
        detail={"request": str(uuid.uuid4()), "kind": "backchannel"},
    )


def test_a_counter_request_is_shown_in_the_app_and_mailed_without_any_value(vault: Vault, mailbox: Mailbox) -> None:
    owner_id = _person(vault)
    with vault.db.session() as session:
        vault.audit.append(session, _counter_request(owner_id))
    with vault.db.session() as session:
        assert vault.notifications.unread(session, owner_id) == 1
        [note] = vault.notifications.visible(session, owner_id)
        assert note.kind == "request" and note.urgent
    assert vault.outbox.run() == 1
    [mail] = mailbox.messages
    assert mailbox.recipients == [[ADDRESS]]
    body = mail.get_content()
    assert "柜台" in str(mail["Subject"]) and "居民身份证 · 公民身份号码" in body and "/inbox" in body
    with vault.db.session() as session:
        owner = vault.owners.get(session, owner_id)
        id_number = vault.owners.details(session, owner).identifier
    assert id_number not in body and id_number not in str(mail["Subject"])
    assert vault.outbox.run() == 0, "a message is sent once"


def test_no_notification_survives_the_rollback_of_its_event(vault: Vault) -> None:
    owner_id = _person(vault)
    with pytest.raises(RuntimeError), vault.db.session() as session:
        vault.audit.append(session, _counter_request(owner_id))
        raise RuntimeError("the action failed after its event was appended")
    with vault.db.session() as session:
        assert session.scalars(select(Notification)).all() == []
        assert session.scalars(select(OutboxMessage)).all() == []


def test_a_denied_request_or_another_owners_event_tells_nobody(vault: Vault) -> None:
    owner_id = _person(vault)
    with vault.db.session() as session:
        other = factories.person(vault, session).id
        denied = Event(Action.CONSENT_REQUESTED, "agency:x", owner_id=owner_id, decision="deny", reason="not allowed")
        vault.audit.append(session, denied)
        vault.audit.append(session, _counter_request(other))
    with vault.db.session() as session:
        assert vault.notifications.unread(session, owner_id) == 0
        assert vault.notifications.unread(session, other) == 1


def test_quiet_hours_hold_back_mail_but_not_the_app_and_a_counter_request_goes_at_once(
    vault: Vault, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    clock.now = clock.now.replace(hour=15, minute=30)  # 23:30 in Shanghai
    owner_id = _person(vault, quiet=("22:00", "07:00"))
    read = Event(
        Action.FIELDS_RELEASED,
        "agency:housing-bureau",
        owner_id=owner_id,
        fields=("resident-id-card/name",),
        decision="allow",
    )
    with vault.db.session() as session:
        vault.audit.append(session, read)
    with vault.db.session() as session:
        assert vault.notifications.unread(session, owner_id) == 1
    assert vault.outbox.run() == 0 and mailbox.messages == []
    with vault.db.session() as session:
        vault.audit.append(session, _counter_request(owner_id))
    assert vault.outbox.run() == 1 and "柜台" in str(mailbox.messages[0]["Subject"])
    clock.advance(hours=7, minutes=31)  # 07:01 in Shanghai
    assert vault.outbox.run() == 1 and len(mailbox.messages) == 2


def test_a_read_under_a_deferred_mandate_is_told_only_when_its_deferral_ends(
    vault: Vault, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    owner_id = _person(vault)
    read = Event(
        Action.FIELDS_RELEASED,
        "agency:police-investigation",
        owner_id=owner_id,
        fields=("resident-id-card/name",),
        mandate="police-criminal-investigation",
        decision="allow",
    )
    with vault.db.session() as session:
        vault.audit.append(session, read)
    assert vault.outbox.run() == 0
    clock.advance(days=89)
    with vault.db.session() as session:
        assert vault.notifications.unread(session, owner_id) == 0
        assert vault.notifications.visible(session, owner_id) == []
        assert vault.notifications.mark_read(session, owner_id) == 0
    assert vault.outbox.run() == 0 and mailbox.messages == []
    clock.advance(days=1, minutes=1)
    with vault.db.session() as session:
        [note] = vault.notifications.visible(session, owner_id)
        assert note.kind == "mandate_read"
    assert vault.outbox.run() == 1
    assert "公安机关侦查刑事案件调取证据" in mailbox.messages[0].get_content()


def test_a_consent_about_to_end_is_told_once(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    from vault.consent.models import Grant

    clock = Clock(monkeypatch)
    owner_id = _person(vault, channels=frozenset())
    with vault.db.session() as session:
        session.add(
            Grant(
                owner_id=owner_id,
                client_id="housing-bureau",
                service_item="housing-provident-fund-withdrawal",
                fields={"resident-id-card": ["name"]},
                purpose="test",
                valid_from=clock.now,
                valid_until=clock.now + timedelta(days=5),
                state="active",
                receipt="r",
                receipt_hash=b"h",
            )
        )
    with vault.db.session() as session:
        assert vault.notifications.sweep_expiring(session) == 0
    clock.advance(days=2, minutes=1)
    with vault.db.session() as session:
        assert vault.notifications.sweep_expiring(session) == 1
    with vault.db.session() as session:
        assert vault.notifications.sweep_expiring(session) == 0
        [note] = vault.notifications.visible(session, owner_id)
        assert note.kind == "grant_expiring"


def test_the_address_is_stored_encrypted_and_bad_settings_name_what_is_wrong(vault: Vault, settings: Settings) -> None:
    owner_id = _person(vault)
    with vault.db.session() as session:
        row = session.get(NotificationPreference, owner_id)
        assert row is not None and row.email_ct and ADDRESS.encode() not in row.email_ct
    if vault.db.engine.dialect.name == "sqlite":
        vault.db.checkpoint_wal()
        assert ADDRESS.encode() not in (settings.data_dir / "vault.db").read_bytes()
    with vault.db.session() as session:
        assert vault.notifications.preferences(session, owner_id).email == ADDRESS
    bad = {
        "email": DEFAULT_PREFERENCES.__class__(
            "not-an-address\r\nBcc: x@y.z", None, frozenset(), ALL_KINDS, None, None, "zh"
        ),
        "webhook": Preferences(None, "ftp://example.org/x", frozenset(), ALL_KINDS, None, None, "zh"),
        "quiet": Preferences(None, None, frozenset(), ALL_KINDS, 60, None, "zh"),
        "channels": Preferences(None, None, frozenset({"pigeon"}), ALL_KINDS, None, None, "zh"),
    }
    for field, prefs in bad.items():
        with pytest.raises(BadPreference) as caught, vault.db.session() as session:
            vault.notifications.save_preferences(session, owner_id, prefs)
        assert caught.value.field == field
