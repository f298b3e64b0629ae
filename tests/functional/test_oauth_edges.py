"""OAuth and URL edges: non-ASCII text in errors, tokens in query strings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE, details, pkce
from tests.unit.api.support import police_token, secret
from vault.web.app import create_app
from vault.wiring import Vault

HOUSING = "housing-bureau"
FORM = {"content-type": "application/x-www-form-urlencoded"}
ALLOWED = set(range(0x20, 0x7F)) - {0x22, 0x5C}  # RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E


@pytest.fixture
def http(demo_vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=demo_vault), base_url=BASE) as client:
        yield client


def assert_ascii_error(response: object, status: int, error: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["error"] == error
    assert set(body["error_description"].encode()) <= ALLOWED, body["error_description"]


def test_a_non_ascii_duplicated_parameter_is_a_400_in_ascii(http: TestClient) -> None:
    # was a ValueError from Authlib (a 500): the description echoed the parameter's name
    body = "grant_type=client_credentials&%E4%B8%AD=1&%E4%B8%AD=2"
    response = http.post("/oauth/token", auth=(HOUSING, secret(HOUSING)), content=body, headers=FORM)
    assert_ascii_error(response, 400, "invalid_request")
    assert "U+4E2D" in response.json()["error_description"]


def test_a_non_ascii_service_item_is_a_400_in_ascii(http: TestClient) -> None:
    _, challenge = pkce()
    data = {
        "response_type": "code",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "authorization_details": details('中文"项目\\'),
    }
    response = http.post("/oauth/par", auth=(HOUSING, secret(HOUSING)), data=data)
    assert_ascii_error(response, 400, "invalid_authorization_details")


def test_non_ascii_in_a_mandate_is_a_400_in_ascii(http: TestClient) -> None:
    data = {
        "grant_type": "client_credentials",
        "scope": "licences:read",
        "authorization_details": '[{"type": "legal_mandate", "mandate": "刑侦", "case_reference": "x"}]',
    }
    response = http.post("/oauth/token", auth=("police-investigation", secret("police-investigation")), data=data)
    assert response.status_code == 400 and set(response.json()["error_description"].encode()) <= ALLOWED


@pytest.mark.parametrize("path", ["/graphql", "/oauth/introspect", "/", "/healthz"])
def test_a_token_in_the_query_string_is_refused(http: TestClient, path: str) -> None:
    # without RefuseTokensInUrl /graphql answered 401 and the URL (token included) reached the access log
    token = police_token(http)
    response = http.post(f"{path}?access_token={token}", json={"query": "{ __typename }"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request" and "never in the URL" in response.json()["error_description"]
    assert token not in response.text
