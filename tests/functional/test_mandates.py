"""Reads under a legal mandate, as an agency makes them over HTTP: bound to a case, its owners and an official,
sensitive fields named, rate-limited per case and per client, registered cases, no check character to agencies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from sqlmodel import col, select
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE, demo_identifiers, mandate_details
from tests.unit.api.support import (
    POLICE,
    client_token,
    demo_person,
    errors_by_code,
    gql,
    identifier,
    police_token,
    register_client,
    secret,
)
from vault import clock
from vault.audit.models import AuditEvent
from vault.cli import main as vault_cli
from vault.demo import ENTERPRISES
from vault.mandates.models import MandateCase
from vault.oauth.adapter import unit_of_work
from vault.web.app import create_app
from vault.wiring import Vault

POLICE_MANDATE = "police-criminal-investigation"
MEANS_CHECK = "social-assistance-means-check"
CIVIL = "civil-affairs-checks"
CASE_DESK = "civil-affairs-case-desk"
READ = (
    "query($o: String!, $n: [String!]) {"
    ' licences(owner: $o, types: ["resident-id-card"]) { fields(names: $n) { name value } } }'
)
TWO = (
    "query($a: String!, $b: String!) {"
    ' first: licences(owner: $a, types: ["resident-id-card"]) { fields(names: ["name"]) { value } }'
    ' second: licences(owner: $b, types: ["resident-id-card"]) { fields(names: ["name"]) { value } } }'
)


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=vault), base_url=BASE) as client:
        yield client


def events(vault: Vault, *actions: str) -> list[dict[str, Any]]:
    with unit_of_work(vault.db) as session:
        rows = session.scalars(
            select(AuditEvent.entry).where(col(AuditEvent.action).in_(actions)).order_by(col(AuditEvent.seq))
        ).all()
    return [json.loads(entry) for entry in rows]


def token_request(http: TestClient, client_id: str, details: str) -> Any:
    data = {"grant_type": "client_credentials", "scope": "licences:read", "authorization_details": details}
    return http.post("/oauth/token", auth=(client_id, secret(client_id)), data=data)


# the read the review reproduced, refused three ways


def test_a_case_reference_that_fails_its_pattern_gets_no_token_and_is_recorded(vault: Vault, http: TestClient) -> None:
    response = token_request(http, POLICE, mandate_details(POLICE_MANDATE, "x"))
    assert response.status_code == 400 and response.json()["error"] == "invalid_authorization_details"
    assert response.json()["error_description"].startswith("case_reference does not match the required format ^")
    [refused] = events(vault, "token.refused")
    assert (
        refused["mandate"] == POLICE_MANDATE and refused["decision"] == "deny" and "case_reference" in refused["reason"]
    )


def test_an_owner_the_token_does_not_name_is_refused_and_the_attempt_recorded(vault: Vault, http: TestClient) -> None:
    token = police_token(http, owners=demo_identifiers("a"))
    body = gql(http, token, TWO, {"a": identifier("a"), "b": identifier("c")}).json()
    [refused] = errors_by_code(body)["FORBIDDEN"]
    assert refused["path"] == ["second"] and "does not name this owner" in refused["message"]
    released, denied = events(vault, "fields.released", "fields.denied")[-2:]
    assert released["owner"] == str(demo_person(vault, "a")) and released["fields"] == ["resident-id-card/name"]
    assert denied["owner"] == str(demo_person(vault, "c")) and denied["action"] == "fields.denied"
    assert denied["denied_fields"] == ["resident-id-card/name"] and "does not name this owner" in denied["reason"]


def test_a_photo_needs_a_token_that_names_it(vault: Vault, http: TestClient) -> None:
    token = police_token(http, sensitive=["resident-id-card/id_number"])
    body = gql(http, token, READ, {"o": identifier("a"), "n": ["name", "photo", "id_number"]}).json()
    name, photo, id_number = body["data"]["licences"][0]["fields"]
    assert name["value"] and id_number["value"] and photo is None
    [forbidden] = errors_by_code(body)["FIELD_FORBIDDEN"]
    assert forbidden["extensions"]["field"] == "resident-id-card/photo"
    assert "mandate-sensitive-field-not-named" in forbidden["extensions"]["reason"]
    event = events(vault, "fields.released")[-1]
    assert (
        event["denied_fields"] == ["resident-id-card/photo"] and "mandate-sensitive-field-not-named" in event["reason"]
    )
    named = police_token(http, sensitive=["resident-id-card/photo"])
    again = gql(http, named, READ, {"o": identifier("a"), "n": ["photo"]}).json()
    assert again["data"]["licences"][0]["fields"][0]["value"] and "errors" not in again


def test_one_owner_per_request_under_a_mandate(vault: Vault, http: TestClient) -> None:
    token = police_token(http)  # names persons a and b
    body = gql(http, token, TWO, {"a": identifier("a"), "b": identifier("b")}).json()
    [refused] = errors_by_code(body)["FORBIDDEN"]
    assert refused["path"] == ["second"] and "one owner only" in refused["message"]
    denied = events(vault, "fields.denied")[-1]
    assert denied["owner"] == str(demo_person(vault, "b")) and "one owner only" in denied["reason"]
    same_twice = gql(http, token, TWO, {"a": identifier("a"), "b": identifier("a")}).json()
    assert "errors" not in same_twice  # the same owner under two aliases is still one owner


# what a token request must say


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"owners": []}, "legal_mandate needs owners"),
        ({"official": "PC 12"}, "official does not match the required format"),
        ({"official": "0123456\u202e"}, "official character 8 is a bidirectional control (U+202E)"),
        ({"owners": [*demo_identifiers("a", "b", "c"), ENTERPRISES[0].credit_code]}, "at most 3 owners"),
        ({"sensitive": ["resident-id-card/name"]}, "sensitive_fields[0] is not a sensitive field"),
        ({"colour": "blue"}, "unknown member 'colour'"),
        ({"owners": ["甲" * 18]}, "owners[0] is not a valid identifier"),  # non-ASCII: a 400, never a 500
    ],
)
def test_a_mandate_token_request_is_checked(http: TestClient, change: dict[str, Any], problem: str) -> None:
    response = token_request(http, POLICE, mandate_details(POLICE_MANDATE, "XS-2026-000001", **change))
    assert response.status_code == 400 and response.json()["error"] == "invalid_authorization_details"
    assert problem in response.json()["error_description"]


def test_a_refused_identifier_leaves_no_part_of_it_in_the_log(vault: Vault, http: TestClient) -> None:
    impossible = "110105198513321234"  # month 13: the message to the agency quotes the birth date
    response = token_request(http, POLICE, mandate_details(POLICE_MANDATE, "XS-2026-000001", owners=[impossible]))
    assert response.status_code == 400 and "19851332" in response.json()["error_description"]
    [refused] = events(vault, "token.refused")
    assert refused["reason"] == "owners[0] is not a valid identifier" and "19851332" not in json.dumps(refused)


def test_a_wrong_check_character_is_never_corrected_for_an_agency(http: TestClient) -> None:
    real = identifier("a")
    wrong = real[:-1] + ("0" if real[-1] != "0" else "1")
    at_token = token_request(http, POLICE, mandate_details(POLICE_MANDATE, "XS-2026-000001", owners=[wrong]))
    at_read = gql(http, police_token(http), READ, {"o": wrong, "n": ["name"]}).json()
    [bad_input] = errors_by_code(at_read)["BAD_USER_INPUT"]
    for message in (at_token.json()["error_description"], bad_input["message"]):
        assert "check character" in message and "expected" not in message and repr(real[-1]) not in message


# rate limits


def test_reads_over_the_per_case_limit_answer_429_and_are_recorded(vault: Vault, http: TestClient) -> None:
    limit = vault.policy.catalogue.mandate(POLICE_MANDATE).rate_limits.per_case
    token = police_token(http, case="XS-2026-000099")
    for _ in range(limit):
        assert gql(http, token, READ, {"o": identifier("a"), "n": ["name"]}).status_code == 200
    over = gql(http, token, READ, {"o": identifier("a"), "n": ["name"]})
    assert over.status_code == 429 and int(over.headers["retry-after"]) > 0
    [limited] = errors_by_code(over.json())["RATE_LIMITED"]
    assert limited["extensions"]["limit"] == "case" and limited["extensions"]["retryAfter"] > 0
    denied = events(vault, "fields.denied")[-1]
    assert denied["owner"] == str(demo_person(vault, "a")) and "rate limit" in denied["reason"]
    other_case = police_token(http, case="XS-2026-000100")  # the limit is the case's, not yet the client's
    assert gql(http, other_case, READ, {"o": identifier("a"), "n": ["name"]}).status_code == 200


# registered cases


@pytest.fixture
def civil(vault: Vault) -> str:
    register_client(vault, CIVIL, department="civil-affairs", category="civil-affairs", scopes=["licences:read"])
    register_client(vault, CASE_DESK, department="civil-affairs", category="civil-affairs", scopes=["cases:register"])
    return CIVIL


def means_check(case: str, *keys: str) -> str:
    return mandate_details(MEANS_CHECK, case, owners=demo_identifiers(*keys), official="A1234")


def test_a_mandate_that_requires_registration_refuses_an_unregistered_case(
    vault: Vault, http: TestClient, civil: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = token_request(http, civil, means_check("HD-2026-000001", "a"))
    assert refused.status_code == 400 and "not registered" in refused.json()["error_description"]
    monkeypatch.setenv("VAULT_DATA_DIR", str(vault.settings.data_dir))
    monkeypatch.setenv("VAULT_DATABASE_URL", vault.settings.database_url)
    until = (clock.utcnow() + timedelta(days=30)).date().isoformat()
    args = ["mandates", "register-case", "--mandate", MEANS_CHECK, "--case", "HD-2026-000001"]
    assert vault_cli([*args, "--owners", identifier("a"), "--valid-until", until]) == 0
    assert token_request(http, civil, means_check("HD-2026-000001", "a")).status_code == 200
    outside = token_request(http, civil, means_check("HD-2026-000001", "a", "b"))
    assert outside.status_code == 400 and "owners[1] is not an owner of the registered case" in outside.text
    too_long = (clock.utcnow() + timedelta(days=400)).date().isoformat()
    assert vault_cli([*args, "--owners", identifier("a"), "--valid-until", too_long]) == 2
    with unit_of_work(vault.db) as session:
        [row] = session.scalars(select(MandateCase)).all()
        assert "HD-2026-000001" not in json.dumps(row.model_dump(mode="json"))  # a keyed hash only
        assert identifier("a") not in json.dumps(row.model_dump(mode="json"))


def test_the_case_management_client_registers_over_graphql_and_the_registration_ends(
    vault: Vault, http: TestClient, civil: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mutation = (
        "mutation($m: String!, $c: String!, $o: [String!]!, $u: Date!) {"
        " registerCase(mandate: $m, caseReference: $c, owners: $o, validUntil: $u) {"
        " ... on CaseRegistered { owners validUntil } ... on CaseRefused { field message } } }"
    )
    desk = client_token(http, CASE_DESK, "cases:register")
    until = clock.utcnow().date() + timedelta(days=10)
    variables = {"m": MEANS_CHECK, "c": "HD-2026-000002", "o": [identifier("a")], "u": until.isoformat()}
    assert gql(http, desk, mutation, variables).json()["data"]["registerCase"] == {
        "owners": 1,
        "validUntil": until.isoformat(),
    }
    bad = gql(http, desk, mutation, {**variables, "c": "case two"}).json()["data"]["registerCase"]
    assert bad["field"] == "caseReference" and "does not match" in bad["message"]
    reader = client_token(http, civil, "licences:read", means_check("HD-2026-000002", "a"))
    assert errors_by_code(gql(http, reader, mutation, variables).json())["FORBIDDEN"]  # no cases:register scope
    query = 'query($o: String!) { licences(owner: $o, types: ["vehicle-licence"]) { type } }'
    assert "errors" not in gql(http, reader, query, {"o": identifier("a")}).json()
    later = clock.utcnow() + timedelta(days=11)
    monkeypatch.setattr("vault.api.context.clock.utcnow", lambda: later)
    ended = gql(http, reader, query, {"o": identifier("a")}).json()
    assert "registration has ended" in errors_by_code(ended)["FORBIDDEN"][0]["message"]
    assert "registration has ended" in events(vault, "fields.denied")[-1]["reason"]


def test_registration_dates_are_checked(vault: Vault, civil: str) -> None:
    from vault.mandates.errors import MandateRefused
    from vault.mandates.services import MandateService, registration_end

    service = MandateService(vault.keys, vault.audit, vault.policy.catalogue)
    mandate = vault.policy.catalogue.mandate(MEANS_CHECK)
    with unit_of_work(vault.db) as session, pytest.raises(MandateRefused) as caught:
        service.register_case(
            session,
            mandate=mandate,
            case_reference="HD-2026-000003",
            owners=[identifier("a")],
            valid_until=registration_end(date(2020, 1, 1)),
            actor="test",
            now=clock.utcnow(),
        )
    assert caught.value.field == "valid_until"
