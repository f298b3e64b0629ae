"""Licences, their immutable signed versions, per-field encrypted disclosures and status-list entries."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import NamedTuple

from sqlmodel import Field, SQLModel, UniqueConstraint

from vault.clock import utcnow


class Licence(SQLModel, table=True):
    """The current-state projection of one licence; its history is in versions and the access log."""

    __tablename__ = "licences"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="owners.id", index=True)
    type_code: str = Field(max_length=100, index=True)
    issuer_code: str = Field(max_length=100, index=True)
    state: str = Field(max_length=20, index=True)
    current_version: int = 1
    valid_until: date | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class LicenceVersion(SQLModel, table=True):
    """One issued version: never updated except to mark it superseded."""

    __tablename__ = "licence_versions"
    __table_args__ = (UniqueConstraint("licence_id", "version"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    licence_id: uuid.UUID = Field(foreign_key="licences.id")  # looked up through the unique constraint's index
    owner_id: uuid.UUID = Field(foreign_key="owners.id", index=True)
    version: int
    kid: str = Field(max_length=100)
    status_idx: int
    valid_from: date | None = None
    valid_until: date | None = None
    issued_at: datetime = Field(default_factory=utcnow)
    superseded_at: datetime | None = None
    jwt_ct: bytes


class LicenceHead(NamedTuple):
    """The columns of a licence a read needs, as a plain row (no ORM object: reads are the hot path)."""

    id: uuid.UUID
    owner_id: uuid.UUID
    type_code: str
    issuer_code: str
    state: str
    current_version: int
    valid_until: date | None


class VersionHead(NamedTuple):
    """The columns of a licence version a read needs to open its fields and present it, as a plain row."""

    id: uuid.UUID
    owner_id: uuid.UUID
    version: int
    valid_from: date | None
    jwt_ct: bytes


class LicenceField(SQLModel, table=True):
    """One selectively disclosable field: its SD-JWT disclosure, encrypted under the owner's key."""

    __tablename__ = "licence_fields"
    __table_args__ = (UniqueConstraint("version_id", "name"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    version_id: uuid.UUID = Field(foreign_key="licence_versions.id")  # the unique constraint's index serves
    # no index: fields are read by version, and owners are never deleted (erasure destroys the key), so nothing
    # looks them up by owner; it was thirteen index entries a licence (migration 0014)
    owner_id: uuid.UUID = Field(foreign_key="owners.id")
    name: str = Field(max_length=100)
    disclosure_ct: bytes


class StatusEntry(SQLModel, table=True):
    """A slot in an issuer's status list; slots are drawn at random so indexes do not reveal issue order."""

    __tablename__ = "status_entries"

    issuer_code: str = Field(primary_key=True, max_length=100)
    idx: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    version_id: uuid.UUID = Field(foreign_key="licence_versions.id", unique=True)
    status: int = 0
    updated_at: datetime = Field(default_factory=utcnow)
