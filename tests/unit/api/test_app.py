"""The request's unit of work: no data without its access event, and unexpected errors kept for the log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import col, select
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE, AgencyClient, consented_tokens
from tests.unit.api.support import HOUSING, REPEATED_ITEM, demo_person, gql, identifier, police_token, secret
from vault.api import app as api_app
from vault.api.context import bearer_token
from vault.audit.models import AuditEvent
from vault.audit.services import AuditLog
from vault.consent.models import Grant
from vault.oauth.adapter import unit_of_work
from vault.policy.engine import PolicyEngine
from vault.web.app import create_app
from vault.wiring import Vault

READ = '{ licences(types: ["resident-id-card"]) { fields(names: ["name"]) { value } } }'


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=vault), base_url=BASE) as client:
        yield client


def read_events(vault: Vault) -> int:
    with unit_of_work(vault.db) as session:
        return len(session.scalars(select(AuditEvent.id).where(col(AuditEvent.action) == "fields.released")).all())


def test_if_the_access_event_cannot_be_written_no_data_is_returned_and_nothing_counts(
    vault: Vault, http: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    agency = AgencyClient(http, HOUSING, secret(HOUSING))
    token = consented_tokens(vault, agency, demo_person(vault), REPEATED_ITEM)["access_token"]
    original = AuditLog.append_each

    def failing(self: AuditLog, session: Any, events: Any) -> Any:  # alone, or a group commit's batch of events
        if any(event.action.value.startswith("fields.") for event, _ in events):
            raise OSError("disk full")
        return original(self, session, events)

    monkeypatch.setattr(AuditLog, "append_each", failing)
    response = gql(http, token, READ)
    assert response.status_code == 500
    body = response.json()
    assert body["data"] is None and "演示居民甲" not in response.text
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR" and error["extensions"]["correlationId"]
    assert "disk full" not in response.text
    with unit_of_work(vault.db) as session:
        assert session.scalars(select(Grant)).one().uses == 0  # the use was rolled back with the read
    assert read_events(vault) == 0
    monkeypatch.setattr(AuditLog, "append_each", original)
    again = gql(http, token, READ)
    assert again.json()["data"]["licences"][0]["fields"][0]["value"] == "演示居民甲"
    assert read_events(vault) == 1


def test_unexpected_errors_reach_the_client_as_a_correlation_id_only(
    vault: Vault, http: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token = police_token(http)

    def broken(self: PolicyEngine, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cedar exploded at /srv/secret/path")

    monkeypatch.setattr(PolicyEngine, "decide_reads", broken)
    with caplog.at_level(logging.ERROR, logger="vault.api"):
        response = gql(http, token, "query($o: String!) { licences(owner: $o) { type } }", {"o": identifier()})
    assert response.status_code == 200
    body = response.json()
    [error] = body["errors"]
    assert error["message"].startswith("Internal server error") and "cedar" not in json.dumps(body)
    correlation = error["extensions"]["correlationId"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR" and error["path"] == ["licences"]
    logged = [r for r in caplog.records if correlation in r.getMessage()]
    assert logged and "cedar exploded" in str(logged[0].exc_info[1])  # type: ignore[index]


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("Bearer  abc ", "abc"),
        ("Bearer a b", None),
        ("Basic abc", None),
        ("Bearer", None),
    ],
)
def test_bearer_token_parsing(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_documents_remembered_for_their_operation_type_are_small_operation_names_included(http: TestClient) -> None:
    api_app._operation_type.cache_clear()
    for i in range(3):  # no valid token needed to get this far
        body = {"query": "query Q { __typename }", "operationName": f"n{i}" + "x" * 100_000}
        response = http.post("/graphql", json=body, headers={"Authorization": "Bearer not-a-token"})
        assert response.status_code in (400, 401)
    assert api_app._operation_type.cache_info().currsize == 0  # nothing of 100 kB each held in memory
    small = {"query": "query Q { __typename }", "operationName": "Q"}
    http.post("/graphql", json=small, headers={"Authorization": "Bearer not-a-token"})
    assert api_app._operation_type.cache_info().currsize == 1
