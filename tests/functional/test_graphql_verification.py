"""verifyLicence and verifyLicences: genuine and in force, or the precise reason, disclosing nothing more."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE
from tests.unit.api.support import (
    HALL,
    client_token,
    errors_by_code,
    gql,
    identifier,
    operation,
    police_token,
    register_client,
)
from vault.licences.sdjwt import split
from vault.web.app import create_app
from vault.wiring import Vault

VERIFY = operation("agency-verify-licence")
VERIFY_MANY = operation("agency-verify-licences")
READ = operation("agency-read-under-mandate")


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    register_client(
        demo_vault, "id-card-office", department="public-security", category="issuer", scopes=["licences:issue"]
    )
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=vault), base_url=BASE) as client:
        yield client


@pytest.fixture
def hall(http: TestClient) -> str:
    return client_token(http, HALL, "licences:verify")


def presented(http: TestClient, names: list[str], person: str = "a") -> tuple[str, str]:
    """(licence id, presentation) of a person's ID card with `names` disclosed, read under a police mandate."""
    variables = {"owner": identifier(person), "types": ["resident-id-card"], "names": names}
    [licence] = gql(http, police_token(http), READ, variables).json()["data"]["licences"]
    return licence["id"], licence["presentation"]


def test_a_genuine_licence_verifies_with_exactly_what_it_discloses(http: TestClient, hall: str) -> None:
    _, presentation = presented(http, ["name", "sex"])
    result = gql(http, hall, VERIFY, {"presentation": presentation}).json()["data"]["verifyLicence"]
    assert result["valid"] is True and result["reason"] == "ok" and result["explanation"] == "genuine and in force"
    assert result["licenceType"] == "resident-id-card" and result["issuer"].endswith("/issuers/public-security")
    assert result["expiresAt"].startswith("2040-05-02")
    assert {f["name"]: f["value"] for f in result["fields"]} == {"name": "演示居民甲", "sex": "男"}


def test_each_failure_has_its_precise_reason(http: TestClient, hall: str) -> None:
    licence_id, presentation = presented(http, ["name"])
    jwt, disclosures = split(presentation)
    header, payload, signature = jwt.split(".")
    forged_signature = f"{header}.{payload}.{signature[:-4]}AAAA~{disclosures[0]}~"
    foreign = presentation.replace(disclosures[0], split(presented(http, ["name"], person="b")[1])[1][0])
    cases = {"not a licence": "malformed", forged_signature: "bad_signature", foreign: "digest_mismatch"}
    for text, reason in cases.items():
        result = gql(http, hall, VERIFY, {"presentation": text}).json()["data"]["verifyLicence"]
        assert (result["valid"], result["reason"], result["fields"]) == (False, reason, [])
    issuer = client_token(http, "id-card-office", "licences:issue")
    suspend = operation("issuer-suspend-licence")
    assert gql(http, issuer, suspend, {"id": licence_id, "reason": "挂失"}).json()["data"]["suspendLicence"]
    result = gql(http, hall, VERIFY, {"presentation": presentation}).json()["data"]["verifyLicence"]
    assert result["reason"] == "suspended" and result["issuer"] and result["fields"] == []


def test_a_batch_answers_in_order(http: TestClient, hall: str) -> None:
    _, good = presented(http, ["name"])
    batch = [good, "garbage", good] * 40  # verified in chunks of 50: the order holds across them
    results = gql(http, hall, VERIFY_MANY, {"presentations": batch}).json()["data"]["verifyLicences"]
    assert [r["reason"] for r in results] == ["ok", "malformed", "ok"] * 40


def test_a_batch_of_a_thousand_fits_the_limits(http: TestClient, hall: str) -> None:
    _, good = presented(http, ["name", "sex", "birth_date", "id_number", "address"])
    response = gql(http, hall, VERIFY_MANY, {"presentations": [good] * 1000})
    assert response.status_code == 200
    assert {r["reason"] for r in response.json()["data"]["verifyLicences"]} == {"ok"}


def test_verification_needs_the_verify_scope(vault: Vault, http: TestClient) -> None:
    issuer = client_token(http, "id-card-office", "licences:issue")
    body = gql(http, issuer, VERIFY, {"presentation": "x"}).json()
    assert errors_by_code(body)["FORBIDDEN"][0]["extensions"]["scope"] == "licences:verify"


def test_a_suspended_agency_is_refused_a_query_that_reads_nobody_s_data(
    vault: Vault, http: TestClient, hall: str
) -> None:
    """A query's agency may come from the worker's memory, and the write that records a read re-checks its
    suspension; a verification records nothing, so it is checked before answering instead."""
    _, presentation = presented(http, ["name"])
    assert gql(http, hall, VERIFY, {"presentation": presentation}).json()["data"]["verifyLicence"]["valid"] is True
    with vault.db.session() as session:  # the agency is remembered by now: suspended behind the worker's back
        vault.agencies.suspend(session, HALL, actor="staff:x", reason="audit")
    response = gql(http, hall, VERIFY, {"presentation": presentation})
    assert response.status_code == 401 and response.json()["data"] is None
    assert "suspended" in response.json()["errors"][0]["message"]
