"""DPoP (RFC 9449): sender-constrained tokens at the token endpoint and at /graphql; required in production."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.oauth_helpers import (
    BASE,
    AgencyClient,
    consent_via_service,
    dpop_key,
    dpop_proof,
    query_of,
)
from vault.config import Mode
from vault.demo import PERSONS
from vault.oauth.adapter import unit_of_work
from vault.owners.models import OwnerKind
from vault.web.app import create_app
from vault.wiring import Vault

TRAFFIC = "traffic-police-vehicle-office"
ITEM = "vehicle-registration"
VERIFIER = "approval-hall"
TOKEN_URL = f"{BASE}/oauth/token"
GRAPHQL_URL = f"{BASE}/graphql"
QUERY = {"query": "query { licences { id type } }"}


def production(vault: Vault) -> Vault:
    return dataclasses.replace(vault, settings=dataclasses.replace(vault.settings, mode=Mode.PRODUCTION))


@pytest.fixture(params=["development", "production"])
def vault(request: pytest.FixtureRequest, demo_vault: Vault) -> Vault:
    return production(demo_vault) if request.param == "production" else demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=vault), base_url=BASE) as client:
        yield client


def person(vault: Vault) -> uuid.UUID:
    with unit_of_work(vault.db) as session:
        owner = vault.owners.find(session, OwnerKind.PERSON, PERSONS[0].id_number)
        assert owner is not None
        return owner.id


def verifier_token(http: TestClient, key: Any | None) -> Any:
    headers = {"DPoP": dpop_proof(key, TOKEN_URL)} if key is not None else {}
    return http.post(
        "/oauth/token",
        auth=(VERIFIER, f"demo-secret-{VERIFIER}"),
        data={"grant_type": "client_credentials", "scope": "licences:verify"},
        headers=headers,
    )


def graphql(http: TestClient, token: str, key: Any | None, scheme: str = "DPoP", proof: str | None = None) -> Any:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None or key is not None:
        headers["DPoP"] = proof or dpop_proof(key, GRAPHQL_URL, access_token=token)
    return http.post("/graphql", json=QUERY, headers=headers)


def bound_tokens(vault: Vault, http: TestClient, key: Any) -> dict[str, Any]:
    """The redirect flow with the code bound at PAR to `key` and redeemed with a proof by it."""
    agency = AgencyClient(http, TRAFFIC, f"demo-secret-{TRAFFIC}")
    pushed = agency.push(ITEM, dpop_jkt=key.thumbprint())
    assert pushed.status_code == 201, pushed.text
    request_id = uuid.UUID(agency.authorize(pushed.json()["request_uri"]).headers["location"].rsplit("/", 1)[1])
    code = query_of(consent_via_service(vault, request_id, person(vault)))["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": agency.redirect_uri}
    data["code_verifier"] = agency.verifier
    response = http.post("/oauth/token", auth=agency.auth, data=data, headers={"DPoP": dpop_proof(key, TOKEN_URL)})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_metadata_advertises_dpop(http: TestClient) -> None:
    assert http.get("/.well-known/oauth-authorization-server").json()["dpop_signing_alg_values_supported"]


def test_a_token_issued_with_a_proof_is_bound_to_its_key(vault: Vault, http: TestClient) -> None:
    key = dpop_key()
    issued = verifier_token(http, key)
    assert issued.status_code == 200, issued.text
    assert issued.json()["token_type"] == "DPoP"
    token = issued.json()["access_token"]
    assert graphql(http, token, key).status_code == 200
    seen = http.post("/oauth/introspect", auth=(VERIFIER, f"demo-secret-{VERIFIER}"), data={"token": token}).json()
    assert seen["cnf"] == {"jkt": key.thumbprint()} and seen["token_type"] == "DPoP"


def test_production_refuses_a_token_request_without_a_proof(vault: Vault, http: TestClient) -> None:
    # without OAuthService._prove's production check, production issued a plain bearer token here
    response = verifier_token(http, None)
    if vault.settings.is_production:
        assert response.status_code == 400 and response.json()["error"] == "invalid_dpop_proof"
    else:
        assert response.status_code == 200 and response.json()["token_type"] == "Bearer"


def test_production_refuses_a_bearer_token_at_graphql(demo_vault: Vault) -> None:
    with TestClient(create_app(vault=demo_vault), base_url=BASE) as client:
        token = verifier_token(client, None).json()["access_token"]  # issued in development: unbound
        assert graphql(client, token, None, scheme="Bearer").status_code == 200
    with TestClient(create_app(vault=production(demo_vault)), base_url=BASE) as client:
        # without check_binding's production rule, the unbound token kept working in production
        refused = graphql(client, token, None, scheme="Bearer")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("DPoP")


def test_a_bound_token_is_refused_without_a_proof_or_as_bearer(http: TestClient) -> None:
    key = dpop_key()
    token = verifier_token(http, key).json()["access_token"]
    assert graphql(http, token, None).status_code == 401
    assert graphql(http, token, key, scheme="Bearer").status_code == 401


def test_a_proof_by_another_key_is_refused(http: TestClient) -> None:
    # without check_binding's jkt comparison, any key's proof carried the stolen token
    token = verifier_token(http, dpop_key()).json()["access_token"]
    response = graphql(http, token, dpop_key())
    assert response.status_code == 401
    assert "not signed by the key" in response.json()["errors"][0]["message"]


def test_a_replayed_proof_is_refused(http: TestClient) -> None:
    # without dpop.claim, the same proof was accepted again for as long as its iat was fresh
    key = dpop_key()
    token = verifier_token(http, key).json()["access_token"]
    proof = dpop_proof(key, GRAPHQL_URL, access_token=token)
    assert graphql(http, token, key, proof=proof).status_code == 200
    again = graphql(http, token, key, proof=proof)
    assert again.status_code == 401 and again.json()["errors"][0]["extensions"]["reason"] == "invalid_dpop_proof"
    used = dpop_proof(key, TOKEN_URL)
    first = http.post(
        "/oauth/token",
        auth=(VERIFIER, f"demo-secret-{VERIFIER}"),
        data={"grant_type": "client_credentials", "scope": "licences:verify"},
        headers={"DPoP": used},
    )
    assert first.status_code == 200
    second = http.post(
        "/oauth/token",
        auth=(VERIFIER, f"demo-secret-{VERIFIER}"),
        data={"grant_type": "client_credentials", "scope": "licences:verify"},
        headers={"DPoP": used},
    )
    assert second.status_code == 400 and second.json()["error"] == "invalid_dpop_proof"


@pytest.mark.parametrize(
    "change",
    [
        {"htm": "GET"},
        {"htu": f"{BASE}/oauth/par"},
        {"iat": 1},
        {"access_token": "another-token"},
    ],
)
def test_a_proof_for_another_request_is_refused(http: TestClient, change: dict[str, Any]) -> None:
    key = dpop_key()
    token = verifier_token(http, key).json()["access_token"]
    args: dict[str, Any] = {"url": GRAPHQL_URL, "access_token": token}
    if "htm" in change:
        args["method"] = change["htm"]
    if "htu" in change:
        args["url"] = change["htu"]
    if "iat" in change:
        args["iat"] = change["iat"]
    if "access_token" in change:
        args["access_token"] = change["access_token"]
    assert graphql(http, token, key, proof=dpop_proof(key, **args)).status_code == 401


def test_the_code_and_refresh_token_are_bound_to_the_key(vault: Vault, http: TestClient) -> None:
    key, other = dpop_key(), dpop_key()
    tokens = bound_tokens(vault, http, key)
    assert tokens["token_type"] == "DPoP"
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    auth = (TRAFFIC, f"demo-secret-{TRAFFIC}")
    # without the refresh grant's jkt check, another key refreshed the bound refresh token
    stolen = http.post("/oauth/token", auth=auth, data=refresh, headers={"DPoP": dpop_proof(other, TOKEN_URL)})
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    rotated = http.post("/oauth/token", auth=auth, data=refresh, headers={"DPoP": dpop_proof(key, TOKEN_URL)})
    assert rotated.status_code == 200 and rotated.json()["token_type"] == "DPoP", rotated.text


def test_a_bound_code_is_refused_with_another_key(vault: Vault, http: TestClient) -> None:
    key = dpop_key()
    agency = AgencyClient(http, TRAFFIC, f"demo-secret-{TRAFFIC}")
    pushed = agency.push(ITEM, dpop_jkt=key.thumbprint())
    request_id = uuid.UUID(agency.authorize(pushed.json()["request_uri"]).headers["location"].rsplit("/", 1)[1])
    code = query_of(consent_via_service(vault, request_id, person(vault)))["code"]
    # without CodeGrant's dpop_jkt check, whoever stole the code redeemed it with their own key
    response = agency.redeem(code) if not vault.settings.is_production else None
    if response is not None:
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": agency.redirect_uri}
    data["code_verifier"] = agency.verifier
    other = http.post("/oauth/token", auth=agency.auth, data=data, headers={"DPoP": dpop_proof(dpop_key(), TOKEN_URL)})
    assert other.status_code == 400 and other.json()["error"] in ("invalid_grant",)


def test_production_refuses_par_without_a_key(vault: Vault, http: TestClient) -> None:
    agency = AgencyClient(http, TRAFFIC, f"demo-secret-{TRAFFIC}")
    pushed = agency.push(ITEM)
    if vault.settings.is_production:
        assert pushed.status_code == 400 and pushed.json()["error"] == "invalid_dpop_proof"
    else:
        assert pushed.status_code == 201
    malformed = agency.push(ITEM, dpop_jkt="not-a-thumbprint")
    assert malformed.status_code == 400


def test_maintenance_forgets_proofs_too_old_to_be_accepted(vault: Vault) -> None:
    from datetime import timedelta

    from vault import maintenance
    from vault.clock import utcnow
    from vault.oauth import dpop

    key = dpop_key()
    proof = dpop.verify(dpop_proof(key, TOKEN_URL), method="POST", url=TOKEN_URL, now=utcnow())
    with vault.db.session() as session:
        dpop.claim(session, proof, utcnow())
    assert maintenance.forget_proofs(vault) == 0  # still within its window: kept, so a replay is refused
    with vault.db.session() as session:
        assert dpop.purge(session, utcnow() + dpop.MAX_AGE + timedelta(minutes=1)) == 1
