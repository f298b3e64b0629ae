"""Issuer mutations over GraphQL: own licence types only, expected failures as union results per field."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import col, select
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
from vault.audit.models import AuditEvent
from vault.demo import ENTERPRISES
from vault.wiring import Vault

ISSUER = "traffic-police-licensing"
ISSUE = operation("issuer-issue-licence")
RENEW = operation("issuer-renew-licence")
SUSPEND = operation("issuer-suspend-licence")
REINSTATE = operation("issuer-reinstate-licence")
REVOKE = operation("issuer-revoke-licence")


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    register_client(demo_vault, ISSUER, department="traffic-police", category="issuer", scopes=["licences:issue"])
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app_for(vault), base_url=BASE) as client:
        yield client


def create_app_for(vault: Vault) -> Any:
    from vault.web.app import create_app

    return create_app(vault=vault)


@pytest.fixture
def token(http: TestClient) -> str:
    return client_token(http, ISSUER, "licences:issue")


def values(**changes: Any) -> list[dict[str, str]]:
    given = factories.driving_licence_values(name="演示居民乙", **changes)
    return [{"name": k, "value": str(v)} for k, v in given.items()]


def issue(
    http: TestClient, token: str, owner: str | None = None, official: str | None = None, **changes: Any
) -> dict[str, Any]:
    variables = {
        "owner": owner or identifier("b"),
        "type": "driving-licence",
        "values": values(**changes),
        "official": official,
    }
    body: dict[str, Any] = gql(http, token, ISSUE, variables).json()
    return body


def test_an_issuer_issues_its_own_type_and_the_issue_is_recorded(vault: Vault, http: TestClient, token: str) -> None:
    body = issue(http, token, official="警号 010203")
    result = body["data"]["issueLicence"]
    assert result["__typename"] == "LicenceChanged"
    assert result["licence"]["type"] == "driving-licence" and result["licence"]["state"] == "ACTIVE"
    assert result["licence"]["version"] == 1 and result["licence"]["validUntil"] == "2032-01-01"
    with vault.db.session() as session:
        entry = session.scalars(
            select(AuditEvent.entry).where(AuditEvent.action == "licence.issued").order_by(col(AuditEvent.seq).desc())
        ).first()
    assert entry is not None
    recorded = json.loads(entry)
    assert recorded["licence"] == result["licence"]["id"] and "警号" not in entry.decode()
    assert recorded["actor"] == "issuer:traffic-police"
    with vault.db.session() as session:  # the official is kept under the owner's key, the log names the note
        assert vault.licences.texts.open(session, uuid.UUID(recorded["detail"]["official_note"])) == "警号 010203"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"valid_from": "2020-02-30"}, "valid_from"),
        ({"class": ""}, "class"),
        ({"sex": "X"}, "sex"),
        ({"blood_type": "A"}, "blood_type"),
    ],
)
def test_validation_failures_come_back_per_field(
    http: TestClient, token: str, changes: dict[str, str], field: str
) -> None:
    result = issue(http, token, **changes)["data"]["issueLicence"]
    assert result["__typename"] == "InvalidInput"
    assert [p["field"] for p in result["problems"]] == [field] and result["problems"][0]["message"]


def test_owner_problems_duplicates_and_integers_are_per_field(http: TestClient, token: str) -> None:
    assert issue(http, token, owner="110101199001011237")["data"]["issueLicence"]["problems"][0]["field"] == "owner"
    assert issue(http, token, owner="not-an-id")["data"]["issueLicence"]["problems"][0]["field"] == "owner"
    enterprise = issue(http, token, owner=ENTERPRISES[0].credit_code)["data"]["issueLicence"]
    assert enterprise["problems"][0]["field"] == "owner" and "cannot hold" in enterprise["message"]
    first = issue(http, token, licence_number=identifier("b"))["data"]["issueLicence"]
    again = issue(http, token, licence_number=identifier("b"))["data"]["issueLicence"]
    assert first["__typename"] == "LicenceChanged" and again["problems"][0]["field"] == "licence_number"
    vehicle = [{"name": "plate_number", "value": "演A·T0001"}, {"name": "approved_passengers", "value": "five"}]
    variables = {"owner": identifier("b"), "type": "vehicle-licence", "values": vehicle}
    result = gql(http, token, ISSUE, variables).json()["data"]["issueLicence"]
    assert result["problems"][0] == {
        "field": "approved_passengers",
        "message": "field 'approved_passengers': not an integer",
    }


def test_another_departments_type_is_forbidden(http: TestClient, token: str) -> None:
    variables = {"owner": identifier("b"), "type": "resident-id-card", "values": []}
    body = gql(http, token, ISSUE, variables).json()
    assert body["data"] is None and "public-security" in errors_by_code(body)["FORBIDDEN"][0]["message"]
    unknown = gql(http, token, ISSUE, {**variables, "type": "passport"}).json()["data"]["issueLicence"]
    assert unknown["problems"][0]["field"] == "type"


def test_issuing_needs_the_issue_scope(http: TestClient) -> None:
    body = gql(http, police_token(http), ISSUE, {"owner": identifier("b"), "type": "driving-licence", "values": []})
    assert errors_by_code(body.json())["FORBIDDEN"][0]["extensions"]["scope"] == "licences:issue"


def test_lifecycle_steps_and_illegal_transitions(http: TestClient, token: str) -> None:
    licence_id = issue(http, token)["data"]["issueLicence"]["licence"]["id"]

    def step(document: str, **variables: Any) -> dict[str, Any]:
        body = gql(http, token, document, {"id": licence_id, **variables}).json()
        result: dict[str, Any] = next(iter(body["data"].values()))
        return result

    assert step(SUSPEND, reason="")["problems"][0]["field"] == "reason"
    assert step(SUSPEND, reason="记分满12分")["licence"]["state"] == "SUSPENDED"
    again = step(SUSPEND, reason="again")
    assert again["__typename"] == "IllegalTransition" and again["state"] == "SUSPENDED"
    assert "suspended" in again["message"]
    assert step(RENEW, changes=[{"name": "class", "value": "C2"}])["__typename"] == "IllegalTransition"
    assert step(REINSTATE)["licence"]["state"] == "ACTIVE"
    renewed = step(RENEW, changes=[{"name": "class", "value": "C2"}])
    assert renewed["licence"]["version"] == 2 and renewed["licence"]["state"] == "ACTIVE"
    number = step(RENEW, changes=[{"name": "licence_number", "value": identifier("c")}])
    assert number["problems"][0]["field"] == "licence_number"
    assert step(REVOKE, reason="吊销")["licence"]["state"] == "REVOKED"
    final = step(REINSTATE, reason="no")
    assert final["__typename"] == "IllegalTransition" and final["state"] == "REVOKED"


def test_unknown_and_foreign_licences(vault: Vault, http: TestClient, token: str) -> None:
    for missing in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        result = gql(http, token, SUSPEND, {"id": missing, "reason": "x"}).json()["data"]["suspendLicence"]
        assert result["__typename"] == "LicenceNotFound"
    police = police_token(http)
    read = 'query($o: String!) { licences(owner: $o, types: ["resident-id-card"]) { id } }'
    id_card = gql(http, police, read, {"o": identifier("a")}).json()["data"]["licences"][0]["id"]
    body = gql(http, token, SUSPEND, {"id": id_card, "reason": "not ours"}).json()
    assert body["data"] is None and errors_by_code(body)["FORBIDDEN"]
