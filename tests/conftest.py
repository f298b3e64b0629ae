"""Shared fixtures: a throw-away vault on SQLite and, when VAULT_TEST_POSTGRES_URL is set, on PostgreSQL."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

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


@pytest.fixture
def demo_vault(tmp_path: Path, database_url: str) -> Iterator[Vault]:
    """A vault holding the demo population (people, enterprises, agencies, licences), copied from a template."""
    import shutil

    from vault.demo import create_demo

    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    data = tmp_path / "data"
    template = _TEMPLATES.get(backend)
    if template is None:
        template_dir = tmp_path.parent.parent / f"demo-template-{backend}-{uuid.uuid4().hex[:6]}"
        template_dir.mkdir(parents=True)
        if backend == "sqlite":
            url = f"sqlite:///{template_dir / 'vault.db'}"
        else:
            url = (
                make_url(database_url)
                .set(database=f"vault_demo_{uuid.uuid4().hex[:12]}")
                .render_as_string(hide_password=False)
            )
            admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{make_url(url).database}"'))
            admin.dispose()
        settings = load_settings({"VAULT_DATA_DIR": str(template_dir), "VAULT_DATABASE_URL": url})
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        built = build_vault(settings)
        create_demo(built)
        built.db.checkpoint_wal()
        built.close()
        if backend == "postgres":  # nobody (autovacuum included) may hold a connection while it is copied
            admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{make_url(url).database}" WITH ALLOW_CONNECTIONS false'))
                conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                    {"d": make_url(url).database},
                )
            admin.dispose()
        template = _TEMPLATES[backend] = (template_dir, url)
    template_dir, template_url = template
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy2(template_dir / "master.keys", data / "master.keys")
    if backend == "sqlite":
        shutil.copy2(template_dir / "vault.db", data / "vault.db")
        url = f"sqlite:///{data / 'vault.db'}"
    else:
        url = database_url
        admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = make_url(url).database
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            for attempt in range(20):
                try:
                    conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(template_url).database}"'))
                    break
                except OperationalError:  # "being accessed by other users": a backend still leaving
                    if attempt == 19:
                        raise
                    time.sleep(0.1)
        admin.dispose()
    v = build_vault(settings_for(tmp_path, url))
    yield v
    v.close()


_TEMPLATES: dict[str, tuple[Path, str]] = {}


def pytest_sessionfinish(session: pytest.Session) -> None:
    template = _TEMPLATES.pop("postgres", None)
    if template is not None and POSTGRES_URL:
        admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(template[1]).database}" WITH (FORCE)'))
        admin.dispose()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # every test that touches storage runs on each backend
    sqlite_only = any(m.name == "sqlite_only" for m in metafunc.definition.iter_markers())
    if "database_url" in metafunc.fixturenames and not sqlite_only:
        metafunc.parametrize("database_url", BACKENDS, indirect=True)
