"""Migrations and models agree: after `vault db upgrade` Alembic finds nothing left to generate."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import SQLModel

from vault.audit import merkle, tiles
from vault.db import alembic_config, import_models, make_engine, upgrade

WEB_TABLES = {"web_sessions", "login_attempts"}


def test_the_migrated_schema_is_exactly_the_models(database_url: str) -> None:
    import_models()
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    engine.dispose()
    assert differences == []


def test_the_web_tables_migrate_down_and_up_again(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    cfg = alembic_config(database_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert not WEB_TABLES & set(inspect(engine).get_table_names())
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= WEB_TABLES
    engine.dispose()


def _migrate(engine: Engine, database_url: str, revision: str, *, down: bool = False) -> None:
    cfg = alembic_config(database_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_0013_backfills_the_subtree_roots_of_the_full_tiles_and_goes_down_again(database_url: str) -> None:
    engine = make_engine(database_url)
    _migrate(engine, database_url, "0012_licence_indexes")
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(600)]
    built = tiles.append(lambda level, idx: b"", 0, leaves)  # tiles 0/000 and 0/001 full, 0/002 and 1/000 not
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO audit_tiles (level, idx, hashes) VALUES (:l, :i, :h)"),
            [{"l": level, "i": idx, "h": data} for (level, idx), data in built.items()],
        )
    _migrate(engine, database_url, "head")
    with engine.connect() as conn:
        stored = {
            (lv, i): bytes(r) for lv, i, r in conn.execute(text("SELECT level, idx, roots FROM audit_tile_roots"))
        }
    assert stored == {key: tiles.subtree_roots(built[key]) for key in [(0, 0), (0, 1)]}
    _migrate(engine, database_url, "0012_licence_indexes", down=True)
    assert "audit_tile_roots" not in inspect(engine).get_table_names()
    engine.dispose()
