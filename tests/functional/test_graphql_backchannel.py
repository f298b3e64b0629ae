"""requestConsent: an agency starts a backchannel consent request over GraphQL and polls for its tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import col, select
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE
from tests.unit.api.support import (
    client_token,
    demo_person,
    errors_by_code,
    gql,
    identifier,
    operation,
    register_client,
    secret,
)
from vault.consent.errors import NotAuthorisedToConsent
from vault.consent.models import ConsentRequest
from vault.consent.services import Decider
from vault.oauth.adapter import unit_of_work
from vault.oauth.server import binding_message
from vault.web.app import create_app
from vault.wiring import Vault

COUNTER = "vehicle-office-counter"
REQUEST = operation("agency-request-consent")
CIBA = "urn:openid:params:grant-type:ciba"


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    register_client(
        demo_vault,
        COUNTER,
        department="traffic-police",
        category="traffic",
        scopes=["consent:request", "licences:read"],
        service_items=["vehicle-registration"],
        grant_types=["client_credentials", CIBA],
    )
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=vault), base_url=BASE) as client:
        yield client


@pytest.fixture
def token(http: TestClient) -> str:
    return client_token(http, COUNTER, "consent:request")


def start(http: TestClient, token: str, **variables: Any) -> dict[str, Any]:
    given = {"owner": identifier(), "serviceItem": "vehicle-registration", **variables}
    body = gql(http, token, REQUEST, given).json()
    result: dict[str, Any] = body["data"]["requestConsent"]
    return result


def test_the_owner_is_asked_and_the_agency_polls_for_its_tokens(vault: Vault, http: TestClient, token: str) -> None:
    fields = [{"type": "resident-id-card", "names": ["name", "id_number"]}]
    started = start(http, token, fields=fields, bindingMessage="窗口 3 · A-0042")
    assert started["__typename"] == "ConsentRequestStarted" and started["interval"] == 5
    poll = {"grant_type": CIBA, "auth_req_id": started["authReqId"]}
    pending = http.post("/oauth/token", auth=(COUNTER, secret(COUNTER)), data=poll)
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    owner = demo_person(vault)
    with unit_of_work(vault.db) as session:
        [request] = vault.consent.inbox(session, owner)
        assert request.fields == {"resident-id-card": ["id_number", "name"]}
        binding = binding_message(vault.keys, session, request)
        assert binding == "窗口 3 · A-0042" and request.binding_message is None  # only under the owner's key
    person = owner
    with unit_of_work(vault.db) as session:
        vault.consent.approve(session, request.id, Decider(person, person), request.fields)
    granted = http.post("/oauth/token", auth=(COUNTER, secret(COUNTER)), data=poll)
    assert granted.status_code == 200
    read = '{ licences { fields(names: ["name", "sex"]) { value } } }'
    body = gql(http, granted.json()["access_token"], read).json()
    assert body["data"]["licences"][0]["fields"][0] == {"value": "演示居民甲"}
    assert errors_by_code(body)["FIELD_FORBIDDEN"][0]["extensions"]["field"] == "resident-id-card/sex"


@pytest.mark.parametrize(
    ("variables", "error"),
    [
        ({"owner": "110101199001011238"}, "invalid_request"),  # a wrong check character: never the right one
        ({"serviceItem": "household-migration"}, "invalid_authorization_details"),
        ({"fields": [{"type": "resident-id-card", "names": ["photo"]}]}, "invalid_authorization_details"),
        ({"bindingMessage": "x" * 61}, "invalid_request"),
    ],
)
def test_refusals_come_back_as_results(http: TestClient, token: str, variables: dict[str, Any], error: str) -> None:
    refused = start(http, token, **variables)
    assert refused["__typename"] == "ConsentRequestRefused" and refused["error"] == error and refused["message"]


def test_an_owner_not_in_the_vault_looks_like_any_other(vault: Vault, http: TestClient, token: str) -> None:
    started = start(http, token, owner="110101199001011237")  # a well-formed number nobody in the vault has
    assert started["__typename"] == "ConsentRequestStarted" and started["interval"] == 5
    # nobody may answer it: a backchannel request names its owner, and this one names nobody in the vault
    person = demo_person(vault)
    with unit_of_work(vault.db) as session:
        [request] = session.scalars(select(ConsentRequest).where(col(ConsentRequest.owner_id).is_(None))).all()
        with pytest.raises(NotAuthorisedToConsent):
            vault.consent.approve(session, request.id, Decider(person, person), request.fields)
    poll = {"grant_type": CIBA, "auth_req_id": started["authReqId"]}
    pending = http.post("/oauth/token", auth=(COUNTER, secret(COUNTER)), data=poll)
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"


def test_requesting_consent_needs_its_scope(http: TestClient) -> None:
    read_only = client_token(http, "approval-hall", "licences:verify")
    body = gql(http, read_only, REQUEST, {"owner": identifier(), "serviceItem": "vehicle-registration"}).json()
    assert errors_by_code(body)["FORBIDDEN"][0]["extensions"]["scope"] == "consent:request"
