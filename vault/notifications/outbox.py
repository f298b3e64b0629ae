"""Draining the outbox: claim a message (a guarded UPDATE, so two workers never send the same one), send it
outside any transaction, then record the outcome; failures retry with exponential backoff.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault import clock
from vault.db import Database
from vault.notifications.errors import DeliveryFailed
from vault.notifications.interfaces import Message, Renderer, Sender
from vault.notifications.models import Notification, OutboxMessage, OutboxState
from vault.notifications.services import NotificationService

log = logging.getLogger("vault.notifications")

LEASE = timedelta(minutes=5)  # a claim older than this is taken to belong to a sender that died
MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=6)
BATCH = 100


def backoff(attempts: int) -> timedelta:
    """Wait before try number `attempts + 1`: 30 s, 1 min, 2 min, ... at most 6 h."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), LONGEST_RETRY)


def due(session: Session, now: datetime, limit: int = BATCH) -> list[uuid.UUID]:
    """Ids of messages whose turn has come, or whose claim has lapsed, oldest first."""
    query = select(OutboxMessage.id).where(
        or_(
            (col(OutboxMessage.state) == OutboxState.PENDING.value) & (col(OutboxMessage.not_before) <= now),
            (col(OutboxMessage.state) == OutboxState.SENDING.value) & (col(OutboxMessage.claimed_at) < now - LEASE),
        )
    )
    return list(session.scalars(query.order_by(col(OutboxMessage.not_before)).limit(limit)))


def claim(session: Session, message_id: uuid.UUID, worker: str, now: datetime) -> bool:
    """Take the message for `worker`; False if another worker holds it or it is not due. Exactly one of any
    number of concurrent claims wins: the UPDATE re-checks the state under the row's write lock."""
    result = session.execute(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.id) == message_id,
            or_(
                (col(OutboxMessage.state) == OutboxState.PENDING.value) & (col(OutboxMessage.not_before) <= now),
                (col(OutboxMessage.state) == OutboxState.SENDING.value) & (col(OutboxMessage.claimed_at) < now - LEASE),
            ),
        )
        .values(
            state=OutboxState.SENDING.value,
            claimed_at=now,
            claimed_by=worker,
            attempts=OutboxMessage.attempts + 1,
        )
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def finish(session: Session, message_id: uuid.UUID, worker: str, now: datetime, failure: DeliveryFailed | None) -> str:
    """Record the outcome of `worker`'s claim; a claim lost to another worker in the meantime changes nothing."""
    message = session.get(OutboxMessage, message_id)
    if message is None or message.state != OutboxState.SENDING.value or message.claimed_by != worker:
        return "lost"
    if failure is None:
        message.state, message.sent_at, message.last_error = OutboxState.SENT.value, now, None
    elif failure.permanent or message.attempts >= MAX_ATTEMPTS:
        message.state, message.last_error = OutboxState.FAILED.value, failure.reason[:200]
    else:
        message.state, message.last_error = OutboxState.PENDING.value, failure.reason[:200]
        message.not_before = now + backoff(message.attempts)
    message.claimed_by = None
    session.add(message)
    return message.state


@dataclass(frozen=True)
class Prepared:
    channel: str
    destination: str
    message: Message
    payload: dict[str, object]


class Outbox:
    """Delivers due messages through `senders` (channel -> sender), each claim in its own transaction."""

    def __init__(
        self,
        db: Database,
        notifications: NotificationService,
        renderer: Renderer,
        senders: Callable[[Session], dict[str, Sender]],
    ) -> None:
        self.db = db
        self.notifications = notifications
        self.renderer = renderer
        self.senders = senders

    def _prepare(self, session: Session, message_id: uuid.UUID) -> Prepared | None:
        message = session.get(OutboxMessage, message_id)
        note = session.get(Notification, message.notification_id) if message else None
        if message is None or note is None:
            return None
        destination, lang = self.notifications.destination(session, message)
        if destination is None:
            message.state, message.claimed_by = OutboxState.SKIPPED.value, None
            session.add(message)
            return None
        payload: dict[str, object] = {
            "id": str(note.id),
            "kind": note.kind,
            "owner": str(note.owner_id),
            "created_at": note.created_at.isoformat(),
            "urgent": note.urgent,
        }
        return Prepared(message.channel, destination, self.renderer.render(session, note, lang), payload)

    def deliver_one(self, message_id: uuid.UUID, worker: str) -> str:
        """Claim, send and record one message; returns its new state, or "lost" when another worker had it."""
        with self.db.session() as session:
            if not claim(session, message_id, worker, clock.utcnow()):
                return "lost"
            prepared = self._prepare(session, message_id)
            senders = self.senders(session) if prepared else {}
        if prepared is None:
            return OutboxState.SKIPPED.value
        failure: DeliveryFailed | None = None
        sender = senders.get(prepared.channel)
        try:
            if sender is None:
                raise DeliveryFailed(f"no {prepared.channel} channel configured", permanent=True)
            sender.send(prepared.destination, prepared.message, prepared.payload)
        except DeliveryFailed as exc:
            failure = exc
            log.warning("notification %s not delivered by %s: %s", message_id, prepared.channel, exc.reason)
        with self.db.session() as session:
            return finish(session, message_id, worker, clock.utcnow(), failure)

    def drain(self, worker: str | None = None, limit: int = BATCH) -> int:
        """Deliver every due message once; returns how many were handed over."""
        worker = worker or uuid.uuid4().hex
        with self.db.session() as session:
            ids = due(session, clock.utcnow(), limit)
        return sum(self.deliver_one(i, worker) == OutboxState.SENT.value for i in ids)

    def run(self) -> int:
        """Maintenance: note consents about to end, then deliver what is due."""
        with self.db.session() as session:
            self.notifications.sweep_expiring(session)
        return self.drain()
