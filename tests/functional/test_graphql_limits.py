"""The GraphQL lines of the security checklist that are about abuse limits and hardening (OWASP GraphQL)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE, dpop_key, dpop_proof
from tests.unit.api.support import HALL, client_token, errors_by_code, gql, identifier, police_token, secret
from vault.api.limits import (
    MAX_ALIASES,
    MAX_BODY_BYTES,
    MAX_COST,
    MAX_DEPTH,
    MAX_FIELDS,
    MAX_PRESENTATIONS,
    MAX_TOKENS,
)
from vault.config import Mode
from vault.jsonbounds import MAX_DEPTH as MAX_JSON_DEPTH
from vault.web.app import create_app
from vault.wiring import Vault

INTROSPECTION = "{ __schema { queryType { name } types { name } } }"


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=vault), base_url=BASE) as client:
        yield client


@pytest.fixture
def production(vault: Vault) -> Iterator[TestClient]:
    hardened = dataclasses.replace(vault, settings=dataclasses.replace(vault.settings, mode=Mode.PRODUCTION))
    with TestClient(create_app(vault=hardened), base_url=BASE) as client:
        yield client


@pytest.fixture
def token(http: TestClient) -> str:
    return police_token(http)


class Production:
    """An agency of the production-mode vault: its token bound to a DPoP key, a fresh proof per query."""

    def __init__(self, http: TestClient) -> None:
        self.http, self.key = http, dpop_key()
        proof = dpop_proof(self.key, f"{BASE}/oauth/token")
        data = {"grant_type": "client_credentials", "scope": "licences:verify"}
        issued = http.post("/oauth/token", auth=(HALL, secret(HALL)), data=data, headers={"DPoP": proof})
        assert issued.status_code == 200, issued.text
        self.token = issued.json()["access_token"]

    def gql(self, query: str) -> dict[str, Any]:
        proof = dpop_proof(self.key, f"{BASE}/graphql", access_token=self.token)
        headers = {"Content-Type": "application/json", "Authorization": f"DPoP {self.token}", "DPoP": proof}
        body: dict[str, Any] = self.http.post("/graphql", content=json.dumps({"query": query}), headers=headers).json()
        return body


def messages(body: dict[str, Any]) -> list[str]:
    return [str(e["message"]) for e in body.get("errors") or []]


def test_depth_is_limited(http: TestClient, token: str) -> None:
    deep = "{ licences { issuer { code { a { b { c { d } } } } } } }"
    body = gql(http, token, deep).json()
    assert body["data"] is None
    assert any(f"the limit is {MAX_DEPTH}" in m for m in messages(body))


def test_recursive_fragments_are_a_validation_error_not_a_500(http: TestClient, token: str) -> None:
    query = "{ licences { ...A } } fragment A on Licence { issuer { code } ...B } fragment B on Licence { ...A }"
    response = gql(http, token, query)
    assert response.status_code == 200 and response.json()["data"] is None
    assert any("Cannot spread fragment" in m for m in messages(response.json()))
    unknown = gql(http, token, "{ licences { ...Missing } }")
    assert unknown.status_code == 200 and any("Unknown fragment" in m for m in messages(unknown.json()))


def test_fragments_that_multiply_are_measured_without_expanding_them(http: TestClient, token: str) -> None:
    # 2**12 expanded copies of one aliased field: caught by arithmetic, answered at once
    chain = " ".join(f"fragment F{i} on Licence {{ ...F{i + 1} ...F{i + 1} }}" for i in range(12))
    query = "{ licences { ...F0 } } " + chain + " fragment F12 on Licence { t: type }"
    body = gql(http, token, query).json()
    assert body["data"] is None and any("aliases" in m for m in messages(body))


@pytest.mark.parametrize("depth", [12, 30, 80])
def test_a_fragment_bomb_is_refused_before_validation_or_execution(http: TestClient, token: str, depth: int) -> None:
    # no alias anywhere: only the expanded field count catches it (at 20 levels it used to run for a minute)
    chain = " ".join(f"fragment F{i} on Licence {{ ...F{i + 1} ...F{i + 1} }}" for i in range(depth))
    query = f"{{ licences {{ ...F0 }} }} {chain} fragment F{depth} on Licence {{ type }}"
    response = gql(http, token, query)
    body = response.json()
    assert response.status_code == 200 and body["data"] is None
    assert [m for m in messages(body) if f"the limit is {MAX_FIELDS}" in m], messages(body)


def test_list_sizes_multiply_the_cost(http: TestClient) -> None:
    token = client_token(http, HALL, "licences:verify")
    aliases = " ".join(f"f{i}: fields {{ name value }}" for i in range(MAX_ALIASES))
    query = f"query($p: [String!]!) {{ verifyLicences(presentations: $p) {{ valid reason {aliases} }} }}"
    assert 1 + MAX_PRESENTATIONS * (2 + 3 * MAX_ALIASES) > MAX_COST  # 1,000 entries of 47 fields
    body = gql(http, token, query, {"p": ["x"] * MAX_PRESENTATIONS}).json()
    assert body["data"] is None and any(f"the limit is {MAX_COST}" in m for m in messages(body))
    assert "errors" not in gql(http, token, query, {"p": ["x"] * 10}).json()


def test_aliases_of_typename_count(http: TestClient, token: str) -> None:
    fields = " ".join(f"a{i}: __typename" for i in range(MAX_ALIASES + 1))
    body = gql(http, token, f"{{ {fields} }}").json()
    assert body["data"] is None and any(f"the limit is {MAX_ALIASES}" in m for m in messages(body))


def test_several_operations_without_an_operation_name_are_refused(http: TestClient, token: str) -> None:
    document = "query A { a: __typename } query B { b: __typename }"
    body = gql(http, token, document).json()
    assert body["data"] is None and any("operationName" in m for m in messages(body))
    named = http.post(
        "/graphql",
        json={"query": document, "operationName": "B"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert named.json() == {"data": {"b": "Query"}}


def test_aliases_are_limited(http: TestClient, token: str) -> None:
    fields = " ".join(f"a{i}: licences(owner: $o) {{ type }}" for i in range(MAX_ALIASES + 1))
    body = gql(http, token, f"query($o: String!) {{ {fields} }}", {"o": identifier()}).json()
    assert body["data"] is None and any(f"the limit is {MAX_ALIASES}" in m for m in messages(body))
    fields = " ".join(f"a{i}: licences(owner: $o) {{ type }}" for i in range(MAX_ALIASES))
    assert "errors" not in gql(http, token, f"query($o: String!) {{ {fields} }}", {"o": identifier()}).json()


def test_tokens_are_limited(http: TestClient, token: str) -> None:
    query = '{ licences(owner: "x") { ' + " ".join(["type"] * MAX_TOKENS) + " } }"
    body = gql(http, token, query).json()
    assert body["data"] is None and any(f"more than {MAX_TOKENS} tokens" in m for m in messages(body))


def test_the_request_body_is_capped(http: TestClient, token: str) -> None:
    padding = "x" * MAX_BODY_BYTES
    response = gql(http, token, "query($p: String!) { verifyLicence(presentation: $p) { valid } }", {"p": padding})
    assert response.status_code == 413
    streamed = http.post(
        "/graphql",
        content=iter([b"{", b" " * MAX_BODY_BYTES, b"}"]),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    assert streamed.status_code == 413


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_a_deeply_nested_body_is_a_clear_400(http: TestClient, depth: int) -> None:
    # no token needed; without jsonbounds 100,000 levels were a RecursionError (a 500 or a dropped connection)
    body = '{"query": "{ __typename }", "variables": {"a": ' + "[" * depth + "]" * depth + "}}"
    response = http.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert f"more than {MAX_JSON_DEPTH} levels deep" in response.json()["errors"][0]["message"]


def test_batching_is_refused(http: TestClient, token: str) -> None:
    batch = json.dumps([{"query": "{ __typename }"}, {"query": "{ __typename }"}])
    response = http.post(
        "/graphql", content=batch, headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 400 and "batching" in response.json()["errors"][0]["message"]


def test_list_arguments_are_clamped(http: TestClient) -> None:
    token = client_token(http, HALL, "licences:verify")
    many = ["x"] * (MAX_PRESENTATIONS + 1)
    query = "query($p: [String!]!) { verifyLicences(presentations: $p) { valid } }"
    body = gql(http, token, query, {"p": many}).json()
    assert errors_by_code(body)["BAD_USER_INPUT"][0]["extensions"]["argument"] == "presentations"
    police = police_token(http)
    names = [f"n{i}" for i in range(200)]
    query = "query($o: String!, $n: [String!]) { licences(owner: $o) { fields(names: $n) { value } } }"
    assert errors_by_code(gql(http, police, query, {"o": identifier(), "n": names}).json())["BAD_USER_INPUT"]


def test_only_post_with_application_json(http: TestClient, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    get = http.get("/graphql", params={"query": "{ __typename }"}, headers=auth)
    assert get.status_code == 405 and get.headers["allow"] == "POST"
    form = http.post("/graphql", data={"query": "{ __typename }"}, headers=auth)
    assert form.status_code == 415
    text = http.post("/graphql", content='{"query": "{ __typename }"}', headers={**auth, "Content-Type": "text/plain"})
    assert text.status_code == 415
    assert http.put("/graphql", json={"query": "{ __typename }"}, headers=auth).status_code == 405


def test_production_has_no_introspection_and_no_ide(production: TestClient) -> None:
    agency = Production(production)
    body = agency.gql(INTROSPECTION)
    assert body["data"] is None and any("introspection" in m for m in messages(body))
    assert agency.gql("{ __typename }") == {"data": {"__typename": "Query"}}
    ide = production.get("/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 405 and "graphiql" not in ide.text.lower()


def test_development_keeps_graphiql_and_introspection(http: TestClient, token: str) -> None:
    ide = http.get("/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 200 and "graphiql" in ide.text.lower()
    csp = ide.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "'nonce-" in csp and "unsafe-eval" not in csp
    assert gql(http, token, INTROSPECTION).json()["data"]["__schema"]["queryType"] == {"name": "Query"}


def test_no_did_you_mean_suggestions(production: TestClient) -> None:
    body = Production(production).gql('{ licence { typ } verifyLicence(presentaton: "x") { vaild } }')
    assert body["data"] is None and messages(body)
    assert not any("Did you mean" in m or "did you mean" in m for m in messages(body))


def test_responses_are_not_cached(http: TestClient, token: str) -> None:
    response = gql(http, token, "{ __typename }")
    assert response.headers["cache-control"] == "no-store"
    assert gql(http, None, "{ __typename }").headers["cache-control"] == "no-store"
