"""A Prepared statement gives exactly what SQLAlchemy's own execution gives, on SQLite and PostgreSQL: the same
rows, the same Python values (UUIDs, aware datetimes, dates, JSON, bytes, booleans), IN lists of any length, the
statement's own bound values, and the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import JSON, Boolean, Column, Date, Integer, LargeBinary, MetaData, Table, bindparam, select, text
from sqlalchemy import Uuid as SqlUuid
from sqlalchemy.exc import IntegrityError
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from vault.db import Prepared, _uuid_from_hex
from vault.wiring import Vault

_META = MetaData()
_THINGS = Table(
    "prepared_things",
    _META,
    Column("id", SqlUuid, primary_key=True),
    Column("n", Integer, nullable=False),
    Column("name", AutoString(50), nullable=False),
    Column("at", UTCDateTime, nullable=True),
    Column("day", Date, nullable=True),
    Column("doc", JSON, nullable=True),
    Column("blob", LargeBinary, nullable=True),
    Column("flag", Boolean, nullable=True),
)
MOMENT = datetime(2026, 11, 30, 12, 30, 15, 123456, tzinfo=UTC)
ROWS = [
    {
        "id": uuid.UUID(int=i + 1),
        "n": i,
        "name": f"thing {i}",
        "at": None if i == 3 else MOMENT + timedelta(hours=i),
        "day": None if i == 3 else date(2026, 1, 1) + timedelta(days=i),
        "doc": None if i == 3 else {"i": i, "list": [1, "two"], "text": "é"},
        "blob": None if i == 3 else bytes([i, 0, 255]),
        "flag": None if i == 3 else i % 2 == 0,
    }
    for i in range(6)
]


@pytest.fixture
def things(vault: Vault) -> Iterator[Vault]:
    _META.create_all(vault.db.engine)
    with vault.db.session() as session:
        session.connection().execute(_THINGS.insert(), ROWS)
    yield vault
    _META.drop_all(vault.db.engine)


def both(vault: Vault, statement: Any, params: dict[str, Any]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(SQLAlchemy's rows, the Prepared statement's rows), in one read-only unit of work."""
    with vault.db.read_session() as session:
        connection = session.connection()
        expected = [tuple(row) for row in connection.execute(statement, params).all()]
        return expected, Prepared(statement).all(connection, params)


EVERY_COLUMN = select(_THINGS).order_by(_THINGS.c.n)


def test_every_type_comes_back_as_sqlalchemy_gives_it(things: Vault) -> None:
    expected, got = both(things, EVERY_COLUMN.where(_THINGS.c.n >= bindparam("least")), {"least": 0})
    assert got == expected
    assert len(got) == len(ROWS)
    first = got[0]
    assert first[0] == ROWS[0]["id"] and isinstance(first[0], uuid.UUID)
    assert first[3] == MOMENT and first[3].tzinfo is not None
    assert first[4] == date(2026, 1, 1)
    assert first[5] == {"i": 0, "list": [1, "two"], "text": "é"}
    assert bytes(first[6]) == bytes([0, 0, 255])
    assert first[7] is True
    assert got[3][3:] == (None, None, None, None, None)


@pytest.mark.parametrize("count", [1, 2, 5])
def test_in_lists_of_any_length_and_the_statements_own_values(things: Vault, count: int) -> None:
    """IN lists expand to as many parameters as given, each processed (UUIDs, dates); a LIMIT keeps its value."""
    statement = (
        select(_THINGS.c.id, _THINGS.c.n, _THINGS.c.at)
        .where(
            _THINGS.c.id.in_(bindparam("ids", expanding=True)),
            _THINGS.c.name.in_(bindparam("names", expanding=True)),
            _THINGS.c.at > bindparam("after", type_=UTCDateTime()),
        )
        .order_by(_THINGS.c.n)
        .limit(3)
    )
    ids = [row["id"] for row in ROWS[:count]]
    names = [row["name"] for row in ROWS]
    expected, got = both(things, statement, {"ids": ids, "names": names, "after": MOMENT - timedelta(days=1)})
    assert got == expected
    assert [row[1] for row in got] == [n for n in range(min(count, 3)) if n != 3]
    prepared = Prepared(statement)
    with things.db.read_session() as session:  # the same statement again, lists of other lengths
        connection = session.connection()
        for again in (count, 1, count + 1):
            params = {"ids": [r["id"] for r in ROWS[:again]], "names": names, "after": MOMENT - timedelta(days=1)}
            assert prepared.all(connection, params) == [tuple(r) for r in connection.execute(statement, params)]


def test_first_and_nothing_found(things: Vault) -> None:
    statement = select(_THINGS.c.name).where(_THINGS.c.id == bindparam("id"))
    prepared = Prepared(statement)
    with things.db.read_session() as session:
        assert prepared.first(session.connection(), {"id": ROWS[2]["id"]}) == ("thing 2",)
        assert prepared.first(session.connection(), {"id": uuid.uuid4()}) is None


def test_a_textual_statement_returning_rows_runs_in_the_callers_transaction(things: Vault) -> None:
    """What it writes commits or rolls back with the caller's unit of work; RETURNING columns are processed."""
    update = Prepared(
        text("UPDATE prepared_things SET n = n + :step WHERE at >= :since RETURNING id, at")
        .bindparams(bindparam("since", type_=UTCDateTime()))
        .columns(_THINGS.c.id, _THINGS.c.at)
    )
    with pytest.raises(RuntimeError), things.db.session() as session:
        returned = update.all(session.connection(), {"step": 100, "since": MOMENT + timedelta(hours=4)})
        assert sorted(returned) == [(ROWS[4]["id"], ROWS[4]["at"]), (ROWS[5]["id"], ROWS[5]["at"])]
        raise RuntimeError("rolled back")
    with things.db.session() as session:
        update.all(session.connection(), {"step": 100, "since": MOMENT + timedelta(hours=5)})
    with things.db.read_session() as session:
        found = session.connection().execute(select(_THINGS.c.n).order_by(_THINGS.c.n)).scalars().all()
    assert found == [0, 1, 2, 3, 4, 105]


def test_a_database_error_is_raised_as_sqlalchemy_raises_it(things: Vault) -> None:
    """Wrapped in SQLAlchemy's DBAPIError with the driver's error beneath (the group commit retries a deadlock by
    its SQLSTATE), and the unit of work rolls back."""
    duplicate = Prepared(
        text("INSERT INTO prepared_things (id, n, name) VALUES (:id, 1, 'x') RETURNING id").columns(_THINGS.c.id)
    )
    with pytest.raises(IntegrityError) as raised, things.db.session() as session:
        duplicate.all(session.connection(), {"id": ROWS[0]["id"].hex if things.db.is_sqlite else ROWS[0]["id"]})
    assert isinstance(raised.value.orig, things.db.engine.dialect.loaded_dbapi.Error)
    if not things.db.is_sqlite:
        assert raised.value.orig.sqlstate == "23505"  # unique_violation


@given(st.uuids(), st.booleans())
def test_a_uuid_stored_as_text_comes_back_equal_and_as_a_uuid(value: uuid.UUID, upper: bool) -> None:
    text_form = value.hex.upper() if upper else value.hex
    made = _uuid_from_hex(text_form)
    assert made == value and isinstance(made, uuid.UUID)
    assert hash(made) == hash(value) and str(made) == str(value) and made.version == value.version
    assert _uuid_from_hex(None) is None


@pytest.mark.parametrize(
    "odd", ["", "0" * 31, "0" * 33, "g" + "0" * 31, "+" + "0" * 31, "_" + "0" * 31, " " + "0" * 31, "0x" + "0" * 30]
)
def test_odd_text_is_taken_or_refused_exactly_as_uuid_takes_it(odd: str) -> None:
    try:
        expected: uuid.UUID | type[ValueError] = uuid.UUID(odd)
    except ValueError:
        expected = ValueError
    try:
        got: uuid.UUID | type[ValueError] | None = _uuid_from_hex(odd)
    except ValueError:
        got = ValueError
    assert got == expected
