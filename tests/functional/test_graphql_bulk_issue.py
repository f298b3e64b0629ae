"""Bulk issuance over GraphQL: issueLicences checks each row as issueLicence does and commits the valid ones."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import col, func, select
from starlette.testclient import TestClient

from tests import factories
from tests.oauth_helpers import BASE
from tests.unit.api.support import (
    client_token,
    errors_by_code,
    gql,
    identifier,
    operation,
    police_token,
    register_client,
)
from vault.api.limits import MAX_BULK_ROWS
from vault.audit.models import AuditEvent
from vault.demo import PERSONS
from vault.licences.models import Licence, StatusEntry
from vault.wiring import Vault

ISSUER = "traffic-police-licensing"
ISSUE_MANY = operation("issuer-issue-licences")


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    register_client(demo_vault, ISSUER, department="traffic-police", category="issuer", scopes=["licences:issue"])
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    from vault.web.app import create_app

    with TestClient(create_app(vault=vault), base_url=BASE) as client:
        yield client


@pytest.fixture
def token(http: TestClient) -> str:
    return client_token(http, ISSUER, "licences:issue")


def name_of(key: str) -> str:
    return next(p for p in PERSONS if p.key == key).name


def row(key: str, type_code: str = "driving-licence", **changes: Any) -> dict[str, Any]:
    values = factories.driving_licence_values(name=name_of(key), **changes)
    return {
        "owner": identifier(key),
        "type": type_code,
        "values": [{"name": k, "value": str(v)} for k, v in values.items()],
    }


def issue_many(http: TestClient, token: str, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = gql(http, token, ISSUE_MANY, {"input": rows, **extra}).json()
    return body


def issued_events(vault: Vault) -> list[dict[str, Any]]:
    with vault.db.session() as session:
        entries = session.scalars(select(AuditEvent.entry).where(AuditEvent.action == "licence.issued")).all()
    return [json.loads(e) for e in entries]


def test_good_rows_are_issued_and_bad_rows_reported_by_index(vault: Vault, http: TestClient, token: str) -> None:
    before = len(issued_events(vault))
    rows = [row("b"), row("c", sex="X", valid_from="2020-02-30"), row("c"), {**row("a"), "owner": "not-an-id"}]
    result = issue_many(http, token, rows, official="警号 010203")["data"]["issueLicences"]
    assert (result["issued"], result["alreadyIssued"], result["invalid"]) == (2, 0, 2)
    statuses = [(r["index"], r["status"]) for r in result["rows"]]
    assert statuses == [(0, "ISSUED"), (1, "INVALID"), (2, "ISSUED"), (3, "INVALID")]
    assert {p["field"] for p in result["rows"][1]["problems"]} == {"sex", "valid_from"}
    assert result["rows"][3]["problems"][0]["field"] == "owner" and result["rows"][1]["licence"] is None
    ids = [uuid.UUID(result["rows"][n]["licence"]["id"]) for n in (0, 2)]
    events = issued_events(vault)[before:]  # one access event per issued licence, exactly like issueLicence
    assert sorted(e["licence"] for e in events) == sorted(str(i) for i in ids)
    assert all(e["actor"] == "issuer:traffic-police" and "official_note" in e["detail"] for e in events)
    with vault.db.session() as session:  # the official is kept under each owner's key; the log names the note
        notes = [vault.licences.texts.open(session, uuid.UUID(e["detail"]["official_note"])) for e in events]
    assert notes == ["警号 010203", "警号 010203"]
    with vault.db.session() as session:
        for licence_id, key in zip(ids, ("b", "c"), strict=True):  # encrypted per owner, signed, with a status slot
            licence = vault.licences.get(session, licence_id)
            assert vault.licences.values(session, licence, ["name"]) == {"name": name_of(key)}
            presentation = vault.licences.present(session, licence_id, ["name", "class"], actor="test")
            verified = vault.licences.verify(session, presentation)
            assert verified.ok and verified.claims == {"name": name_of(key), "class": "C1"}
            version = vault.licences.current_version(session, licence)
            assert session.get(StatusEntry, ("traffic-police", version.status_idx)) is not None


def test_sending_the_same_rows_again_issues_nothing_twice(vault: Vault, http: TestClient, token: str) -> None:
    rows = [row("b"), row("c")]
    first = issue_many(http, token, rows)["data"]["issueLicences"]
    events = len(issued_events(vault))
    again = issue_many(http, token, rows)["data"]["issueLicences"]
    assert (again["issued"], again["alreadyIssued"], again["invalid"]) == (0, 2, 0)
    assert [r["licence"]["id"] for r in again["rows"]] == [r["licence"]["id"] for r in first["rows"]]
    assert len(issued_events(vault)) == events
    taken = rows[0]["values"][0]["value"]  # the same number for another owner is a problem of that row
    other = row("c", licence_number=taken)
    clash = issue_many(http, token, [other])["data"]["issueLicences"]["rows"][0]
    assert clash["status"] == "INVALID" and clash["problems"][0]["field"] == "licence_number"
    assert taken not in clash["problems"][0]["message"]


def test_duplicates_within_one_request(vault: Vault, http: TestClient, token: str) -> None:
    twice = row("b")
    number = twice["values"][0]["value"]
    rows = [twice, twice, row("c", licence_number=number)]
    result = issue_many(http, token, rows)["data"]["issueLicences"]
    assert [r["status"] for r in result["rows"]] == ["ISSUED", "ALREADY_ISSUED", "INVALID"]
    assert result["rows"][1]["licence"]["id"] == result["rows"][0]["licence"]["id"]
    with vault.db.session() as session:
        count = session.scalar(
            select(func.count()).select_from(Licence).where(col(Licence.type_code) == "driving-licence")
        )
    assert count is not None


def test_another_departments_type_is_a_problem_of_its_row(http: TestClient, token: str) -> None:
    rows = [row("b"), {"owner": identifier("a"), "type": "resident-id-card", "values": []}]
    result = issue_many(http, token, rows)["data"]["issueLicences"]
    assert [r["status"] for r in result["rows"]] == ["ISSUED", "INVALID"]
    assert result["rows"][1]["problems"][0] == {
        "field": "type",
        "message": "traffic-police does not issue resident-id-card; public-security does",
    }


def test_a_request_of_exactly_the_cap_passes_the_endpoints_limits(http: TestClient, token: str) -> None:
    rows = [row("b")] + [{"owner": identifier("c"), "type": "passport", "values": []}] * (MAX_BULK_ROWS - 1)
    result = issue_many(http, token, rows)["data"]["issueLicences"]
    assert (result["issued"], result["invalid"], len(result["rows"])) == (1, MAX_BULK_ROWS - 1, MAX_BULK_ROWS)
    assert result["rows"][-1]["index"] == MAX_BULK_ROWS - 1


def test_more_rows_than_the_cap_are_refused_whole(vault: Vault, http: TestClient, token: str) -> None:
    before = len(issued_events(vault))
    rows = [row("b")] + [{"owner": "x", "type": "t", "values": []}] * MAX_BULK_ROWS
    body = issue_many(http, token, rows)
    assert body["data"] is None
    message = errors_by_code(body)["BAD_USER_INPUT"][0]["message"]
    assert f"at most {MAX_BULK_ROWS}" in message and str(MAX_BULK_ROWS + 1) in message
    assert len(issued_events(vault)) == before


def test_bulk_issuing_needs_the_issue_scope_and_an_issuing_department(vault: Vault, http: TestClient) -> None:
    body = issue_many(http, police_token(http), [row("b")])
    assert errors_by_code(body)["FORBIDDEN"][0]["extensions"]["scope"] == "licences:issue"
    register_client(vault, "reader", department="civil-affairs", category="issuer", scopes=["licences:issue"])
    body = issue_many(http, client_token(http, "reader", "licences:issue"), [row("b")])
    assert body["data"] is None and "issues no licences" in errors_by_code(body)["FORBIDDEN"][0]["message"]
