"""mandate cases and read counters

Revision ID: 0006
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mandate_cases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("mandate", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("case_digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("owners", sa.JSON(), nullable=False),
        sa.Column("registered_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("valid_from", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("valid_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mandate", "case_digest"),
    )
    op.create_table(
        "mandate_counters",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("window_start", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start"),
    )


def downgrade() -> None:
    op.drop_table("mandate_counters")
    op.drop_table("mandate_cases")
