"""Questions racing: a "once" grant answers exactly one question however many are asked at once, and no answer
leaves after a revocation has committed. The use is claimed by the same guarded update as reads."""

from __future__ import annotations

import uuid

from sqlmodel import select
from starlette.testclient import TestClient

from tests.concurrency.conftest import events
from tests.concurrency.race import parallel
from tests.oauth_helpers import AgencyClient, consent_via_service, query_of
from vault.consent.models import Grant
from vault.demo import ENTERPRISES, PERSONS
from vault.owners.models import OwnerKind
from vault.wiring import Vault

CHECK = 'query { check(predicate: "business-licence-in-force") { answer signed } }'
AGE = 'query { check(predicate: "holder-age-at-least", parameters: [{name: "years", value: "18"}]) { answer } }'


def _token(vault: Vault, http: TestClient, item: str, owner_key: str | None) -> tuple[str, uuid.UUID]:
    agency = AgencyClient(http, "transport-bureau", "demo-secret-transport-bureau")
    with vault.db.session() as session:
        person = vault.owners.find(session, OwnerKind.PERSON, PERSONS[0].id_number)
        assert person is not None
        owner = person
        if owner_key is not None:
            company = next(e for e in ENTERPRISES if e.key == owner_key)
            found = vault.owners.find(session, OwnerKind.ENTERPRISE, company.credit_code)
            assert found is not None
            owner = found
        person_id, owner_id = person.id, owner.id
    location = consent_via_service(vault, agency.start(item), person_id, owner_id)
    token: str = agency.redeem(query_of(location)["code"]).json()["access_token"]
    return token, owner_id


def _ask(http: TestClient, token: str, query: str) -> int:
    response = http.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})
    body = response.json()
    return int(bool(response.status_code == 200 and (body.get("data") or {}).get("check")))


def test_parallel_questions_on_a_once_grant_are_answered_once(vault: Vault, http: TestClient) -> None:
    token, owner = _token(vault, http, "road-freight-operator-check", "transport")

    answered = parallel(lambda i: _ask(http, token, CHECK))

    assert sum(answered) == 1, answered
    assert events(vault, "predicate.answered", owner) == 1
    with vault.db.session() as session:
        grant = session.scalars(select(Grant).where(Grant.owner_id == owner)).one()
        assert (grant.uses, grant.state) == (1, "exhausted")


def test_no_answer_after_a_revocation_has_committed(vault: Vault, http: TestClient) -> None:
    token, owner = _token(vault, http, "ride-hailing-driver-check", None)
    with vault.db.session() as session:
        grant = session.scalars(select(Grant).where(Grant.owner_id == owner)).one()
    revoked: list[bool] = []

    def attempt(i: int) -> int:
        if i == 0:
            with vault.db.session() as session:
                vault.consent.revoke(session, grant.id, actor="owner:test", owner_id=None, reason="revoked by owner")
            revoked.append(True)
            return 0
        return _ask(http, token, AGE)

    parallel(attempt)
    assert revoked
    answered_before = events(vault, "predicate.answered", owner)
    assert _ask(http, token, AGE) == 0
    assert events(vault, "predicate.answered", owner) == answered_before
    with vault.db.session() as session:
        after = session.get(Grant, grant.id)
        assert after is not None and after.uses == answered_before
