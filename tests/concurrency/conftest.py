"""Race tests run on SQLite and, with VAULT_TEST_POSTGRES_URL set, on PostgreSQL, where writers truly overlap."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlmodel import func, select
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE, AgencyClient
from vault.audit.models import AuditEvent
from vault.demo import PERSONS
from vault.owners.models import OwnerKind
from vault.web.app import create_app
from vault.wiring import Vault

TRAFFIC = "traffic-police-vehicle-office"
ONCE_ITEM = "vehicle-registration"


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=vault), base_url=BASE) as client:
        yield client


@pytest.fixture
def agency(http: TestClient) -> AgencyClient:
    return AgencyClient(http, TRAFFIC, f"demo-secret-{TRAFFIC}")


def person_id(vault: Vault, index: int = 0) -> uuid.UUID:
    with vault.db.session() as session:
        owner = vault.owners.find(session, OwnerKind.PERSON, PERSONS[index].id_number)
        assert owner is not None
        return owner.id


def events(vault: Vault, action: str, owner_id: uuid.UUID | None = None) -> int:
    with vault.db.session() as session:
        query = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
        if owner_id is not None:
            query = query.where(AuditEvent.owner_id == owner_id)
        return int(session.scalar(query) or 0)


REPEATED_ITEM = "minimum-living-allowance"


@pytest.fixture
def civil(vault: Vault, http: TestClient) -> AgencyClient:
    """An agency whose service item allows repeated reads while the grant lasts."""
    from tests.oauth_helpers import REDIRECT

    with vault.db.session() as session:
        _, secret = vault.agencies.register(
            session,
            client_id="civil-affairs-allowance",
            name_zh="测试民政局",
            name_en="Test civil affairs bureau",
            category="civil-affairs",
            department="civil-affairs",
            service_items=[REPEATED_ITEM],
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            scopes=["licences:read", "consent:request"],
            auth_method="client_secret_basic",
            actor="test",
        )
    return AgencyClient(http, "civil-affairs-allowance", secret or "")
