"""Talking to POST /graphql as an agency or issuer would, for the API's unit and functional tests."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx2 as httpx
from starlette.testclient import TestClient

from tests.oauth_helpers import mandate_details
from vault.demo import PERSONS
from vault.oauth.adapter import unit_of_work
from vault.owners.models import OwnerKind
from vault.wiring import Vault

PROJECT_ROOT = Path(__file__).resolve().parents[3]
OPERATIONS = PROJECT_ROOT / "graphql" / "operations"
TRAFFIC = "traffic-police-vehicle-office"
HOUSING = "housing-bureau"
POLICE = "police-investigation"
HALL = "approval-hall"
REPEATED_ITEM = "housing-provident-fund-withdrawal"  # resident-id-card + household-register, many reads
ONCE_ITEM = "vehicle-registration"


def operation(name: str) -> str:
    return (OPERATIONS / f"{name}.graphql").read_text(encoding="utf-8")


def gql(
    http: TestClient, token: str | None, query: str, variables: dict[str, Any] | None = None, **headers: str
) -> httpx.Response:
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return http.post("/graphql", content=json.dumps(body), headers={"Content-Type": "application/json", **headers})


def secret(client_id: str) -> str:
    return f"demo-secret-{client_id}"


def client_token(http: TestClient, client_id: str, scope: str, authorization_details: str | None = None) -> str:
    data = {"grant_type": "client_credentials", "scope": scope}
    if authorization_details is not None:
        data["authorization_details"] = authorization_details
    response = http.post("/oauth/token", auth=(client_id, secret(client_id)), data=data)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def police_token(http: TestClient, case: str = "XS-2026-000001", **details: Any) -> str:
    """A police mandate token; by default for demo persons a and b, naming every sensitive field."""
    details_json = mandate_details("police-criminal-investigation", case, **details)
    return client_token(http, POLICE, "licences:read", details_json)


def register_client(
    vault: Vault,
    client_id: str,
    *,
    department: str,
    category: str,
    scopes: list[str],
    service_items: list[str] | None = None,
    grant_types: list[str] | None = None,
) -> None:
    """A client-credentials client with secret demo-secret-<client id>, e.g. an issuing department's."""
    with unit_of_work(vault.db) as session:
        vault.agencies.register(
            session,
            client_id=client_id,
            name_zh="测试客户端",
            name_en="Test client",
            category=category,
            department=department,
            service_items=service_items or [],
            redirect_uris=[],
            grant_types=grant_types or ["client_credentials"],
            scopes=scopes,
            auth_method="client_secret_basic",
            secret=secret(client_id),
            actor="test",
        )


def demo_person(vault: Vault, key: str = "a") -> uuid.UUID:
    person = next(p for p in PERSONS if p.key == key)
    with unit_of_work(vault.db) as session:
        owner = vault.owners.find(session, OwnerKind.PERSON, person.id_number)
        assert owner is not None
        return owner.id


def identifier(key: str = "a") -> str:
    return next(p for p in PERSONS if p.key == key).id_number


def errors_by_code(body: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for error in body.get("errors") or []:
        found.setdefault(error.get("extensions", {}).get("code", ""), []).append(error)
    return found
