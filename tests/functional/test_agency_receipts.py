"""The consent receipt for the agency: with its tokens, and again from the grant endpoint; verifiable offline."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE, AgencyClient, consented_tokens
from vault.crypto import jws
from vault.demo import PERSONS
from vault.oauth.adapter import unit_of_work
from vault.owners.models import OwnerKind
from vault.web.app import create_app
from vault.wiring import Vault

TRAFFIC = "traffic-police-vehicle-office"


@pytest.fixture
def http(demo_vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=demo_vault), base_url=BASE) as client:
        yield client


def person(vault: Vault) -> uuid.UUID:
    with unit_of_work(vault.db) as session:
        owner = vault.owners.find(session, OwnerKind.PERSON, PERSONS[0].id_number)
        assert owner is not None
        return owner.id


def test_the_token_response_carries_the_signed_receipt(demo_vault: Vault, http: TestClient) -> None:
    agency = AgencyClient(http, TRAFFIC, f"demo-secret-{TRAFFIC}")
    tokens = consented_tokens(demo_vault, agency, person(demo_vault), "vehicle-registration")
    receipt = tokens["consent_receipt"]
    keys = {k["kid"]: k for k in http.get("/oauth/jwks").json()["keys"]}
    header, _, _, _ = jws.decode_unverified(receipt)
    _, payload = jws.verify_compact(receipt, jws.verify_key_from_jwk(keys[header["kid"]]))
    claims = json.loads(payload)
    assert claims["jti"] == tokens["grant_id"] and claims["agency"] == TRAFFIC
    again = http.post("/oauth/grant", auth=agency.auth, data={"grant_id": tokens["grant_id"]})
    assert again.status_code == 200 and again.json()["consent_receipt"] == receipt
    assert again.json()["state"] == "active"
    other = http.post(
        "/oauth/grant", auth=("transport-bureau", "demo-secret-transport-bureau"), data={"grant_id": tokens["grant_id"]}
    )
    assert other.status_code == 400  # another agency's grant is not found, whether it exists or not
    assert http.post("/oauth/grant", auth=agency.auth, data={"grant_id": "x"}).status_code == 400
