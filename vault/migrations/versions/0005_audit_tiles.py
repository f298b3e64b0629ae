"""audit log: batched sequencing, tiles, cosignatures

Events get an arrival number (`seq`) and their place in the tree (`leaf_index`) becomes NULL until the sequencer
integrates them; the tree's hashes are stored as tlog-tiles, built here for existing events, whose leaf hashes do
not change. The append-only guard now lets exactly one update through: the sequencer setting a NULL leaf_index.

Revision ID: 0005
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
import sqlmodel
from alembic import op

from vault.audit import tiles

revision = "0005"
down_revision = "0006"
branch_labels = None
depends_on = None

_EVENT_COLUMNS = "id, created_at, owner_id, actor, action, entry, leaf_hash"
_INDEXES = ("action", "actor", "created_at", "owner_id")
_CHUNK = 65536


def _events_table(name: str, *, sequenced: bool) -> None:
    """The events table as of this revision (sequenced=False) or as before it."""
    seq_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    head = (
        [sa.Column("leaf_index", sa.Integer(), autoincrement=False, nullable=False)]
        if sequenced
        else [
            sa.Column("seq", seq_type, autoincrement=True, nullable=False),
            sa.Column("leaf_index", sa.BigInteger(), nullable=True),
        ]
    )
    op.create_table(
        name,
        *head,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index" if sequenced else "seq"),
        sa.UniqueConstraint("id"),
        *([] if sequenced else [sa.UniqueConstraint("leaf_index")]),
    )


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _drop_guards(table: str) -> None:
    if _sqlite():
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
        return
    op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")


def _guard_events() -> None:
    """Refuse DELETE, TRUNCATE and every UPDATE but a NULL leaf_index set once, nothing else changed."""
    changed = " OR ".join(
        f"NEW.{c} IS NOT OLD.{c}" if _sqlite() else f"NEW.{c} IS DISTINCT FROM OLD.{c}"
        for c in ("seq", *_EVENT_COLUMNS.split(", "))
    )
    forbidden = f"OLD.leaf_index IS NOT NULL OR NEW.leaf_index IS NULL OR {changed}"
    if _sqlite():
        op.execute(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            f"WHEN {forbidden} BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
        )
        return
    op.execute(
        "CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP = 'UPDATE' AND NOT ({forbidden}) THEN RETURN NEW; END IF; "
        "RAISE EXCEPTION 'audit_events is append-only'; END $$"
    )
    op.execute(
        "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
    )


def _guard_plain(table: str) -> None:
    if _sqlite():
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


def _create_indexes(*, pending: bool) -> None:
    for column in _INDEXES:
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column], unique=False)
    if pending:
        where = sa.text("leaf_index IS NULL")
        op.create_index("ix_audit_events_pending", "audit_events", ["seq"], sqlite_where=where, postgresql_where=where)


def _leaf_hashes(conn: sa.Connection) -> Iterator[list[bytes]]:
    after = -1
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT leaf_index, leaf_hash FROM audit_events WHERE leaf_index > :a ORDER BY leaf_index LIMIT :n"
            ),
            {"a": after, "n": _CHUNK},
        ).all()
        if not rows:
            return
        after = rows[-1][0]
        yield [bytes(r[1]) for r in rows]


def _build_tiles(conn: sa.Connection) -> None:
    """Tiles for the events already in the tree; only the right edge is kept in memory."""
    edge: dict[tuple[int, int], bytes] = {}
    size = 0
    insert = sa.text("INSERT INTO audit_tiles (level, idx, hashes) VALUES (:level, :idx, :hashes)")
    for chunk in _leaf_hashes(conn):
        changed = tiles.append(lambda level, idx, known=edge: known.get((level, idx), b""), size, chunk)
        size += len(chunk)
        full = [{"level": k[0], "idx": k[1], "hashes": v} for k, v in changed.items() if len(v) == tiles.FULL_TILE]
        if full:
            conn.execute(insert, full)
        edge = {k: v for k, v in {**edge, **changed}.items() if len(v) < tiles.FULL_TILE}
    if edge:
        conn.execute(insert, [{"level": k[0], "idx": k[1], "hashes": v} for k, v in edge.items()])


def upgrade() -> None:
    conn = op.get_bind()
    _drop_guards("audit_events")
    _events_table("audit_events_next", sequenced=False)
    op.execute(
        f"INSERT INTO audit_events_next (seq, leaf_index, {_EVENT_COLUMNS}) "  # noqa: S608 (constant columns)
        f"SELECT leaf_index + 1, leaf_index, {_EVENT_COLUMNS} FROM audit_events"
    )
    for column in _INDEXES:
        op.drop_index(f"ix_audit_events_{column}", table_name="audit_events")
    op.drop_table("audit_events")
    op.rename_table("audit_events_next", "audit_events")
    if not _sqlite():
        op.execute(
            "SELECT setval(pg_get_serial_sequence('audit_events', 'seq'), "
            "COALESCE((SELECT max(seq) FROM audit_events), 0) + 1, false)"
        )
    _create_indexes(pending=True)
    _guard_events()

    op.create_table(
        "audit_tiles",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    op.create_table(
        "audit_cosignatures",
        sa.Column("tree_size", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("witness", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("line", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", "witness"),
    )
    _guard_plain("audit_cosignatures")
    _build_tiles(conn)


def downgrade() -> None:
    conn = op.get_bind()
    pending = conn.execute(sa.text("SELECT count(*) FROM audit_events WHERE leaf_index IS NULL")).scalar()
    if pending:
        raise RuntimeError(f"{pending} events are not yet in the tree: run the sequencer before downgrading")
    _drop_guards("audit_cosignatures")
    op.drop_table("audit_cosignatures")
    op.drop_table("audit_tiles")
    _drop_guards("audit_events")
    _events_table("audit_events_prev", sequenced=True)
    op.execute(
        f"INSERT INTO audit_events_prev (leaf_index, {_EVENT_COLUMNS}) SELECT leaf_index, {_EVENT_COLUMNS} "  # noqa: S608 (constant columns)
        "FROM audit_events"
    )
    op.drop_index("ix_audit_events_pending", table_name="audit_events")
    for column in _INDEXES:
        op.drop_index(f"ix_audit_events_{column}", table_name="audit_events")
    op.drop_table("audit_events")
    op.rename_table("audit_events_prev", "audit_events")
    _create_indexes(pending=False)
    _guard_plain("audit_events")
