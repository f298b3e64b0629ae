"""Drop licence_fields(owner_id): no query looks a licence's fields up by owner

A version's fields are read by UNIQUE(version_id, name), with the owner's id checked beside it, and owners are never
deleted (erasure destroys their key), so the foreign key needs no index to check a delete either. Worse than unused:
given `owner_id = ? AND version_id IN (...) AND name IN (...)`, SQLite chose this index and read every field of
every licence the owner holds to find a few. Each licence also wrote thirteen entries into it, the most of any
index a bulk issue maintains (see docs/performance.md).

Revision ID: 0014_licence_fields_owner_index
Revises: 0013_tile_subtree_roots
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0014_licence_fields_owner_index"
down_revision = "0013_tile_subtree_roots"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("licence_fields", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licence_fields_owner_id"))


def downgrade() -> None:
    with op.batch_alter_table("licence_fields", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_licence_fields_owner_id"), ["owner_id"], unique=False)
