"""The access log: append-only events (the database refuses UPDATE and DELETE, but for the sequencer's one write of
an event's place in the tree), the tree's tiles, signed checkpoints and the witnesses' cosignatures."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, text
from sqlmodel import Field, SQLModel

from vault.clock import utcnow

_SEQ_TYPE = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid
PENDING = text("leaf_index IS NULL")


class AuditEvent(SQLModel, table=True):
    """One event. `seq` is its arrival; `leaf_index` its place in the tree, NULL until the sequencer integrates it.

    `entry` is the canonical JSON whose RFC 9162 leaf hash is `leaf_hash`; it never holds values.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_pending", "seq", sqlite_where=PENDING, postgresql_where=PENDING),)

    seq: int | None = Field(default=None, sa_column=Column(_SEQ_TYPE, primary_key=True, autoincrement=True))
    leaf_index: int | None = Field(default=None, sa_column=Column(BigInteger(), unique=True, nullable=True))
    id: uuid.UUID = Field(default_factory=uuid.uuid4, unique=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    owner_id: uuid.UUID | None = Field(default=None, index=True)
    actor: str = Field(max_length=200, index=True)
    action: str = Field(max_length=100, index=True)
    entry: bytes
    leaf_hash: bytes


class AuditTile(SQLModel, table=True):
    """A tlog-tiles tile: the concatenated hashes (32 bytes each, up to 256) of tile `idx` at `level`."""

    __tablename__ = "audit_tiles"

    level: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    idx: int = Field(sa_column=Column(BigInteger(), primary_key=True, autoincrement=False))
    hashes: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))


class AuditTileRoots(SQLModel, table=True):
    """The roots of a full tile's 16 height-4 subtrees (16 x 32 bytes), derived from it and never changed: a proof
    hashes at most 15 nodes inside a tile instead of 255. A DBA could alter them, as the tiles: a proof built from
    altered roots fails against the signed checkpoint, and `vault audit verify --full` compares them."""

    __tablename__ = "audit_tile_roots"

    level: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    idx: int = Field(sa_column=Column(BigInteger(), primary_key=True, autoincrement=False))
    roots: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement of the tree's size and root: a C2SP checkpoint note (older rows: a compact JWS)."""

    __tablename__ = "audit_checkpoints"

    tree_size: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    root: bytes
    signed: str
    created_at: datetime = Field(default_factory=utcnow)


class AuditCosignature(SQLModel, table=True):
    """A witness's cosignature line (tlog-cosignature) on the checkpoint of `tree_size`."""

    __tablename__ = "audit_cosignatures"

    tree_size: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    witness: str = Field(primary_key=True, max_length=300)
    line: str
    created_at: datetime = Field(default_factory=utcnow)
