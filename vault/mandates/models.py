"""Registered cases and the counters of reads under legal mandates. No case text and no identifier is stored."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel, UniqueConstraint

from vault.clock import utcnow


class MandateCase(SQLModel, table=True):
    """A case registered under a mandate: its keyed hash, the owners it covers (keyed hashes), its validity."""

    __tablename__ = "mandate_cases"
    __table_args__ = (UniqueConstraint("mandate", "case_digest"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    mandate: str = Field(max_length=100)
    case_digest: str = Field(max_length=64)
    owners: list[Any] = Field(sa_column=Column(JSON, nullable=False))
    registered_by: str = Field(max_length=200)
    valid_from: datetime
    valid_until: datetime
    created_at: datetime = Field(default_factory=utcnow)


class MandateCounter(SQLModel, table=True):
    """Reads counted in one fixed window for one key (a case or a client under a mandate), across processes."""

    __tablename__ = "mandate_counters"

    key: str = Field(primary_key=True, max_length=200)
    window_start: datetime = Field(primary_key=True)
    count: int = 0
