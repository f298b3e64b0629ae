"""Tables of the web domain: server-side sessions and failed sign-ins (for throttling)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class WebSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, as the id."""

    __tablename__ = "web_sessions"

    id: str = Field(primary_key=True, max_length=64)
    account_id: uuid.UUID = Field(foreign_key="accounts.id", index=True)
    acting_for: uuid.UUID | None = Field(default=None, foreign_key="owners.id")
    csrf_token: str = Field(max_length=64)
    lang: str = Field(max_length=8)
    created_at: datetime = Field(index=True)
    last_seen_at: datetime = Field(index=True)


class LoginAttempt(SQLModel, table=True):
    """A sign-in attempt not (yet) known to have succeeded, keyed by a blind index of the login name or address."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_scope_digest_attempted_at", "scope", "digest", "attempted_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    scope: str = Field(max_length=10)  # "account" | "address"
    digest: bytes
    attempted_at: datetime = Field(index=True)
