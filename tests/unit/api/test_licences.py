"""The agency read's costs: statements independent of the number of licences, one policy batch, only released
fields decrypted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from starlette.testclient import TestClient

from tests import factories
from tests.oauth_helpers import BASE, mandate_details
from tests.unit.api.support import client_token, demo_person, gql, identifier, register_client
from vault.crypto.envelope import DataKey
from vault.db import Prepared
from vault.owners.models import Owner
from vault.policy.engine import PolicyEngine
from vault.web.app import create_app
from vault.wiring import Vault

ACCIDENTS = "accident-unit"
QUERY = """query($o: String!) {
  licences(owner: $o, types: ["driving-licence", "resident-id-card"]) {
    type state issuer { code } fields(names: ["name", "class", "licence_number", "id_number"]) { value masked }
    presentation
  }
}"""


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    register_client(demo_vault, ACCIDENTS, department="traffic-police", category="police", scopes=["licences:read"])
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=vault), base_url=BASE) as client:
        yield client


@pytest.fixture
def token(http: TestClient) -> str:
    details = mandate_details("traffic-accident-handling", "SG-2026-000001")
    return client_token(http, ACCIDENTS, "licences:read", details)


def more_driving_licences(vault: Vault, count: int) -> None:
    with vault.db.session() as session:
        owner = session.get(Owner, demo_person(vault))
        assert owner is not None
        for _ in range(count):
            factories.driving_licence(vault, session, owner)


def statements(
    vault: Vault, http: TestClient, token: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, dict[str, Any]]:
    """The statements one read runs, on both engines (the read-only one and the writing one), those SQLAlchemy
    executes and those Prepared runs on the driver alike."""
    seen: list[str] = []
    engines = {vault.db.engine, vault.db.read_engine}

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    run = Prepared.all

    def counted(self: Prepared, connection: Any, params: Any) -> Any:
        seen.append(str(self.statement))
        return run(self, connection, params)

    with monkeypatch.context() as patched:
        patched.setattr(Prepared, "all", counted)
        for engine in engines:
            event.listen(engine, "before_cursor_execute", count)
        try:
            response = gql(http, token, QUERY, {"o": identifier()})
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200
    return len(seen), response.json()


def test_the_number_of_statements_does_not_grow_with_the_number_of_licences(
    vault: Vault, http: TestClient, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements(vault, http, token, monkeypatch)  # warm: keys, caches
    # the least of four runs: the maintenance leader may sequence the access log and sign a checkpoint on the same
    # engine during some of them (the count is of the whole engine, so it includes their statements)
    one, body = min((statements(vault, http, token, monkeypatch) for _ in range(4)), key=lambda run: run[0])
    assert len(body["data"]["licences"]) == 2
    more_driving_licences(vault, 7)
    many, body = min((statements(vault, http, token, monkeypatch) for _ in range(4)), key=lambda run: run[0])
    assert len(body["data"]["licences"]) == 9
    assert many == one, f"{one} statements for 2 licences, {many} for 9"
    assert 4 <= one <= 20  # at least the token, the owner, the licences and their fields


def test_policy_decides_once_per_request_for_every_row(
    vault: Vault, http: TestClient, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    more_driving_licences(vault, 4)
    calls: list[dict[str, Any]] = []
    original = PolicyEngine.decide_reads

    def spy(self: PolicyEngine, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["fields"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PolicyEngine, "decide_reads", spy)
    body = gql(http, token, QUERY, {"o": identifier()}).json()
    assert len(body["data"]["licences"]) == 6
    assert calls == [
        {"driving-licence": ["licence_number", "name", "class"], "resident-id-card": ["name", "id_number"]}
    ]
    calls.clear()
    aliased = """query($o: String!) {
      a: licences(owner: $o, types: ["driving-licence"]) { fields(names: ["name"]) { value } }
      b: licences(owner: $o, types: ["driving-licence"]) { fields(names: ["name", "class"]) { value } }
    }"""
    gql(http, token, aliased, {"o": identifier()})
    assert calls == [{"driving-licence": ["name"]}, {"driving-licence": ["class"]}]


def test_only_released_fields_are_decrypted(
    vault: Vault, http: TestClient, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    original = DataKey.decrypt_text

    def spy(self: DataKey, ciphertext: bytes, context: Any) -> str:
        opened.append(context.field)
        return original(self, ciphertext, context)

    monkeypatch.setattr(DataKey, "decrypt_text", spy)
    query = """query($o: String!) {
      licences(owner: $o, types: ["driving-licence"]) { fields(names: ["name", "address", "photo"]) { value } }
    }"""
    body = gql(http, token, query, {"o": identifier()}).json()
    assert body["data"]["licences"][0]["fields"][0]["value"] == "演示居民甲"
    assert sorted(opened) == ["name"]  # address and photo are not in the mandate: never opened
    opened.clear()
    query = 'query($o: String!) { licences(owner: $o, types: ["driving-licence"]) { presentation } }'
    gql(http, token, query, {"o": identifier()})
    assert sorted(opened) == ["_issuer_jwt", "class", "licence_number", "name", "valid_until"]
