"""The outbox: a signed webhook, retries with backoff, a claim per message, and no probing of private networks."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from sqlmodel import select

from tests import factories
from tests.conftest import settings_for
from tests.mailbox import Hook, webhook_server
from tests.webclient import Clock
from vault.audit.events import Action, Event
from vault.config import Settings
from vault.crypto import jws
from vault.crypto.services import VAULT_SIGNING
from vault.notifications.channels import SIGNATURE_HEADER, WebhookSender
from vault.notifications.errors import BadPreference, DeliveryFailed
from vault.notifications.interfaces import Message
from vault.notifications.models import Kind, OutboxMessage
from vault.notifications.outbox import MAX_ATTEMPTS, claim, due
from vault.notifications.services import Preferences
from vault.wiring import Vault

ALL_KINDS = frozenset(k.value for k in Kind)


@pytest.fixture
def hook() -> Iterator[Hook]:
    yield from webhook_server()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, hook: Hook) -> Settings:
    return settings_for(tmp_path, database_url, VAULT_WEBHOOK_URL=hook.url)


def _subscribed(vault: Vault) -> uuid.UUID:
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        prefs = Preferences(None, None, frozenset({"webhook"}), ALL_KINDS, None, None, "en")
        vault.notifications.save_preferences(session, owner.id, prefs)
        return owner.id


def _read(vault: Vault, owner_id: uuid.UUID) -> None:
    event = Event(Action.FIELDS_RELEASED, "agency:housing-bureau", owner_id=owner_id, fields=("resident-id-card/name",))
    with vault.db.session() as session:
        vault.audit.append(session, event)


def test_a_webhook_is_signed_with_the_vaults_published_key(vault: Vault, hook: Hook) -> None:
    owner_id = _subscribed(vault)
    _read(vault, owner_id)
    assert vault.outbox.run() == 1
    [(headers, body)] = hook.received
    parts = dict(p.split("=", 1) for p in headers[SIGNATURE_HEADER].split(","))
    with vault.db.session() as session:
        key = vault.keys.trusted_public_keys(session, VAULT_SIGNING)[parts["kid"]]
    key.verify(f"{parts['t']}.".encode() + body, jws.b64url_decode(parts["ed25519"]))
    tampered = body.replace(b"read your data", b"read nothing")
    with pytest.raises(nacl.exceptions.BadSignatureError):
        key.verify(f"{parts['t']}.".encode() + tampered, jws.b64url_decode(parts["ed25519"]))
    payload = json.loads(body)
    assert payload["owner"] == str(owner_id) and payload["kind"] == "read" and "/activity" in payload["link"]


def test_a_failed_delivery_is_retried_later_with_a_growing_wait_and_then_given_up(
    vault: Vault, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    owner_id = _subscribed(vault)
    hook.statuses = [503, 503]
    _read(vault, owner_id)
    assert vault.outbox.run() == 0
    with vault.db.session() as session:
        [message] = session.scalars(select(OutboxMessage)).all()
        assert message.state == "pending" and message.attempts == 1 and message.last_error == "webhook answered 503"
        first_wait = message.not_before - clock.now
    assert vault.outbox.run() == 0 and len(hook.received) == 1, "not retried before its time"
    clock.advance(seconds=first_wait.total_seconds() + 1)
    assert vault.outbox.run() == 0
    with vault.db.session() as session:
        message = session.scalars(select(OutboxMessage)).one()
        assert message.not_before - clock.now > first_wait, "the wait grows"
    clock.advance(hours=1)
    assert vault.outbox.run() == 1 and len(hook.received) == 3
    hook.statuses = [500] * MAX_ATTEMPTS
    _read(vault, owner_id)
    for _ in range(MAX_ATTEMPTS + 2):
        vault.outbox.run()
        clock.advance(hours=7)
    with vault.db.session() as session:
        states = sorted(m.state for m in session.scalars(select(OutboxMessage)))
    assert states == ["failed", "sent"] and len(hook.received) == 3 + MAX_ATTEMPTS


def test_a_message_is_claimed_once(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    _read(vault, _subscribed(vault))
    with vault.db.session() as session:
        [message_id] = due(session, clock.now)
        assert claim(session, message_id, "one", clock.now)
        assert not claim(session, message_id, "two", clock.now)
        assert due(session, clock.now) == []
    clock.advance(minutes=6)  # the first sender died holding it: after the lease another may take it
    with vault.db.session() as session:
        assert due(session, clock.now) == [message_id] and claim(session, message_id, "two", clock.now)


def test_a_persons_webhook_may_not_point_into_the_vaults_own_network(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as in production mode: a person's webhook must be public (development allows this machine, for trying it)
    monkeypatch.setattr(
        vault.notifications, "config", replace(vault.notifications.config, allow_private_webhooks=False)
    )
    with vault.db.session() as session:
        owner = factories.person(vault, session)
    for url in ("http://127.0.0.1:9/hook", "https://10.0.0.8/hook", "https://localhost/hook", "https://[::1]/h"):
        prefs = Preferences(None, url, frozenset({"webhook"}), ALL_KINDS, None, None, "zh")
        with pytest.raises(BadPreference) as caught, vault.db.session() as session:
            vault.notifications.save_preferences(session, owner.id, prefs)
        assert caught.value.field == "webhook", url
    with vault.db.session() as session:
        sender = WebhookSender(vault.keys.signer(session), allow_private=False)

    def resolves_privately(*args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443))]

    monkeypatch.setattr(socket, "getaddrinfo", resolves_privately)
    with pytest.raises(DeliveryFailed, match="private address") as failed:
        sender.send("https://hooks.example.org/x", Message("s", "t", "l"), {})
    assert failed.value.permanent
