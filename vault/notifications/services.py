"""Notifications: written in the unit of work of the event that causes them, shown in the app, and queued in the
outbox for the channels the owner chose.

What causes one: an agency asking for consent (a counter request is urgent), a read of the owner's data, a read
under a legal mandate (visible only once the mandate's deferral has passed), a consent about to end, a change of
who may act for a company. Each is recorded once (a dedupe key), so a retried event or sweep adds nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, bindparam, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault import clock
from vault.audit.events import Action, Event
from vault.consent.models import Grant
from vault.crypto.envelope import FieldContext
from vault.crypto.errors import CryptoError
from vault.crypto.services import KeyService
from vault.db import insert_many
from vault.notifications.channels import check_webhook_url, valid_address
from vault.notifications.errors import BadPreference
from vault.notifications.models import (
    Channel,
    Kind,
    Notification,
    NotificationPreference,
    OutboxMessage,
    OutboxState,
)
from vault.notifications.quiet import release_time
from vault.owners.models import Owner

EXPIRY_WARNING = timedelta(days=3)
LIST_LIMIT = 100
EMAIL_FIELD = "notify:email"
WEBHOOK_FIELD = "notify:webhook"
LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class DeliveryConfig:
    """Where messages may go: the operator's SMTP server and webhook, if any, and the owners' zone."""

    smtp_url: str | None
    webhook_url: str | None
    public_url: str
    timezone: ZoneInfo
    allow_private_webhooks: bool  # development: a person's webhook may point at this machine


@dataclass(frozen=True)
class Preferences:
    """A data space's settings, decrypted for its own pages only."""

    email: str | None
    webhook: str | None
    channels: frozenset[str]
    kinds: frozenset[str]
    quiet_start: int | None
    quiet_end: int | None
    lang: str


_NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
_PREFERENCES = NotificationPreference.__table__  # type: ignore[attr-defined]
_OWNERS = Owner.__table__  # type: ignore[attr-defined]
_OWNERS_AND_PREFERENCES = (  # each owner that exists, and their preferences' key (None: they chose nothing)
    sa_select(_OWNERS.c.id, _PREFERENCES.c.owner_id.label("chose"))
    .select_from(_OWNERS.outerjoin(_PREFERENCES, _PREFERENCES.c.owner_id == _OWNERS.c.id))
    .where(_OWNERS.c.id.in_(bindparam("owners", expanding=True)))
)
_KNOWN_CHOICES = "notifications.known_choices"  # in session.info: owner id -> whether they chose any channel


def known_choices(session: Session, choices: Mapping[uuid.UUID, bool]) -> None:
    """Tell this transaction's notifications which owners exist and whether each chose how to be told, as a read
    found them a moment ago (with the owner, in one statement): a group commit's batch of reads then inserts its
    notifications without asking again. A choice made since that read is seen by the owner's next one."""
    session.info.setdefault(_KNOWN_CHOICES, {}).update(choices)


DEFAULT_PREFERENCES = Preferences(None, None, frozenset(), frozenset(k.value for k in Kind), None, None, "zh")


def _ctx(owner_id: uuid.UUID, field: str) -> FieldContext:
    return FieldContext(owner_id=owner_id, record_id=owner_id, field=field)


def _note(
    owner_id: uuid.UUID,
    kind: Kind,
    *,
    dedupe_key: str,
    at: datetime,
    client_id: str | None = None,
    service_item: str | None = None,
    mandate: str | None = None,
    fields: Iterable[str] = (),
    ref: str | None = None,
    urgent: bool = False,
    visible_at: datetime | None = None,
) -> dict[str, Any]:
    """A notification's row (field names, never values)."""
    return {
        "id": uuid.uuid4(),
        "owner_id": owner_id,
        "kind": kind.value,
        "client_id": client_id,
        "service_item": service_item,
        "mandate": mandate,
        "fields": sorted(fields),
        "ref": ref,
        "urgent": urgent,
        "dedupe_key": dedupe_key,
        "created_at": at,
        "visible_at": visible_at or at,
        "read_at": None,
    }


class NotificationService:
    def __init__(self, keys: KeyService, config: DeliveryConfig, deferral_days: Callable[[str], int]) -> None:
        self.keys = keys
        self.config = config
        self.deferral_days = deferral_days

    # what causes a notification

    def on_events(self, session: Session, stamped: list[tuple[Event, datetime, uuid.UUID]]) -> None:
        """The audit log's listener: runs inside the transaction that appends the events (each with its stamp and
        id), and records what they cause with one query and one insert however many there are."""
        at = clock.utcnow()  # the vault's clock, which tests move; the event's stamp differs by a moment at most
        notes = [note for event, _, event_id in stamped if (note := self._caused(event, event_id, at)) is not None]
        if notes:
            self._record(session, notes)

    def _caused(self, event: Event, event_id: uuid.UUID, at: datetime) -> dict[str, Any] | None:
        """The notification an event causes, as a row to insert; None if it causes none."""
        owner_id = event.owner_id
        if owner_id is None or event.decision == "deny":
            return None
        agency = event.actor.removeprefix("agency:") if event.actor.startswith("agency:") else None
        if event.action is Action.CONSENT_REQUESTED:
            counter = event.detail.get("kind") == "backchannel"
            return _note(
                owner_id,
                Kind.REQUEST,
                dedupe_key=f"event:{event_id}",
                client_id=agency,
                service_item=event.service_item,
                fields=event.fields,
                ref=str(event.detail.get("request", "")) or None,
                urgent=counter,
                at=at,
            )
        if event.action is Action.FIELDS_RELEASED and agency is not None:
            days = self.deferral_days(event.mandate) if event.mandate else 0
            return _note(
                owner_id,
                Kind.MANDATE_READ if event.mandate else Kind.READ,
                dedupe_key=f"event:{event_id}",
                client_id=agency,
                service_item=event.service_item,
                mandate=event.mandate,
                fields=event.fields,
                ref=str(event_id),
                at=at,
                visible_at=at + timedelta(days=days),
            )
        if event.action.value.startswith("representative."):
            return _note(owner_id, Kind.REPRESENTATIVE, dedupe_key=f"event:{event_id}", ref=str(event_id), at=at)
        return None

    def sweep_expiring(self, session: Session, now: datetime | None = None) -> int:
        """Tell owners about active consents ending within EXPIRY_WARNING; each grant once."""
        now = now or clock.utcnow()
        grants = session.scalars(
            select(Grant).where(
                Grant.state == "active",
                col(Grant.valid_until) > now,
                col(Grant.valid_until) <= now + EXPIRY_WARNING,
            )
        ).all()
        keys = [f"grant-expiring:{g.id}" for g in grants]
        told = set(session.scalars(select(Notification.dedupe_key).where(col(Notification.dedupe_key).in_(keys))))
        notes = [
            _note(
                grant.owner_id,
                Kind.GRANT_EXPIRING,
                dedupe_key=key,
                client_id=grant.client_id,
                service_item=grant.service_item,
                ref=str(grant.id),
                at=now,
            )
            for grant, key in zip(grants, keys, strict=True)
            if key not in told
        ]
        return self._record(session, notes) if notes else 0

    def _record(self, session: Session, notes: list[dict[str, Any]]) -> int:
        """Insert the notifications of owners that exist, and queue each for the channels its owner chose for its
        kind: one query for the owners and whether they chose anything (none when the transaction already knows, see
        `known_choices`), one multi-row insert. Returns how many."""
        connection = session.connection()
        known: dict[uuid.UUID, bool] = session.info.get(_KNOWN_CHOICES, {})
        owners = list({note["owner_id"] for note in notes} - set(known))
        chose: dict[uuid.UUID, object] = {owner: True if choice else None for owner, choice in known.items()}
        if owners:
            chose.update(connection.execute(_OWNERS_AND_PREFERENCES, {"owners": owners}).all())
        notes = [note for note in notes if note["owner_id"] in chose]
        if notes:
            insert_many(connection, _NOTIFICATIONS, notes)
        for note in notes:
            if chose[note["owner_id"]] is not None:
                self._queue(session, note)
        return len(notes)

    def _queue(self, session: Session, note: dict[str, Any]) -> None:
        """The outbox messages of one notification, for each channel its owner chose for its kind."""
        prefs = session.get(NotificationPreference, note["owner_id"])
        if prefs is None or note["kind"] not in prefs.kinds:
            return
        shown = note["visible_at"]
        due = shown if note["urgent"] else release_time(shown, prefs.quiet_start, prefs.quiet_end, self.config.timezone)
        for channel in sorted(set(prefs.channels) & self.available_channels(prefs)):
            session.add(
                OutboxMessage(notification_id=note["id"], owner_id=note["owner_id"], channel=channel, not_before=due)
            )
        session.flush()

    def available_channels(self, prefs: NotificationPreference) -> set[str]:
        """Channels that can deliver to this owner now: e-mail with an SMTP server and an address, a webhook with
        somewhere to post."""
        channels = set()
        if self.config.smtp_url and prefs.email_ct is not None:
            channels.add(Channel.EMAIL.value)
        if self.config.webhook_url or prefs.webhook_ct is not None:
            channels.add(Channel.WEBHOOK.value)
        return channels

    def offered_channels(self) -> list[str]:
        """The channels a person may choose: e-mail only where the operator configured an SMTP server."""
        return [c.value for c in Channel if c is not Channel.EMAIL or self.config.smtp_url]

    # the notification centre

    def _visible(self, owner_id: uuid.UUID, now: datetime) -> ColumnElement[bool]:
        return and_(col(Notification.owner_id) == owner_id, col(Notification.visible_at) <= now)

    def visible(self, session: Session, owner_id: uuid.UUID, now: datetime | None = None) -> list[Notification]:
        now = now or clock.utcnow()
        query = select(Notification).where(self._visible(owner_id, now))
        return list(session.scalars(query.order_by(col(Notification.visible_at).desc()).limit(LIST_LIMIT)))

    def unread(self, session: Session, owner_id: uuid.UUID, now: datetime | None = None) -> int:
        now = now or clock.utcnow()
        query = select(func.count()).select_from(Notification)
        query = query.where(self._visible(owner_id, now), col(Notification.read_at).is_(None))
        return int(session.scalar(query) or 0)

    def mark_read(self, session: Session, owner_id: uuid.UUID, now: datetime | None = None) -> int:
        """Mark every visible notification of the data space read; a deferred one stays unseen and unread."""
        now = now or clock.utcnow()
        result = session.execute(
            update(Notification)
            .where(self._visible(owner_id, now), col(Notification.read_at).is_(None))
            .values(read_at=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    # preferences

    def preferences(self, session: Session, owner_id: uuid.UUID) -> Preferences:
        row = session.get(NotificationPreference, owner_id)
        if row is None:
            return DEFAULT_PREFERENCES
        dek = self.keys.owner_key(session, owner_id)
        email = dek.decrypt_text(row.email_ct, _ctx(owner_id, EMAIL_FIELD)) if row.email_ct else None
        webhook = dek.decrypt_text(row.webhook_ct, _ctx(owner_id, WEBHOOK_FIELD)) if row.webhook_ct else None
        return Preferences(
            email, webhook, frozenset(row.channels), frozenset(row.kinds), row.quiet_start, row.quiet_end, row.lang
        )

    def save_preferences(self, session: Session, owner_id: uuid.UUID, prefs: Preferences) -> None:
        """Validate and store; raises BadPreference naming the setting at fault. Address and URL are encrypted."""
        if prefs.email is not None and not valid_address(prefs.email):
            raise BadPreference("email", "not an e-mail address")
        if prefs.webhook is not None:
            try:
                check_webhook_url(prefs.webhook, allow_private=self.config.allow_private_webhooks)
            except ValueError as exc:
                raise BadPreference("webhook", str(exc)) from None
        unknown = (prefs.channels - {c.value for c in Channel}) or (prefs.kinds - {k.value for k in Kind})
        if unknown:
            raise BadPreference("channels", f"unknown choice {sorted(unknown)[0]!r}")
        if Channel.EMAIL.value in prefs.channels and (prefs.email is None or not self.config.smtp_url):
            raise BadPreference("email", "e-mail needs an address (and the vault needs an SMTP server)")
        if Channel.WEBHOOK.value in prefs.channels and prefs.webhook is None and not self.config.webhook_url:
            raise BadPreference("webhook", "a webhook needs a URL")
        if (prefs.quiet_start is None) != (prefs.quiet_end is None):
            raise BadPreference("quiet", "quiet hours need both a start and an end")
        if prefs.lang not in LANGUAGES:
            raise BadPreference("lang", "the language must be zh or en")
        dek = self.keys.owner_key(session, owner_id)
        row = session.get(NotificationPreference, owner_id) or NotificationPreference(owner_id=owner_id)
        row.email_ct = dek.encrypt_text(prefs.email, _ctx(owner_id, EMAIL_FIELD)) if prefs.email else None
        row.webhook_ct = dek.encrypt_text(prefs.webhook, _ctx(owner_id, WEBHOOK_FIELD)) if prefs.webhook else None
        row.channels = sorted(prefs.channels)
        row.kinds = sorted(prefs.kinds)
        row.quiet_start, row.quiet_end, row.lang = prefs.quiet_start, prefs.quiet_end, prefs.lang
        row.updated_at = clock.utcnow()
        session.add(row)
        session.flush()

    def destination(self, session: Session, message: OutboxMessage) -> tuple[str | None, str]:
        """Where a queued message goes now, and in which language; None when there is nowhere any more."""
        row = session.get(NotificationPreference, message.owner_id)
        if row is None:
            return None, "zh"
        try:
            prefs = self.preferences(session, message.owner_id)
        except CryptoError:  # the owner was erased: their address went with their key
            return None, row.lang
        if message.channel not in prefs.channels:
            return None, prefs.lang
        if message.channel == Channel.EMAIL.value:
            return (prefs.email if self.config.smtp_url else None), prefs.lang
        return prefs.webhook or self.config.webhook_url, prefs.lang

    def pending(self, session: Session, notification_id: uuid.UUID) -> list[OutboxMessage]:
        query = select(OutboxMessage).where(OutboxMessage.notification_id == notification_id)
        return list(session.scalars(query.where(OutboxMessage.state == OutboxState.PENDING.value)))
