"""Database engine, sessions and the schema check every process runs before it serves.

SQLite is opened in WAL mode with synchronous=FULL, foreign keys on, secure_delete on (erased keys are zeroed,
not left in free pages) and a busy timeout; start-up asserts each of them.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    LargeBinary,
    Table,
    Uuid,
    create_engine,
    event,
    insert,
    inspect,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.selectable import SelectBase
from sqlalchemy.types import TypeEngine

from vault.files import private_dir, private_file
from vault.group_commit import GroupCommit

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MODEL_MODULES = (
    "vault.crypto.models",
    "vault.owners.models",
    "vault.audit.models",
    "vault.licences.models",
    "vault.web.models",
    "vault.consent.models",
    "vault.oauth.models",
    "vault.mandates.models",
    "vault.notifications.models",
)
BUSY_TIMEOUT_MS = 15_000
# Each connection's page cache (SQLite's default is 2 MiB). WAL empties a connection's cache whenever another one
# has written since its last transaction, which here is nearly every time (reads write their access events), so a
# larger cache is memory held rather than reads saved.
CACHE_KIB = 1024
# Connections each process keeps open for reads: as many as requests it serves at once under a steady load
# (bench/graphql_read.py drives 16)
READERS = 16
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": 2,  # FULL
    "foreign_keys": 1,
    "secure_delete": 1,
    "busy_timeout": BUSY_TIMEOUT_MS,
}


class SchemaError(Exception):
    """The database schema is not the one this code expects."""


def import_models() -> None:
    """Register every table on the shared metadata (Alembic and tests need them all)."""
    for name in MODEL_MODULES:
        importlib.import_module(name)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun explicitly, see make_engine
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA secure_delete = ON")
    cursor.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    cursor.close()


def _on_sqlite_read_connect(dbapi_connection: Any, record: Any) -> None:
    _on_sqlite_connect(dbapi_connection, record)
    dbapi_connection.execute("PRAGMA query_only = ON")  # a reader that tries to write fails loudly


def on_driver(connection: Connection, sql: str, arguments: Any = ()) -> list[Any]:
    """Run `sql` on the driver's own connection beneath `connection` (in its transaction) and return its rows.

    A driver error is raised as SQLAlchemy's own execution raises it, through its private handler (there is no
    public one): a DBAPIError around the driver's, whose SQLSTATE the group commit's retry reads, and a connection
    found dead invalidated with its pool."""
    failure = connection.dialect.loaded_dbapi.Error
    cursor = None
    try:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(sql, arguments)
        return list(cursor.fetchall())
    except failure as error:
        connection._handle_dbapi_exception(error, sql, arguments, cursor, None)
    finally:
        if cursor is not None:
            with contextlib.suppress(failure):  # a dead connection's cursor: the error above is the one to raise
                cursor.close()


def _begin(statement: str) -> Callable[[Connection], None]:
    """A "begin" listener that starts SQLite's transaction itself (pysqlite's own would begin too late): straight
    on the driver's connection, as the statement needs none of SQLAlchemy's execution machinery."""

    def begin(connection: Connection) -> None:
        on_driver(connection, statement)

    return begin


def make_read_engine(engine: Engine) -> Engine:
    """Connections for units of work that only read: on SQLite a deferred BEGIN (WAL readers run beside the
    writer and never queue for its lock) on query-only connections; on PostgreSQL connections that are read-only
    (`default_transaction_read_only`, so the server refuses a write) and in autocommit: no BEGIN, SET TRANSACTION
    or COMMIT round trips. At READ COMMITTED, PostgreSQL's default, every statement of a transaction takes its own
    snapshot anyway, so a read loses no consistency by running its statements on their own.

    READERS connections stay open: a connection opened beyond them for a burst is closed again when returned, and
    opening one costs more than the read (on SQLite its pragmas, on PostgreSQL a new server process)."""
    if engine.dialect.name != "sqlite":
        return create_engine(
            engine.url,
            pool_size=READERS,
            max_overflow=4,
            isolation_level="AUTOCOMMIT",
            connect_args={"options": "-c default_transaction_read_only=on"},
        )
    reader = create_engine(
        engine.url,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        pool_size=READERS,
        max_overflow=16,
        pool_timeout=60,
    )
    event.listen(reader, "connect", _on_sqlite_read_connect)
    event.listen(reader, "begin", _begin("BEGIN"))
    return reader


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            private_dir(Path(parsed.database).parent, ours=False)  # it may be a shared directory
            private_file(Path(parsed.database))  # before SQLite opens it: its WAL and shm take the same mode
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
            pool_size=8,  # one writer at a time anyway: more connections only queue inside SQLite
            max_overflow=0,
            pool_timeout=60,
        )
        event.listen(engine, "connect", _on_sqlite_connect)
        # every unit of work here may write (reads write their access events): take the write lock up front,
        # so a transaction never fails half-way upgrading a read lock, and the busy timeout does the waiting
        event.listen(engine, "begin", _begin("BEGIN IMMEDIATE"))
        return engine
    # no ping before each checkout: it is a round trip on every unit of work, and the group commit's writer thread
    # waits for the interpreter after each one (docs/decisions/0004); a connection found dead fails its one unit of
    # work and SQLAlchemy then discards every connection of the pool opened before it
    return create_engine(url, pool_size=10, max_overflow=10)


def sqlite_pragmas(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in SQLITE_PRAGMAS}


def assert_sqlite_pragmas(engine: Engine) -> None:
    """Refuse to run on an SQLite connection without the durability settings we rely on."""
    if engine.dialect.name != "sqlite":
        return
    actual = sqlite_pragmas(engine)
    wrong = {k: v for k, v in actual.items() if str(v).lower() != str(SQLITE_PRAGMAS[k])}
    if wrong:
        raise SchemaError(f"SQLite settings not in force: {wrong}")


# Alembic (and Mako, which it imports) costs a serving worker about 7 MB it never uses: it is imported only by the
# commands that migrate; a worker reads the revisions from the scripts and the version table itself.


def alembic_config(url: str) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    return _code_revisions()[0]


def current_revision(engine: Engine) -> str | None:
    """The revision in Alembic's version table; None when the database has no schema yet."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(versions) > 1:
        raise SchemaError(f"the database is at several revisions at once ({', '.join(sorted(versions))})")
    return versions[0] if versions else None


def upgrade(engine: Engine) -> None:
    """Apply every migration not yet applied (`vault db upgrade`)."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _script_revisions(path: Path) -> tuple[str, str | None]:
    """A migration script's `revision` and `down_revision`, read as Alembic reads them (module-level constants)."""
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            found[target.id] = ast.literal_eval(value)
    if not isinstance(found.get("revision"), str) or not isinstance(found.get("down_revision"), str | None):
        raise SchemaError(f"{path.name}: no single revision and down_revision")
    return found["revision"], found["down_revision"]


@functools.cache
def _code_revisions() -> tuple[str, frozenset[str]]:
    """This code's head revision and every revision it knows. The code cannot change under a running process,
    so /readyz reads the scripts once."""
    chain = dict(_script_revisions(path) for path in (MIGRATIONS_DIR / "versions").glob("*.py"))
    heads = set(chain) - set(chain.values())
    if len(heads) != 1:
        raise SchemaError(f"the migrations have {len(heads)} heads, not one: {sorted(heads)}")
    return heads.pop(), frozenset(chain)


def check_schema(engine: Engine) -> None:
    """Raise SchemaError, saying which command fixes it, unless the schema is exactly at head."""
    head, known = _code_revisions()
    current = current_revision(engine)
    if current == head:
        return
    if current is None:
        raise SchemaError("the database has no schema yet: run `vault db upgrade`")
    if current not in known:
        raise SchemaError(f"the database schema ({current}) is newer than this code knows: upgrade the vault software")
    raise SchemaError(f"the database schema ({current}) is behind this code ({head}): run `vault db upgrade`")


@dataclass
class Database:
    engine: Engine

    def __post_init__(self) -> None:
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite admits one writer and every unit of work here writes: queue this process's threads on a lock
        # (in arrival order) instead of letting them poll SQLite's busy handler with growing sleeps, which
        # starves some of them (bench/graphql_read.py: p99 2.4 s without the queue, 0.37 s with it)
        self._turn: threading.RLock | None = threading.RLock() if self.engine.dialect.name == "sqlite" else None
        self.read_engine = make_read_engine(self.engine)
        self._read_factory = sessionmaker(self.read_engine, expire_on_commit=False)
        self.group = GroupCommit(self)  # the short writes of concurrent reads, committed together

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any exception."""
        with self._turn or nullcontext(), self._factory() as session, session.begin():
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A unit of work that only reads: it never waits for a writer (nor a writer for it) and cannot write.

        On SQLite it reads a WAL snapshot outside the write lock; on PostgreSQL its statements run each on its own
        on read-only connections (make_read_engine). It ends in a rollback, which for a transaction that wrote
        nothing is a commit without the Session's bookkeeping for one.
        """
        with self._read_factory() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()

    def wal_bytes(self) -> int:
        """The size of SQLite's WAL file (0 without one, or on PostgreSQL)."""
        database = self.engine.url.database if self.is_sqlite else None
        if not database or database == ":memory:":
            return 0
        try:
            return Path(database + "-wal").stat().st_size
        except FileNotFoundError:
            return 0

    def checkpoint_wal(self) -> None:
        """Fold SQLite's WAL into the database and truncate it, so erased key bytes leave the WAL file too."""
        if self.engine.dialect.name == "sqlite":
            raw = self.engine.raw_connection()  # outside any transaction: a checkpoint cannot run inside one
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()

    def ping(self) -> bool:
        with self.read_engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1


@dataclass(frozen=True)
class InsertRows:
    """Rows for one multi-row insert into `table`, each a tuple in `columns` order.

    `driver_ready` rows were already put through each column's bind processing (SQLite only), so whoever
    prepared them paid for it, not the process holding the writer's lock.
    """

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    driver_ready: bool = False


def _bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """The column type's own bind processing for values sent straight to the driver; none for bytes, which both
    drivers take as they are (LargeBinary's processor only wraps each in a memoryview, at a cost)."""
    impl = type_.dialect_impl(dialect)
    return None if isinstance(impl, LargeBinary) else impl.bind_processor(dialect)


@functools.cache
def _sqlite_insert(table: Table, columns: tuple[str, ...]) -> tuple[str, list[int], list[Any]]:
    """(statement, where each of its parameters is in `columns`, each one's bind processor or None)."""
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    names = list(compiled.positiontup or ())
    processors = [_bind_processor(table.c[name].type, dialect) for name in names]
    return str(compiled), [columns.index(n) for n in names], processors


def for_driver(batch: InsertRows, table: Table) -> InsertRows:
    """The same rows in SQLite's driver values and statement order (what insert_rows would do while writing)."""
    _, order, processors = _sqlite_insert(table, batch.columns)
    if not batch.rows:
        return InsertRows(batch.table, batch.columns, [], driver_ready=True)
    columns = list(zip(*batch.rows, strict=True))  # a column at a time: map() costs less than a loop per value
    processed = [columns[n] if p is None else list(map(p, columns[n])) for n, p in zip(order, processors, strict=True)]
    return InsertRows(batch.table, batch.columns, list(zip(*processed, strict=True)), driver_ready=True)


def insert_rows(connection: Connection, table: Table, batch: InsertRows) -> None:
    """A multi-row insert; on SQLite straight to the driver with each column's own bind processing."""
    if not batch.rows:
        return
    if connection.dialect.name != "sqlite":
        assert not batch.driver_ready, "driver values are SQLite's"
        connection.execute(insert(table), [dict(zip(batch.columns, r, strict=True)) for r in batch.rows])
        return
    statement = _sqlite_insert(table, batch.columns)[0]
    ready = batch if batch.driver_ready else for_driver(batch, table)
    connection.exec_driver_sql(statement, ready.rows)


def insert_many(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """A multi-row insert; on SQLite straight to the driver with each column's own bind processing.

    SQLAlchemy's executemany builds and processes a parameter dict per row, which costs more than SQLite's
    insert itself; the values written are the same (a test compares them with the ORM's).
    """
    if not rows:
        return
    dialect = connection.dialect
    if dialect.name != "sqlite":
        connection.execute(insert(table), rows)
        return
    columns = tuple(rows[0])
    sql, order, processors = _sqlite_insert(table, columns)  # compiled once per table and columns
    pairs = [(columns[i], p) for i, p in zip(order, processors, strict=True)]
    connection.exec_driver_sql(sql, [tuple(p(r[n]) if p else r[n] for n, p in pairs) for r in rows])


EXPANDED_CACHE_SIZE = 256  # statements kept per Prepared for the lengths of IN lists seen
_EXPANDING = re.compile(r"__\[POSTCOMPILE_(\w+)\]")
Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Plan:
    """A statement as one dialect's driver takes it."""

    sql: str
    positional: bool
    names: tuple[str, ...]  # its parameters, in order for a positional driver
    defaults: dict[str, Any]  # parameters the statement itself binds (a LIMIT)
    binds: dict[str, Processor]
    results: tuple[Processor, ...]
    expanding: frozenset[str]

    def placeholder(self, name: str) -> str:
        return "?" if self.positional else f"%({name})s"


def _uuid_from_hex(value: str | None) -> uuid.UUID | None:
    """uuid.UUID(value) for the 32 hex digits SQLAlchemy stores a UUID as where the database has no UUID type, at a
    third of its cost (a read turns twenty-odd of them into UUIDs); anything else goes through uuid.UUID itself."""
    if value is None:
        return None
    if len(value) != 32 or not value.isalnum():  # no sign, underscore or space, which int() would take
        return uuid.UUID(value)
    made = object.__new__(uuid.UUID)
    object.__setattr__(made, "int", int(value, 16))  # ValueError for a letter past f, as uuid.UUID raises
    object.__setattr__(made, "is_safe", uuid.SafeUUID.unknown)
    return made


def _result_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    impl = type_.dialect_impl(dialect)
    stored_as_text = isinstance(impl, Uuid) and impl.as_uuid and not (dialect.supports_native_uuid and impl.native_uuid)
    return _uuid_from_hex if stored_as_text else impl.result_processor(dialect, None)


class Prepared:
    """A SELECT (or a statement RETURNING rows) run so often that SQLAlchemy's machinery around it costs more
    than the statement: compiled once per dialect, run on the driver's own connection (in the caller's
    transaction), its parameters and columns put through the very bind and result processors SQLAlchemy would use.
    Rows come back as tuples.

    An execution through a Connection builds an execution context, a parameter dictionary and Row objects, and
    expands IN lists by rewriting the compiled string: about 50-80 µs a statement on SQLite, where the statement
    itself takes 10. A read runs several (bench/graphql_read.py, docs/performance.md).
    """

    def __init__(self, statement: SelectBase) -> None:
        self.statement = statement
        self._plans: dict[str, _Plan] = {}
        self._expanded: dict[tuple[Any, ...], tuple[str, tuple[str, ...]]] = {}

    def all(self, connection: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        dialect = connection.dialect
        plan = self._plans.get(dialect.name) or self._plan(dialect)
        rows = on_driver(connection, *self._arguments(plan, params))
        results = plan.results
        if not any(results):
            return [tuple(row) for row in rows]
        return [tuple(v if p is None else p(v) for p, v in zip(results, row, strict=True)) for row in rows]

    def first(self, connection: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        rows = self.all(connection, params)
        return rows[0] if rows else None

    def _plan(self, dialect: Dialect) -> _Plan:
        compiled = self.statement.compile(dialect=dialect)
        positional = bool(compiled.positional)
        names = tuple(compiled.positiontup or ()) if positional else tuple(compiled.binds)
        binds = {name: _bind_processor(compiled.binds[name].type, dialect) for name in names}
        results = tuple(_result_processor(column.type, dialect) for column in self.statement.selected_columns)
        expanding = frozenset(_EXPANDING.findall(compiled.string))
        if dialect.paramstyle not in ("qmark", "pyformat"):
            raise NotImplementedError(f"Prepared statements for the {dialect.paramstyle!r} parameter style")
        defaults = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
        plan = _Plan(compiled.string, positional, names, defaults, binds, results, expanding)
        self._plans[dialect.name] = plan
        return plan

    def _arguments(self, plan: _Plan, params: Mapping[str, Any]) -> tuple[str, Any]:
        """The statement as the driver takes it (IN lists as long as given) and its processed parameters."""
        given = plan.defaults | dict(params)
        sql, order = plan.sql, plan.names
        if plan.expanding:
            counts = {name: len(given[name]) for name in plan.expanding}
            key = (plan.sql, *sorted(counts.items()))
            found = self._expanded.get(key)
            if found is None:
                if len(self._expanded) >= EXPANDED_CACHE_SIZE:
                    self._expanded.clear()
                found = self._expanded[key] = self._expand(plan, counts)
            sql, order = found
        values: dict[str, Any] = {}
        for name in plan.names:
            process, value = plan.binds[name], given[name]
            if name not in plan.expanding:
                values[name] = value if process is None else process(value)
                continue
            for i, item in enumerate(value, 1):
                values[f"{name}_{i}"] = item if process is None else process(item)
        return sql, tuple(values[n] for n in order) if plan.positional else values

    @staticmethod
    def _expand(plan: _Plan, counts: dict[str, int]) -> tuple[str, tuple[str, ...]]:
        """The statement with each IN list as long as given, and its parameters' order."""
        order: list[str] = []
        for name in plan.names:
            if name in counts:
                order.extend(f"{name}_{i}" for i in range(1, counts[name] + 1))
            else:
                order.append(name)
        sql = _EXPANDING.sub(
            lambda m: ", ".join(plan.placeholder(f"{m[1]}_{i}") for i in range(1, counts[m[1]] + 1)) or "NULL",
            plan.sql,
        )
        return sql, tuple(order)
