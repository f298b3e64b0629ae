"""Maintenance rounds: erasure on schedule even for a signed-in owner, and one failure never stops the rest."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE, AgencyClient, consented_tokens
from vault import clock, maintenance
from vault.demo import PERSONS
from vault.oauth.models import Token
from vault.owners.models import Account, Owner, OwnerKind
from vault.web import sessions
from vault.web.app import create_app
from vault.web.models import WebSession
from vault.wiring import Vault

TRAFFIC = "traffic-police-vehicle-office"


@pytest.fixture
def http(demo_vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=demo_vault), base_url=BASE) as client:
        yield client


def _person(vault: Vault, index: int) -> uuid.UUID:
    with vault.db.session() as session:
        owner = vault.owners.find(session, OwnerKind.PERSON, PERSONS[index].id_number)
        assert owner is not None
        return owner.id


def _due(vault: Vault, *owner_ids: uuid.UUID) -> None:
    with vault.db.session() as session:
        for owner_id in owner_ids:
            owner = session.get(Owner, owner_id)
            assert owner is not None
            owner.erase_after = clock.utcnow() - timedelta(minutes=1)


def _sign_in(vault: Vault, owner_id: uuid.UUID) -> str:
    with vault.db.session() as session:
        account = session.scalars(select(Account).where(Account.owner_id == owner_id)).one()
        token, _ = sessions.create(session, account, lang="zh", replacing=None)
        return token


def test_a_signed_in_owner_is_erased_on_schedule_with_the_others_and_everything_of_theirs_ends(
    demo_vault: Vault, http: TestClient
) -> None:
    vault = demo_vault
    first, second = _person(vault, 0), _person(vault, 1)
    tokens = consented_tokens(
        vault, AgencyClient(http, TRAFFIC, f"demo-secret-{TRAFFIC}"), first, "vehicle-registration"
    )
    cookie = _sign_in(vault, first)  # a live web session used to block the account's deletion, and every erasure
    _due(vault, first, second)
    with vault.db.session() as session:
        size_before = vault.audit.size(session)

    done = maintenance.run_once(vault)

    assert done["erased"] == 2 and done["checkpointed"] >= 0, done
    with vault.db.session() as session:
        assert all(session.get(Owner, o).erased_at is not None for o in (first, second))  # type: ignore[union-attr]
        assert session.get(WebSession, sessions.session_id(cookie)) is None
        assert all(t.revoked_at is not None for t in session.scalars(select(Token).where(Token.owner_id == first)))
        assert vault.audit.size(session) > size_before  # the log went on: erasures recorded and integrated
    introspected = http.post(
        "/oauth/introspect", auth=(TRAFFIC, f"demo-secret-{TRAFFIC}"), data={"token": tokens["access_token"]}
    )
    assert introspected.json() == {"active": False}


def test_one_failing_erasure_does_not_hold_back_the_others_or_the_checkpoint(
    demo_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = demo_vault
    broken, fine = _person(vault, 0), _person(vault, 1)
    _due(vault, broken, fine)
    original = vault.owners.erase_if_due

    def erase(session: object, owner_id: uuid.UUID, **kw: object) -> bool:
        if owner_id == broken:
            raise RuntimeError("disk on fire")
        return original(session, owner_id, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(vault.owners, "erase_if_due", erase)
    done = maintenance.run_once(vault)
    assert done["erased"] == 1 and done["checkpointed"] != -1, done
    with vault.db.session() as session:
        assert session.get(Owner, fine).erased_at is not None  # type: ignore[union-attr]
        assert session.get(Owner, broken).erased_at is None  # type: ignore[union-attr]
    monkeypatch.setattr(vault.owners, "erase_if_due", original)
    assert maintenance.run_once(vault)["erased"] == 1  # retried next round
