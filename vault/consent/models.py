"""Consent: requests an owner is asked, the grants they gave, and every change to a grant (append-only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from vault.clock import utcnow


class ConsentRequest(SQLModel, table=True):
    """An agency's request for one service item, waiting for the owner (web redirect or backchannel)."""

    __tablename__ = "consent_requests"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: str = Field(max_length=20)  # "redirect" | "backchannel"
    client_id: str = Field(max_length=100, index=True)
    owner_id: uuid.UUID | None = Field(default=None, foreign_key="owners.id", index=True)
    service_item: str = Field(max_length=100)
    fields: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # predicate id -> the parameters the service item fixes: questions asked instead of values
    questions: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    purpose: str = Field(max_length=500)
    binding_message: str | None = Field(default=None, max_length=100)
    state: str = Field(max_length=20, index=True)
    oauth: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    decided_at: datetime | None = None
    grant_id: uuid.UUID | None = None
    auth_req_hash: bytes | None = Field(default=None, unique=True)
    interval: int = 5
    last_polled_at: datetime | None = None


class Grant(SQLModel, table=True):
    """Owner x agency x service item x fields x purpose x validity x use limit: the current-state projection."""

    __tablename__ = "grants"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="owners.id", index=True)
    client_id: str = Field(max_length=100, index=True)
    service_item: str = Field(max_length=100, index=True)
    fields: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    questions: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    purpose: str = Field(max_length=500)
    valid_from: datetime
    valid_until: datetime
    use_limit: int | None = None
    uses: int = 0
    state: str = Field(max_length=20, index=True)
    approved_by: uuid.UUID | None = None
    receipt: str
    receipt_hash: bytes
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None


class GrantEvent(SQLModel, table=True):
    """One change of a grant's state, as it happened; never updated."""

    __tablename__ = "grant_events"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    grant_id: uuid.UUID = Field(foreign_key="grants.id", index=True)
    owner_id: uuid.UUID = Field(foreign_key="owners.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    from_state: str | None = Field(default=None, max_length=20)
    to_state: str = Field(max_length=20)
    actor: str = Field(max_length=200)
    reason: str | None = Field(default=None, max_length=500)
