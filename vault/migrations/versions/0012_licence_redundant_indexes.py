"""Drop two indexes that repeat the first column of a unique constraint on the same table

licence_versions(licence_id) is the prefix of UNIQUE(licence_id, version), and licence_fields(version_id) of
UNIQUE(version_id, name): every lookup by the one column uses the constraint's index already, and each insert
paid for a third B-tree (bulk issuance writes twelve field rows a licence; see docs/performance.md).

Revision ID: 0012_licence_indexes
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0012_licence_indexes"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("licence_fields", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licence_fields_version_id"))
    with op.batch_alter_table("licence_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licence_versions_licence_id"))


def downgrade() -> None:
    with op.batch_alter_table("licence_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_licence_versions_licence_id"), ["licence_id"], unique=False)
    with op.batch_alter_table("licence_fields", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_licence_fields_version_id"), ["version_id"], unique=False)
