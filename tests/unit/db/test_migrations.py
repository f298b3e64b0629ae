"""Migrations and models agree: after `vault db upgrade` Alembic finds nothing left to generate."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

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
