"""Beside each full audit tile, the roots of its 16 height-4 subtrees: a proof hashes ~30 nodes in a tile, not 255

Derived data (the tiles and the events stay as they are, leaf hashes unchanged), backfilled for the full tiles
already stored in batches of a few hundred tiles, so memory stays bounded at any log size. Self-contained: the
hashing (RFC 9162 interior nodes) is written out here, not imported, so later code cannot change what it does.

Revision ID: 0013_tile_subtree_roots
Revises: 0012_licence_indexes
Create Date: 2026-11-30
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op

revision = "0013_tile_subtree_roots"
down_revision = "0012_licence_indexes"
branch_labels = None
depends_on = None

_FULL_TILE = 256 * 32
_BATCH = 256  # tiles per read and per insert: about 2 MB


def _subtree_roots(tile: bytes) -> bytes:
    """The concatenated roots of the tile's 16 runs of 16 hashes: four rows of RFC 9162 node hashes up."""
    row = tile
    for _ in range(4):
        row = b"".join(hashlib.sha256(b"\x01" + row[i : i + 64]).digest() for i in range(0, len(row), 64))
    return row


def _full_tiles(conn: sa.Connection) -> Iterator[list[tuple[int, int, bytes]]]:
    """The full tiles, level by level in index order, a batch at a time (the partial ones are skipped)."""
    for (level,) in conn.execute(sa.text("SELECT DISTINCT level FROM audit_tiles ORDER BY level")).all():
        after = -1
        while True:
            rows = conn.execute(
                sa.text("SELECT idx, hashes FROM audit_tiles WHERE level = :l AND idx > :a ORDER BY idx LIMIT :n"),
                {"l": level, "a": after, "n": _BATCH},
            ).all()
            if not rows:
                break
            after = int(rows[-1][0])
            yield [(int(level), int(idx), bytes(data)) for idx, data in rows if len(data) == _FULL_TILE]


def upgrade() -> None:
    op.create_table(
        "audit_tile_roots",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("roots", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    conn = op.get_bind()
    insert = sa.text("INSERT INTO audit_tile_roots (level, idx, roots) VALUES (:level, :idx, :roots)")
    for batch in _full_tiles(conn):
        if batch:
            conn.execute(insert, [{"level": lv, "idx": i, "roots": _subtree_roots(data)} for lv, i, data in batch])


def downgrade() -> None:
    op.drop_table("audit_tile_roots")
