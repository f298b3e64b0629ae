"""Tables of the notifications domain: what each data space was told, how it wants to be told, and the outbox.

No row holds a value of a licence field or an identifier in the clear: notifications keep references (agency,
service item, field names, the event or grant they point to) and are rendered when shown or sent; a person's
e-mail address and webhook URL are encrypted under the owner's key.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from vault.clock import utcnow


class Kind(StrEnum):
    REQUEST = "request"  # an agency asks for consent (a counter request among them)
    READ = "read"  # an agency read my data under my consent
    MANDATE_READ = "mandate_read"  # read under a legal mandate, shown once its deferral has passed
    GRANT_EXPIRING = "grant_expiring"  # a consent I gave ends soon
    REPRESENTATIVE = "representative"  # who may act for my company changed


class Channel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


# pending --claim--> sending --handed over--> sent
#                    sending --failed, tries left--> pending (not_before moves back with the backoff)
#                    sending --failed for good, or out of tries--> failed
#                    sending --claim older than the lease (the sender died)--> claimed again
# pending --no destination any more when its turn comes--> skipped
class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class Notification(SQLModel, table=True):
    """Something a data space is told about; visible from `visible_at` (a mandate's deferral end)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_owner_id_visible_at", "owner_id", "visible_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="owners.id")
    kind: str = Field(max_length=40)
    client_id: str | None = Field(default=None, max_length=100)
    service_item: str | None = Field(default=None, max_length=100)
    mandate: str | None = Field(default=None, max_length=100)
    fields: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # names, never values
    ref: str | None = Field(default=None, max_length=100)  # the request, grant or event it is about
    urgent: bool = False  # a counter request: the person is waiting there, quiet hours do not hold it back
    dedupe_key: str = Field(max_length=120, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    visible_at: datetime
    read_at: datetime | None = None


class NotificationPreference(SQLModel, table=True):
    """How one data space wants to be told beyond the app; no row means in the app only."""

    __tablename__ = "notification_preferences"

    owner_id: uuid.UUID = Field(foreign_key="owners.id", primary_key=True)
    email_ct: bytes | None = None
    webhook_ct: bytes | None = None
    channels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    kinds: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    quiet_start: int | None = None  # minutes after local midnight
    quiet_end: int | None = None
    lang: str = Field(default="zh", max_length=8)
    updated_at: datetime = Field(default_factory=utcnow)


class OutboxMessage(SQLModel, table=True):
    """One notification to hand to one channel, written in the transaction that caused it."""

    __tablename__ = "notification_outbox"
    __table_args__ = (Index("ix_notification_outbox_state_not_before", "state", "not_before"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    notification_id: uuid.UUID = Field(foreign_key="notifications.id", index=True)
    owner_id: uuid.UUID = Field(foreign_key="owners.id", index=True)
    channel: str = Field(max_length=20)
    state: str = Field(default=OutboxState.PENDING.value, max_length=20)
    attempts: int = 0
    not_before: datetime
    claimed_at: datetime | None = None
    claimed_by: str | None = Field(default=None, max_length=64)
    sent_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
