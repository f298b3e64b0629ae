"""The access log: append-only events (the database refuses UPDATE and DELETE) and signed checkpoints."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from vault.clock import utcnow


class AuditEvent(SQLModel, table=True):
    """One leaf of the Merkle tree. `entry` is the canonical JSON that was hashed; it never holds values."""

    __tablename__ = "audit_events"

    leaf_index: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    id: uuid.UUID = Field(default_factory=uuid.uuid4, unique=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    owner_id: uuid.UUID | None = Field(default=None, index=True)
    actor: str = Field(max_length=200, index=True)
    action: str = Field(max_length=100, index=True)
    entry: bytes
    leaf_hash: bytes


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement of the tree's size and root at a moment (a compact JWS by the vault's key)."""

    __tablename__ = "audit_checkpoints"

    tree_size: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    root: bytes
    signed: str
    created_at: datetime = Field(default_factory=utcnow)
