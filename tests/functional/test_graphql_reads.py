"""The agency read over GraphQL: field-level decisions, masking, presentations, owners and grants, over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE, AgencyClient, consented_tokens
from tests.unit.api.support import (
    HOUSING,
    ONCE_ITEM,
    REPEATED_ITEM,
    TRAFFIC,
    demo_person,
    errors_by_code,
    gql,
    identifier,
    operation,
    police_token,
    secret,
)
from vault import clock
from vault.audit.models import AuditEvent
from vault.consent.models import Grant
from vault.crypto.free_text import OwnerTexts
from vault.licences.verify import verify_offline
from vault.oauth.adapter import unit_of_work
from vault.web.app import create_app
from vault.wiring import Vault

READ = operation("agency-read-licences")
MANDATE_READ = operation("agency-read-under-mandate")


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=vault), base_url=BASE) as client:
        yield client


def tokens(vault: Vault, http: TestClient, client_id: str, item: str, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    agency = AgencyClient(http, client_id, secret(client_id))
    return consented_tokens(vault, agency, demo_person(vault), item, drop=drop)


def access_events(vault: Vault) -> list[dict[str, Any]]:
    with unit_of_work(vault.db) as session:
        rows = session.scalars(
            select(AuditEvent.entry)
            .where(col(AuditEvent.action).in_(["fields.released", "fields.denied"]))
            .order_by(col(AuditEvent.seq))
        ).all()
    return [json.loads(entry) for entry in rows]


def test_released_fields_come_back_full_or_masked_and_the_rest_is_forbidden(vault: Vault, http: TestClient) -> None:
    token = tokens(vault, http, HOUSING, REPEATED_ITEM, drop=("relationship",))["access_token"]
    names = ["household_number", "name", "relationship", "marital_status"]
    response = gql(http, token, READ, {"types": ["household-register"], "names": names})
    assert response.status_code == 200
    body = response.json()
    [licence] = body["data"]["licences"]
    household_number, name, relationship, marital = licence["fields"]
    assert name == {"name": "name", "value": "演示居民甲", "masked": False}
    assert household_number["masked"] is True and household_number["value"] != "DEMO121234"
    assert relationship is None and marital is None  # unticked by the owner; not needed by the item at all
    forbidden = errors_by_code(body)["FIELD_FORBIDDEN"]
    assert {e["extensions"]["field"] for e in forbidden} == {
        "household-register/relationship",
        "household-register/marital_status",
    }
    assert all(e["extensions"]["reason"] and e["path"][:3] == ["licences", 0, "fields"] for e in forbidden)
    # the presentation discloses exactly what went out in full: never a masked field's whole value
    presentation = licence["presentation"]
    metadata = http.get("/.well-known/jwt-vc-issuer/issuers/public-security").json()
    status = http.get("/status-lists/public-security").text
    verified = verify_offline(
        presentation,
        issuer_metadata={metadata["issuer"]: metadata},
        status_lists={licence["issuer"]["statusListUrl"]: status},
        now=int(time.time()),
    )
    assert verified.ok and verified.claims == {"name": "演示居民甲"}


def test_each_read_writes_one_access_event_per_owner_listing_released_and_denied(
    vault: Vault, http: TestClient
) -> None:
    token = tokens(vault, http, HOUSING, REPEATED_ITEM, drop=("relationship",))["access_token"]
    before = len(access_events(vault))
    query = """query($n: [String!]) {
      ids: licences(types: ["resident-id-card"]) { fields(names: $n) { value } }
      register: licences(types: ["household-register"]) { fields(names: ["name", "relationship"]) { value } }
    }"""
    assert gql(http, token, query, {"n": ["name", "photo"]}).status_code == 200
    events = access_events(vault)[before:]
    assert len(events) == 1
    [event] = events
    assert event["action"] == "fields.released" and event["owner"] == str(demo_person(vault))
    assert event["fields"] == ["household-register/name", "resident-id-card/name"]
    assert event["denied_fields"] == ["household-register/relationship", "resident-id-card/photo"]
    assert event["grant"] and event["purpose"] == REPEATED_ITEM and event["request_id"]
    assert "biometric-never-under-consent" in event["reason"]


def test_another_owners_identifier_is_denied_like_a_missing_owner_and_recorded(vault: Vault, http: TestClient) -> None:
    token = tokens(vault, http, HOUSING, REPEATED_ITEM)["access_token"]
    query = (
        'query($o: String) { licences(owner: $o, types: ["resident-id-card"]) { fields(names: ["name"]) { value } } }'
    )
    other = gql(http, token, query, {"o": identifier("b")})
    nobody = gql(http, token, query, {"o": "110101199001011237"})
    assert other.status_code == nobody.status_code == 200
    assert other.json() == nobody.json() == {"data": {"licences": []}}
    denied = [e for e in access_events(vault) if e["action"] == "fields.denied"]
    assert denied[-2]["owner"] == str(demo_person(vault, "b"))
    assert "grant-of-another-owner" in denied[-2]["reason"]
    assert "owner" not in denied[-1] and denied[-1]["reason"] == "no owner with this identifier"
    malformed = gql(http, token, query, {"o": "110101199001011230"}).json()
    assert errors_by_code(malformed)["BAD_USER_INPUT"][0]["message"].startswith("owner is not a valid identifier")


def test_a_once_grant_serves_one_request_then_its_token_dies(vault: Vault, http: TestClient) -> None:
    token = tokens(vault, http, TRAFFIC, ONCE_ITEM)["access_token"]
    first = gql(http, token, READ, {"names": ["name"]})
    assert first.status_code == 200 and first.json()["data"]["licences"]
    second = gql(http, token, READ, {"names": ["name"]})
    assert second.status_code == 401
    assert errors_by_code(second.json())["UNAUTHENTICATED"] and second.json()["data"] is None


def test_an_expired_grant_is_refused_even_with_a_fresh_token(vault: Vault, http: TestClient) -> None:
    token = tokens(vault, http, HOUSING, REPEATED_ITEM)["access_token"]
    with unit_of_work(vault.db) as session:
        grant = session.scalars(select(Grant).where(Grant.client_id == HOUSING)).one()
        grant.valid_until = clock.utcnow() - timedelta(seconds=1)
    response = gql(http, token, READ, {"names": ["name"]})
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    with unit_of_work(vault.db) as session:
        assert session.scalars(select(Grant).where(Grant.client_id == HOUSING)).one().state == "expired"


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        (None, 'Bearer realm="vault"'),
        ("Bearer not-a-token", 'Bearer realm="vault", error="invalid_token"'),
        ("Basic dXNlcjpwYXNz", 'Bearer realm="vault"'),
    ],
)
def test_requests_without_a_live_token_are_401_unauthenticated(
    http: TestClient, authorization: str | None, challenge: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = gql(http, None, READ, **headers)
    assert response.status_code == 401 and response.headers["www-authenticate"] == challenge
    assert response.json()["data"] is None
    assert errors_by_code(response.json())["UNAUTHENTICATED"]


def test_a_token_without_the_read_scope_is_forbidden(vault: Vault, http: TestClient) -> None:
    from tests.unit.api.support import HALL, client_token

    token = client_token(http, HALL, "licences:verify")
    body = gql(http, token, READ).json()
    assert body["data"] is None and errors_by_code(body)["FORBIDDEN"][0]["extensions"]["scope"] == "licences:read"


def test_a_mandate_reads_the_named_owner_in_full_and_records_the_case(vault: Vault, http: TestClient) -> None:
    token = police_token(http, case="XS-2026-000042")
    variables = {"owner": identifier("b"), "types": ["resident-id-card"], "names": ["name", "address", "valid_until"]}
    body = gql(http, token, MANDATE_READ, variables).json()
    [licence] = body["data"]["licences"]
    name, address, valid_until = licence["fields"]
    assert name["value"] == "演示居民乙" and address["masked"] is False
    assert valid_until is None  # not a field the mandate names
    event = access_events(vault)[-1]
    assert event["mandate"] == "police-criminal-investigation" and event["official"] == "012345"
    assert len(event["detail"]["case"]) == 64 and "XS-2026-000042" not in json.dumps(event)  # a keyed hash only
    assert (
        event["owner"] == str(demo_person(vault, "b")) and event["purpose"] == "mandate:police-criminal-investigation"
    )
    with unit_of_work(vault.db) as session:  # the text itself, under the owner's key: erasure destroys it
        case = OwnerTexts(vault.keys).open(session, uuid.UUID(event["detail"]["case_note"]))
    assert case == "XS-2026-000042"


def test_under_a_mandate_an_owner_it_cannot_reach_looks_like_no_owner(vault: Vault, http: TestClient) -> None:
    from vault.demo import ENTERPRISES
    from vault.owners.identifiers import synthetic_credit_code

    nobody = synthetic_credit_code("9", "1", "110105", "MA0NYB0DY")
    token = police_token(http, owners=[ENTERPRISES[0].credit_code, nobody])
    query = "query($o: String!) { licences(owner: $o) { type } }"
    enterprise = gql(http, token, query, {"o": ENTERPRISES[0].credit_code})
    missing = gql(http, token, query, {"o": nobody})
    assert enterprise.json() == missing.json() == {"data": {"licences": []}}
    recorded, unknown = access_events(vault)[-2:]
    assert recorded["action"] == unknown["action"] == "fields.denied" and recorded["owner"] and "owner" not in unknown
    no_owner = gql(http, token, "{ licences { type } }").json()
    assert errors_by_code(no_owner)["BAD_USER_INPUT"][0]["extensions"]["argument"] == "owner"


def test_types_are_checked_and_licences_filtered_by_type(vault: Vault, http: TestClient) -> None:
    token = police_token(http)
    query = "query($o: String!, $t: [String!]) { licences(owner: $o, types: $t) { type } }"
    person = identifier("a")
    only = gql(http, token, query, {"o": person, "t": ["household-register"]}).json()
    assert only["data"]["licences"] == [{"type": "household-register"}]
    every = gql(http, token, query, {"o": person, "t": None}).json()
    assert sorted(t["type"] for t in every["data"]["licences"]) == ["household-register", "resident-id-card"]
    unknown = gql(http, token, query, {"o": person, "t": ["passport"]}).json()
    assert errors_by_code(unknown)["BAD_USER_INPUT"]
    bad_name = gql(http, token, MANDATE_READ, {"owner": person, "names": ["blood_type"]}).json()
    assert "blood_type" in errors_by_code(bad_name)["BAD_USER_INPUT"][0]["message"]


def test_fields_without_names_are_what_policy_releases_with_no_error(vault: Vault, http: TestClient) -> None:
    token = tokens(vault, http, HOUSING, REPEATED_ITEM)["access_token"]
    body = gql(http, token, '{ licences(types: ["resident-id-card"]) { fields { name } } }').json()
    assert "errors" not in body
    assert [f["name"] for f in body["data"]["licences"][0]["fields"]] == ["name", "id_number"]


def test_licence_ids_are_stable_and_states_current(vault: Vault, http: TestClient) -> None:
    token = police_token(http)
    body = gql(http, token, MANDATE_READ, {"owner": identifier("a"), "types": ["resident-id-card"]}).json()
    [licence] = body["data"]["licences"]
    uuid.UUID(licence["id"])
    assert licence["state"] == "ACTIVE" and licence["inForce"] is True
    assert licence["validUntil"] is None  # the mandate does not name valid_until
    assert licence["issuer"]["id"] == f"{vault.settings.public_url}/issuers/public-security"
