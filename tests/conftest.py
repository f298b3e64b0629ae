"""Shared fixtures: a throw-away vault on SQLite and, when VAULT_TEST_POSTGRES_URL is set, on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from vault.config import Settings, load_settings
from vault.db import make_engine, upgrade
from vault.wiring import Vault, build_vault

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = PROJECT_ROOT.parent / "shared"
POSTGRES_URL = os.environ.get("VAULT_TEST_POSTGRES_URL")
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not POSTGRES_URL, reason="VAULT_TEST_POSTGRES_URL is not set"),
        ],
    ),
]


def _admin_url() -> str:
    assert POSTGRES_URL
    return POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of the requested backend, dropped afterwards."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'vault.db'}"
        return
    name = f"vault_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def settings_for(tmp_path: Path, database_url: str, **extra: str) -> Settings:
    env = {"VAULT_DATA_DIR": str(tmp_path / "data"), "VAULT_DATABASE_URL": database_url, "VAULT_LOG_LEVEL": "INFO"}
    env.update(extra)
    return load_settings(env)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return settings_for(tmp_path, database_url)


@pytest.fixture
def vault(settings: Settings) -> Iterator[Vault]:
    """A migrated, empty vault with its own key file, database and log directory."""
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    v = build_vault(settings)
    yield v
    v.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # every test that touches storage runs on each backend
    sqlite_only = any(m.name == "sqlite_only" for m in metafunc.definition.iter_markers())
    if "database_url" in metafunc.fixturenames and not sqlite_only:
        metafunc.parametrize("database_url", BACKENDS, indirect=True)
