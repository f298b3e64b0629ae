"""private_key_jwt (RFC 7523): an agency authenticates with an assertion signed by a key it registered."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import nacl.signing
import pytest
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE
from vault.crypto import jws
from vault.oauth.adapter import unit_of_work
from vault.oauth.clients import MAX_ASSERTION_LIFETIME
from vault.oauth.errors import AgencyError
from vault.web.app import create_app
from vault.wiring import Vault

CLIENT = "jwt-agency"
KEY = nacl.signing.SigningKey.generate()
TOKEN_URL = f"{BASE}/oauth/token"


@pytest.fixture
def http(demo_vault: Vault) -> Iterator[TestClient]:
    with unit_of_work(demo_vault.db) as session:
        demo_vault.agencies.register(
            session,
            client_id=CLIENT,
            name_zh="签名认证机构",
            name_en="Key-authenticated agency",
            category="police",
            department="public-security",
            service_items=[],
            redirect_uris=[],
            grant_types=["client_credentials"],
            scopes=["licences:verify"],
            auth_method="private_key_jwt",
            jwks={"keys": [jws.public_jwk(KEY.verify_key, "k1")]},
            actor="test",
        )
    with TestClient(create_app(vault=demo_vault), base_url=BASE) as client:
        yield client


def assertion(key: nacl.signing.SigningKey = KEY, **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": CLIENT,
        "sub": CLIENT,
        "aud": TOKEN_URL,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_hex(8),
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jws.sign_compact({"alg": "EdDSA", "typ": "JWT", "kid": "k1"}, claims, key)


def token(http: TestClient, client_assertion: str) -> Any:
    return http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "licences:verify",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion,
        },
    )


def test_a_valid_assertion_authenticates(http: TestClient) -> None:
    response = token(http, assertion())
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "licences:verify"


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "https://elsewhere.example/token"},
        {"exp": int(time.time()) - 600},
        {"sub": None},
        {"iss": "someone-else"},
        {"jti": None},
    ],
    ids=["wrong-aud", "expired", "missing-sub", "iss-not-sub", "missing-jti"],
)
def test_bad_assertions_are_401_invalid_client(http: TestClient, changes: dict[str, Any]) -> None:
    response = token(http, assertion(**changes))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_an_assertion_signed_by_another_key_is_refused(http: TestClient) -> None:
    response = token(http, assertion(key=nacl.signing.SigningKey.generate()))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_an_assertion_cannot_be_replayed(http: TestClient) -> None:
    once = assertion()
    assert token(http, once).status_code == 200
    replay = token(http, once)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"


def test_a_secret_does_not_authenticate_a_key_client(http: TestClient) -> None:
    response = http.post("/oauth/token", auth=(CLIENT, "guess"), data={"grant_type": "client_credentials"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_hmac_and_none_algorithms_are_refused(http: TestClient) -> None:
    header = jws.b64url_encode(b'{"alg":"none","typ":"JWT"}')
    now = int(time.time())
    body = jws.b64url_encode(
        jws.canonical_json({"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL, "exp": now + 60, "jti": "x"})
    )
    response = token(http, f"{header}.{body}.")
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_an_assertion_naming_a_client_without_keys_is_401(http: TestClient) -> None:
    # police-investigation authenticates with a secret: no keys to resolve (was a 500 from MissingKeyError)
    response = token(http, assertion(iss="police-investigation", sub="police-investigation"))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("claim", "offset"),
    [("exp", 10 * 365 * 86400), ("exp", MAX_ASSERTION_LIFETIME + 120), ("iat", -MAX_ASSERTION_LIFETIME - 120)],
    ids=["ten-years", "seven-minutes-ahead", "issued-seven-minutes-ago"],
)
def test_long_lived_or_old_assertions_are_refused(http: TestClient, claim: str, offset: int) -> None:
    # without check_lifetime all three authenticated
    response = token(http, assertion(**{claim: int(time.time()) + offset}))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert f"{MAX_ASSERTION_LIFETIME} seconds" in response.json()["error_description"]


def test_symmetric_keys_are_refused_at_registration_and_at_use(demo_vault: Vault, http: TestClient) -> None:
    shared = {"kty": "oct", "k": jws.b64url_encode(b"0" * 32), "kid": "k1"}
    with unit_of_work(demo_vault.db) as session, pytest.raises(AgencyError, match="symmetric"):
        demo_vault.agencies.register(
            session,
            client_id="oct-agency",
            name_zh="共享密钥机构",
            name_en="Shared-key agency",
            category="police",
            department="public-security",
            service_items=[],
            redirect_uris=[],
            grant_types=["client_credentials"],
            scopes=["licences:verify"],
            auth_method="private_key_jwt",
            jwks={"keys": [shared]},
            actor="test",
        )
    with unit_of_work(demo_vault.db) as session:  # a row written before registration checked its keys
        agency = demo_vault.agencies.get(session, CLIENT)
        assert agency is not None
        agency.jwks = {"keys": [shared]}
    response = token(http, assertion())
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
