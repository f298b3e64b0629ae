"""Stored keys: every key here is wrapped by a master key; none is ever stored in the clear."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from vault.clock import utcnow


class OwnerKey(SQLModel, table=True):
    """An owner's data key. `wrapped` becomes NULL when the owner is erased (crypto-shredding)."""

    __tablename__ = "owner_keys"

    owner_id: uuid.UUID = Field(primary_key=True, foreign_key="owners.id")
    dek_id: uuid.UUID = Field(unique=True)
    kek_id: str | None = Field(default=None, max_length=64, index=True)
    wrapped: bytes | None = None
    created_at: datetime = Field(default_factory=utcnow)
    destroyed_at: datetime | None = None


class SystemKey(SQLModel, table=True):
    """The vault's own keys (blind-index key, log signing key) and issuers' signing keys."""

    __tablename__ = "system_keys"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    purpose: str = Field(max_length=100, index=True)
    kid: str = Field(max_length=100, unique=True)
    kek_id: str = Field(max_length=64, index=True)
    wrapped: bytes
    public_key: bytes | None = None
    created_at: datetime = Field(default_factory=utcnow)
    retired_at: datetime | None = None


class OwnerText(SQLModel, table=True):
    """A free-text note about an owner (a suspension reason, an official's name): ciphertext only."""

    __tablename__ = "owner_texts"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="owners.id", index=True)
    kind: str = Field(max_length=40)
    text_ct: bytes
    created_at: datetime = Field(default_factory=utcnow)
