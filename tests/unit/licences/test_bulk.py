"""Bulk issuance in the service layer: the same checks and the same stored rows as a single issuance, batched."""

from __future__ import annotations

import itertools
import re
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, text
from sqlmodel import col, select

from tests import factories
from vault.audit.models import AuditEvent
from vault.licences.bulk import BulkIssuer, BulkRow, RowStatus, read_values
from vault.licences.models import Licence, LicenceField, LicenceVersion, StatusEntry
from vault.owners.identifiers import synthetic_resident_id
from vault.wiring import Vault

_numbers = itertools.count(1)


def add_person(vault: Vault, name: str = "批量居民") -> str:
    number = synthetic_resident_id("110102", date(1985, 5, 5), next(_numbers) % 1000)
    with vault.db.session() as session:
        vault.owners.add_person(session, id_number=number, name=name, actor="test")
    return number


def driving(owner: str, name: str = "批量居民", **changes: Any) -> BulkRow:
    values = factories.driving_licence_values(name=name, **changes)
    return BulkRow(owner, "driving-licence", [(k, str(v)) for k, v in values.items()])


def issue(vault: Vault, rows: list[BulkRow], issuer: str | None = "traffic-police") -> list[Any]:
    with vault.db.session() as session:
        return BulkIssuer(vault.licences).issue_batch(session, rows, issuer_code=issuer, actor="test")


def counts(vault: Vault) -> tuple[int, ...]:
    with vault.db.session() as session:
        return tuple(
            int(session.scalar(select(func.count()).select_from(t)) or 0)
            for t in (Licence, LicenceVersion, LicenceField, StatusEntry, AuditEvent)
        )


def test_read_values_is_the_single_mutations_reading(vault: Vault) -> None:
    vehicle = vault.catalogue.type("vehicle-licence")
    values, problems = read_values(
        vehicle,
        [("approved_passengers", " 5 "), ("vin", "x"), ("vin", "y"), ("colour", "red"), ("gross_mass_kg", "1e3")],
    )
    assert values == {"approved_passengers": 5}
    assert [str(p) for p in problems] == [
        "field 'vin': given more than once",
        "vehicle-licence has no field 'colour'",
        "field 'gross_mass_kg': not an integer",
    ]


def test_each_row_is_checked_on_its_own_and_only_valid_rows_are_written(vault: Vault) -> None:
    owner = add_person(vault)
    before = counts(vault)
    outcomes = issue(
        vault,
        [
            driving(owner),
            driving(owner, name="别人"),  # not the holder's name on record
            driving("110101199001011237"),  # a valid number that names nobody
            BulkRow(owner, "resident-id-card", []),  # another department's type
            driving(owner, sex="X", **{"class": ""}),
        ],
    )
    assert [o.status for o in outcomes] == [RowStatus.ISSUED] + [RowStatus.INVALID] * 4
    assert [[p.field for p in o.problems] for o in outcomes[1:]] == [["name"], ["owner"], ["type"], ["sex", "class"]]
    assert "is not the holder's name on record" in outcomes[1].problems[0].message
    after = counts(vault)
    assert after[0] - before[0] == 1 and after[1] - before[1] == 1 and after[3] - before[3] == 1
    assert after[4] - before[4] == 1  # one licence.issued event, none for the invalid rows


def test_bulk_rows_are_stored_as_a_single_issuance_stores_them(vault: Vault) -> None:
    """Bulk writes bypass the ORM: every column of every table must come out in the same shape."""
    owner = add_person(vault)
    with vault.db.session() as session:
        single_owner = factories.person(vault, session, name="批量居民")
        single = factories.driving_licence(vault, session, single_owner)
    (outcome,) = issue(vault, [driving(owner)])
    assert outcome.status is RowStatus.ISSUED

    def shapes(table: str, key: str, record: Any) -> set[tuple[str, str]]:
        with vault.db.session() as session:
            query = f"SELECT * FROM {table} WHERE {key} = :k"  # noqa: S608 - fixed names in this test
            rows = session.execute(text(query), {"k": record}).mappings().all()
        assert rows
        return {
            (c, type(v).__name__ + ":" + (re.sub(r"[0-9a-f]", "x", v) if isinstance(v, str) else ""))
            for r in rows
            for c, v in r.items()
            if c not in ("name", "kind", "digest")
        }

    with vault.db.session() as session:
        versions = {
            v.licence_id: v.id
            for v in session.scalars(
                select(LicenceVersion).where(LicenceVersion.licence_id.in_([single.id, outcome.licence_id]))  # type: ignore[attr-defined]
            )
        }
    ids = vault.db.engine.dialect.name != "sqlite"
    for table, key, pick in (
        ("licences", "id", lambda lid: lid),
        ("licence_versions", "licence_id", lambda lid: lid),
        ("licence_fields", "version_id", lambda lid: versions[lid]),
        ("status_entries", "version_id", lambda lid: versions[lid]),
        ("blind_indexes", "record_id", lambda lid: lid),
    ):
        one, many = (pick(lid) if ids else pick(lid).hex for lid in (single.id, outcome.licence_id))
        assert shapes(table, key, one) == shapes(table, key, many), table
    with vault.db.session() as session:  # and both read back through the ORM alike
        bulk = vault.licences.get(session, outcome.licence_id)
        assert vault.licences.values(session, bulk, ["name", "class"]) == {"name": "批量居民", "class": "C1"}
        assert vault.licences.list_for_owner(session, bulk.owner_id)[0].state == "active"


def test_a_batch_that_fails_writes_nothing(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = add_person(vault)
    before = counts(vault)

    def broken(*args: object) -> None:
        raise RuntimeError("the log is unavailable")

    monkeypatch.setattr(vault.audit, "append_stamped", broken)
    with pytest.raises(RuntimeError):
        issue(vault, [driving(owner), driving(owner)])
    assert counts(vault) == before


def test_slots_are_distinct_random_and_free(vault: Vault) -> None:
    vault.licences.status_lists.capacity = 64  # a nearly full list: most draws are taken
    owner = add_person(vault)
    outcomes = issue(vault, [driving(owner) for _ in range(40)])
    assert all(o.status is RowStatus.ISSUED for o in outcomes)
    outcomes = issue(vault, [driving(owner) for _ in range(24)])
    assert all(o.status is RowStatus.ISSUED for o in outcomes)
    with vault.db.session() as session:
        slots = session.scalars(select(StatusEntry.idx).where(col(StatusEntry.issuer_code) == "traffic-police")).all()
    assert sorted(slots) == list(range(64))
    from vault.licences.errors import StatusListFull

    with pytest.raises(StatusListFull):
        issue(vault, [driving(owner)])
