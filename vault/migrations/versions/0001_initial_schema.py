"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


APPEND_ONLY_TABLES = ("audit_events", "audit_checkpoints")


def _append_only(table: str) -> None:
    """The database itself refuses UPDATE and DELETE on the log, whoever connects."""
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
        return
    op.execute(
        f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{table} is append-only'; END $$"
    )
    op.execute(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()"
    )


def _drop_append_only(table: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
        return
    op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("signed", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size"),
    )
    op.create_table(
        "audit_events",
        sa.Column("leaf_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "owners",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("name_ct", sa.LargeBinary(), nullable=True),
        sa.Column("identifier_ct", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("erase_requested_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("erase_after", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("erased_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("owners", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_owners_erase_after"), ["erase_after"], unique=False)

    op.create_table(
        "system_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("kid", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("kek_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("retired_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kid"),
    )
    with op.batch_alter_table("system_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_system_keys_kek_id"), ["kek_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_system_keys_purpose"), ["purpose"], unique=False)

    op.create_table(
        "blind_indexes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["owners.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "digest"),
    )
    with op.batch_alter_table("blind_indexes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_blind_indexes_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "licences",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("type_code", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("issuer_code", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["owners.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("licences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_licences_issuer_code"), ["issuer_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_licences_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_licences_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_licences_type_code"), ["type_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_licences_valid_until"), ["valid_until"], unique=False)

    op.create_table(
        "owner_keys",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("dek_id", sa.Uuid(), nullable=False),
        sa.Column("kek_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("destroyed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["owners.id"],
        ),
        sa.PrimaryKeyConstraint("owner_id"),
        sa.UniqueConstraint("dek_id"),
    )
    with op.batch_alter_table("owner_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_owner_keys_kek_id"), ["kek_id"], unique=False)

    op.create_table(
        "representatives",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["owners.id"],
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["owners.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("representatives", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_representatives_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_representatives_person_id"), ["person_id"], unique=False)

    op.create_table(
        "licence_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("licence_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kid", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("status_idx", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("issued_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("superseded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("jwt_ct", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["licence_id"],
            ["licences.id"],
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["owners.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("licence_id", "version"),
    )
    with op.batch_alter_table("licence_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_licence_versions_licence_id"), ["licence_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_licence_versions_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "licence_fields",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("disclosure_ct", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["owners.id"],
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["licence_versions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id", "name"),
    )
    with op.batch_alter_table("licence_fields", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_licence_fields_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_licence_fields_version_id"), ["version_id"], unique=False)

    op.create_table(
        "status_entries",
        sa.Column("issuer_code", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["licence_versions.id"],
        ),
        sa.PrimaryKeyConstraint("issuer_code", "idx"),
        sa.UniqueConstraint("version_id"),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("login_digest", sa.LargeBinary(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("disabled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("login_digest"),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_accounts_owner_id"), ["owner_id"], unique=False)

    for table in APPEND_ONLY_TABLES:
        _append_only(table)


def downgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        _drop_append_only(table)
    op.drop_table("accounts")
    op.drop_table("status_entries")
    with op.batch_alter_table("licence_fields", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licence_fields_version_id"))
        batch_op.drop_index(batch_op.f("ix_licence_fields_owner_id"))

    op.drop_table("licence_fields")
    with op.batch_alter_table("licence_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licence_versions_owner_id"))
        batch_op.drop_index(batch_op.f("ix_licence_versions_licence_id"))

    op.drop_table("licence_versions")
    with op.batch_alter_table("representatives", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_representatives_person_id"))
        batch_op.drop_index(batch_op.f("ix_representatives_owner_id"))

    op.drop_table("representatives")
    with op.batch_alter_table("owner_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_owner_keys_kek_id"))

    op.drop_table("owner_keys")
    with op.batch_alter_table("licences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licences_valid_until"))
        batch_op.drop_index(batch_op.f("ix_licences_type_code"))
        batch_op.drop_index(batch_op.f("ix_licences_state"))
        batch_op.drop_index(batch_op.f("ix_licences_owner_id"))
        batch_op.drop_index(batch_op.f("ix_licences_issuer_code"))

    op.drop_table("licences")
    with op.batch_alter_table("blind_indexes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blind_indexes_owner_id"))

    op.drop_table("blind_indexes")
    with op.batch_alter_table("system_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_system_keys_purpose"))
        batch_op.drop_index(batch_op.f("ix_system_keys_kek_id"))

    op.drop_table("system_keys")
    with op.batch_alter_table("owners", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_owners_erase_after"))

    op.drop_table("owners")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_owner_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_created_at"))
        batch_op.drop_index(batch_op.f("ix_audit_events_actor"))
        batch_op.drop_index(batch_op.f("ix_audit_events_action"))

    op.drop_table("audit_events")
    op.drop_table("audit_checkpoints")
