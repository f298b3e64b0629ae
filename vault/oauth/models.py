"""OAuth state: registered agencies (clients), authorization codes, pushed requests and tokens.

Codes, tokens and request URIs are stored only as SHA-256 hashes: a copy of the database issues nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from vault.clock import utcnow


class Agency(SQLModel, table=True):
    """A requesting agency: who it is, what it does, and how it authenticates as an OAuth client."""

    __tablename__ = "agencies"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    client_id: str = Field(max_length=100, unique=True)
    name_zh: str = Field(max_length=200)
    name_en: str = Field(max_length=200)
    category: str = Field(max_length=50)
    department: str = Field(max_length=100)
    service_items: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    redirect_uris: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    grant_types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    auth_method: str = Field(max_length=50)
    secret_hash: bytes | None = None
    jwks: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    suspended_at: datetime | None = None
    suspended_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)


class AuthorizationCode(SQLModel, table=True):
    __tablename__ = "authorization_codes"

    code_hash: bytes = Field(primary_key=True)
    client_id: str = Field(max_length=100, index=True)
    grant_id: uuid.UUID = Field(foreign_key="grants.id", index=True)
    owner_id: uuid.UUID = Field(foreign_key="owners.id", index=True)
    redirect_uri: str = Field(max_length=2000)
    scope: str = Field(default="", max_length=500)
    code_challenge: str = Field(max_length=128)
    dpop_jkt: str | None = Field(default=None, max_length=64)  # the key the code's tokens must be bound to
    expires_at: datetime
    used_at: datetime | None = None


class PushedRequest(SQLModel, table=True):
    """A pushed authorization request (RFC 9126): the parameters, held for one use within 60 seconds."""

    __tablename__ = "pushed_requests"

    uri_hash: bytes = Field(primary_key=True)
    client_id: str = Field(max_length=100, index=True)
    params: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    expires_at: datetime
    used_at: datetime | None = None


class Token(SQLModel, table=True):
    """An access token and, where issued, its refresh token. Refresh rotation keeps one family per grant."""

    __tablename__ = "tokens"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    access_hash: bytes = Field(unique=True)
    refresh_hash: bytes | None = Field(default=None, unique=True)
    family_id: uuid.UUID = Field(index=True)
    client_id: str = Field(max_length=100, index=True)
    grant_id: uuid.UUID | None = Field(default=None, foreign_key="grants.id", index=True)
    owner_id: uuid.UUID | None = Field(default=None, index=True)
    code_hash: bytes | None = Field(default=None, index=True)
    scope: str = Field(default="", max_length=500)
    authorization_details: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    issued_at: datetime = Field(default_factory=utcnow)
    access_expires_at: datetime
    refresh_expires_at: datetime | None = None
    refresh_used_at: datetime | None = None
    revoked_at: datetime | None = None
    jkt: str | None = Field(default=None, max_length=64)  # DPoP-bound (RFC 9449): the key's RFC 7638 thumbprint


class ClientAssertion(SQLModel, table=True):
    """A private_key_jwt assertion's jti, kept until it expires so the same assertion cannot be replayed."""

    __tablename__ = "client_assertions"

    jti_hash: bytes = Field(primary_key=True)
    client_id: str = Field(max_length=100)
    expires_at: datetime = Field(index=True)


class DpopProof(SQLModel, table=True):
    """A DPoP proof's jti (hashed with its key's thumbprint), kept while the proof could still be accepted."""

    __tablename__ = "dpop_proofs"

    jti_hash: bytes = Field(primary_key=True)
    jkt: str = Field(max_length=64)
    expires_at: datetime = Field(index=True)
