"""Owners (persons and enterprises) and who may act for an enterprise. Names and identifiers are ciphertext."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import NamedTuple

from sqlmodel import Field, SQLModel, UniqueConstraint

from vault.clock import utcnow


class OwnerKind(StrEnum):
    PERSON = "person"
    ENTERPRISE = "enterprise"


class RepresentativeRole(StrEnum):
    LEGAL_REPRESENTATIVE = "legal_representative"
    AUTHORISED_AGENT = "authorised_agent"


class Owner(SQLModel, table=True):
    __tablename__ = "owners"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: str = Field(max_length=20)
    name_ct: bytes | None
    identifier_ct: bytes | None
    created_at: datetime = Field(default_factory=utcnow)
    erase_requested_at: datetime | None = None
    erase_after: datetime | None = Field(default=None, index=True)
    erased_at: datetime | None = None


class OwnerHead(NamedTuple):
    """An owner as a read needs them, as a plain row: who, what kind, whether erased, their wrapped data key (None
    once erased) and whether they chose how to be notified, fetched in the same statement that finds them."""

    id: uuid.UUID
    kind: str
    erased_at: datetime | None
    dek_id: uuid.UUID | None
    wrapped: bytes | None
    chose: bool


class BlindIndex(SQLModel, table=True):
    """Exact-match lookup of an identifier by its keyed hash; deleted with the owner's key on erasure."""

    __tablename__ = "blind_indexes"
    __table_args__ = (UniqueConstraint("kind", "digest"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="owners.id", index=True)
    kind: str = Field(max_length=100)
    digest: bytes
    record_id: uuid.UUID | None = None


class Representative(SQLModel, table=True):
    """A person who may act for an enterprise, with the dates between which they may."""

    __tablename__ = "representatives"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="owners.id", index=True)
    person_id: uuid.UUID = Field(foreign_key="owners.id", index=True)
    role: str = Field(max_length=40)
    valid_from: date
    valid_until: date | None = None
    created_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None  # set once, by the one UPDATE that claims the end of the link

    def in_force(self, on: date) -> bool:
        return self.ended_at is None and self.valid_from <= on and (self.valid_until is None or on <= self.valid_until)


class AccountRole(StrEnum):
    CITIZEN = "citizen"
    STAFF = "staff"


class Account(SQLModel, table=True):
    """A web login. The login name is stored only as a blind index; the password only as an argon2id hash."""

    __tablename__ = "accounts"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    login_digest: bytes = Field(unique=True)
    owner_id: uuid.UUID | None = Field(default=None, foreign_key="owners.id", index=True)
    role: str = Field(max_length=20)
    password_hash: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    disabled_at: datetime | None = None


class ActivationCode(SQLModel, table=True):
    """A one-time code an operator hands a person so they can set their password: stored hashed, used once."""

    __tablename__ = "activation_codes"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="owners.id", index=True)
    code_hash: bytes = Field(unique=True)
    expires_at: datetime
    used_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
