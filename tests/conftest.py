"""Shared fixtures: a throw-away vault on SQLite and, when VAULT_TEST_POSTGRES_URL is set, on PostgreSQL."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from argon2 import PasswordHasher, profiles
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from vault.config import Settings, load_settings
from vault.db import make_engine, upgrade
from vault.owners import accounts
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


# argon2id at the library's recommended parameters costs ~0.1 s of CPU per hash or check (several times that on a
# busy machine), and the tests create and sign in accounts by the hundred. They hash with argon2id at its smallest
# parameters instead, the same code path; tests marked `production_password_hashing` keep the real parameters
# (tests/unit/owners/test_password_hashing.py checks them). Server processes the tests start are not affected.
CHEAP_HASHER = PasswordHasher.from_parameters(profiles.CHEAPEST)


@pytest.fixture(autouse=True)
def _password_hashing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("production_password_hashing") is None:
        monkeypatch.setattr(accounts, "_hasher", CHEAP_HASHER)


def _admin_url() -> str:
    assert POSTGRES_URL
    return POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)


def _pg_url(name: str) -> str:
    return make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)


class _Clones:
    """PostgreSQL databases for the tests, each a fresh copy of a template (template1 for an empty one).

    CREATE and DROP DATABASE take about a second each on a busy machine (they copy and sync whole files), more
    than most tests. So one background thread makes the next copy of a template while the current test runs, and
    drops the copies tests are done with. Every test still gets a database nobody else has used.
    """

    def __init__(self) -> None:
        self._admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-databases")
        self._next: dict[str | None, Future[str]] = {}
        self._drops: list[Future[None]] = []

    def take(self, template: str | None) -> str:
        """The name of a new database copied from `template`; the next copy starts at once."""
        ahead = self._next.pop(template, None)
        name = (ahead or self._thread.submit(self._create, template)).result()
        self._next[template] = self._thread.submit(self._create, template)
        return name

    def give_back(self, name: str) -> None:
        self._drops.append(self._thread.submit(self._drop, name))

    def close(self) -> None:
        for ahead in self._next.values():
            self.give_back(ahead.result())
        self._next.clear()
        self._thread.shutdown(wait=True)
        for drop in self._drops:
            drop.result()  # a database left behind is an error worth seeing
        self._admin.dispose()

    def _create(self, template: str | None) -> str:
        name = f"vault_test_{uuid.uuid4().hex[:12]}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with self._admin.connect() as conn:
            for attempt in range(20):
                try:
                    conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
                    return name
                except OperationalError:  # "being accessed by other users": a backend still leaving
                    if attempt == 19:
                        raise
                    time.sleep(0.1)
        raise AssertionError("unreachable")

    def _drop(self, name: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


_CLONES: list[_Clones] = []
# what each PostgreSQL test database was copied from: "migrated" (an empty schema at head) or "demo"
_COPIED_FROM: dict[str, str] = {}


def _clones() -> _Clones:
    if not _CLONES:
        _CLONES.append(_Clones())
    return _CLONES[0]


def _wanted_template(request: pytest.FixtureRequest) -> str | None:
    """Which template the test's vault fixture will want its database copied from, so it is copied only once."""
    if "demo_vault" in request.fixturenames:
        return "demo"
    if "vault" in request.fixturenames:
        return "migrated"
    return None


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of the requested backend, dropped afterwards.

    It is empty unless the test uses the `vault` or `demo_vault` fixture: then, on PostgreSQL, it is already a
    copy of the migrated or demo template those fixtures would otherwise have to make.
    """
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'vault.db'}"
        return
    kind = _wanted_template(request)
    template = _pg_template(kind, tmp_path) if kind else None
    name = _clones().take(template)
    url = _pg_url(name)
    if kind:
        _COPIED_FROM[url] = kind
    try:
        yield url
    finally:
        _COPIED_FROM.pop(url, None)
        _clones().give_back(name)


def settings_for(tmp_path: Path, database_url: str, **extra: str) -> Settings:
    env = {"VAULT_DATA_DIR": str(tmp_path / "data"), "VAULT_DATABASE_URL": database_url, "VAULT_LOG_LEVEL": "INFO"}
    env.update(extra)
    return load_settings(env)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return settings_for(tmp_path, database_url)


@pytest.fixture
def vault(settings: Settings, tmp_path: Path) -> Iterator[Vault]:
    """A migrated, empty vault with its own key file, database and log directory."""
    url = settings.database_url
    target = Path(make_url(url).database or "")
    if url.startswith("sqlite") and not target.exists():  # a copy of the migrated template, not a migration
        template_dir, _ = _template("sqlite", "migrated", tmp_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(template_dir / "vault.db", target)
    elif _COPIED_FROM.get(url) != "migrated":
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
    v = build_vault(settings)
    yield v
    v.close()


@pytest.fixture
def demo_vault(tmp_path: Path, database_url: str) -> Iterator[Vault]:
    """A vault holding the demo population (people, enterprises, agencies, licences), copied from a template."""
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    data = tmp_path / "data"
    template_dir, template_url = _template(backend, "demo", tmp_path)
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy2(template_dir / "master.keys", data / "master.keys")
    if backend == "sqlite":
        shutil.copy2(template_dir / "vault.db", data / "vault.db")
        url = f"sqlite:///{data / 'vault.db'}"
    else:
        url = database_url
        if _COPIED_FROM.get(url) != "demo":  # a database the test made some other way: replace it with a copy
            admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
            with admin.connect() as conn:
                name = make_url(url).database
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(template_url).database}"'))
            admin.dispose()
    v = build_vault(settings_for(tmp_path, url))
    yield v
    v.close()


# (backend, kind) -> (directory holding its key file and SQLite database, database URL)
_TEMPLATES: dict[tuple[str, str], tuple[Path, str]] = {}


def _pg_template(kind: str, tmp_path: Path) -> str:
    return make_url(_template("postgres", kind, tmp_path)[1]).database or ""


def _template(backend: str, kind: str, tmp_path: Path) -> tuple[Path, str]:
    """The session's template of a kind, made on first use: "migrated" (empty, schema at head) or "demo"."""
    found = _TEMPLATES.get((backend, kind))
    if found is not None:
        return found
    from vault.demo import create_demo

    template_dir = tmp_path.parent.parent / f"{kind}-template-{backend}-{uuid.uuid4().hex[:6]}"
    template_dir.mkdir(parents=True)
    if backend == "sqlite":
        url = f"sqlite:///{template_dir / 'vault.db'}"
    else:
        url = _pg_url(f"vault_{kind}_{uuid.uuid4().hex[:12]}")
        admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{make_url(url).database}"'))
        admin.dispose()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    if kind == "demo":
        settings = load_settings({"VAULT_DATA_DIR": str(template_dir), "VAULT_DATABASE_URL": url})
        built = build_vault(settings)
        create_demo(built)
        built.db.checkpoint_wal()
        built.close()
    if backend == "sqlite":
        assert not (template_dir / "vault.db-wal").exists(), "the template's WAL was not folded into it"
    else:  # nobody (autovacuum included) may hold a connection while it is copied
        admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{make_url(url).database}" WITH ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                {"d": make_url(url).database},
            )
        admin.dispose()
    found = _TEMPLATES[(backend, kind)] = (template_dir, url)
    return found


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _CLONES:
        _CLONES.pop().close()
    for (backend, _kind), (_dir, url) in list(_TEMPLATES.items()):
        if backend == "postgres" and POSTGRES_URL:
            admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
            admin.dispose()
    _TEMPLATES.clear()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # every test that touches storage runs on each backend
    sqlite_only = any(m.name == "sqlite_only" for m in metafunc.definition.iter_markers())
    if "database_url" in metafunc.fixturenames and not sqlite_only:
        metafunc.parametrize("database_url", BACKENDS, indirect=True)
