"""questions (predicates) asked instead of values, on consent requests and grants

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("consent_requests", "grants"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("questions", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    for table in ("grants", "consent_requests"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("questions")
