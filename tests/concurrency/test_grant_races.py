"""Grants in use: a "once" grant is read once, a revocation is final, and no read releases data after it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import select
from starlette.testclient import TestClient

from tests.concurrency.conftest import ONCE_ITEM, REPEATED_ITEM, events, person_id
from tests.concurrency.race import PARALLEL, parallel, race
from tests.oauth_helpers import AgencyClient, consented_tokens
from vault import clock
from vault.consent.errors import GrantNotLive, IllegalGrantTransition
from vault.consent.models import Grant
from vault.demo import PERSONS
from vault.oauth.models import Token
from vault.wiring import Vault

READ = """query($o: String!) { licences(owner: $o, types: ["resident-id-card"]) { fields { name value } } }"""


def _grant(vault: Vault, owner: uuid.UUID) -> Grant:
    with vault.db.session() as session:
        return session.scalars(select(Grant).where(Grant.owner_id == owner)).one()


def test_a_once_grant_is_used_exactly_once(vault: Vault, agency: AgencyClient) -> None:
    owner = person_id(vault)
    consented_tokens(vault, agency, owner, ONCE_ITEM)
    grant = _grant(vault, owner)
    assert grant.use_limit == 1
    outcome = race(vault.db, lambda session, i: vault.consent.use(session, grant.id))
    assert len(outcome.won) == 1 and not outcome.errors_of(GrantNotLive)
    after = _grant(vault, owner)
    assert after.uses == 1 and after.state == "exhausted"
    assert events(vault, "grant.exhausted", owner) == 1


def test_parallel_reads_with_a_once_token_release_data_once(
    vault: Vault, agency: AgencyClient, http: TestClient
) -> None:
    owner = person_id(vault)
    token = consented_tokens(vault, agency, owner, ONCE_ITEM)["access_token"]

    def read(i: int) -> int:
        response = http.post(
            "/graphql",
            json={"query": READ, "variables": {"o": PERSONS[0].id_number}},
            headers={"Authorization": f"Bearer {token}"},
        )
        body = response.json()
        return int(bool(response.status_code == 200 and (body.get("data") or {}).get("licences")))

    released = parallel(read)
    assert sum(released) == 1, released
    assert events(vault, "fields.released", owner) == 1
    assert _grant(vault, owner).uses == 1


def test_parallel_revocations_end_a_grant_once(vault: Vault, agency: AgencyClient) -> None:
    owner = person_id(vault)
    tokens = consented_tokens(vault, agency, owner, ONCE_ITEM)
    grant = _grant(vault, owner)
    outcome = race(
        vault.db,
        lambda session, i: vault.consent.revoke(session, grant.id, actor=f"owner:{owner}", owner_id=owner, reason=None),
    )
    assert len(outcome.won) == 1 and not outcome.errors_of(IllegalGrantTransition)
    assert events(vault, "grant.revoked", owner) == 1
    assert agency.introspect(tokens["access_token"]) == {"active": False}
    with vault.db.session() as session:
        assert all(t.revoked_at is not None for t in session.scalars(select(Token).where(Token.owner_id == owner)))


def test_revocation_racing_expiry_and_use_ends_the_grant_once(vault: Vault, civil: AgencyClient) -> None:
    owner = person_id(vault)
    consented_tokens(vault, civil, owner, REPEATED_ITEM)
    grant = _grant(vault, owner)

    def step(session: object, i: int) -> str:
        if i % 3 == 0:
            vault.consent.revoke(session, grant.id, actor="staff:x", owner_id=None, reason=None)  # type: ignore[arg-type]
            return "revoked"
        if i % 3 == 1:
            return f"expired:{vault.consent.expire_due(session)}"  # type: ignore[arg-type]
        vault.consent.use(session, grant.id)  # type: ignore[arg-type]
        return "used"

    with vault.db.session() as session:
        row = session.get(Grant, grant.id)
        assert row is not None
        row.valid_until = clock.utcnow() + timedelta(seconds=1)  # expires while the race runs, or just after
    outcome = race(vault.db, step, n=9)
    assert not outcome.errors_of(IllegalGrantTransition, GrantNotLive)
    final = _grant(vault, owner)
    ended = events(vault, "grant.revoked", owner) + events(vault, "grant.expired", owner)
    assert ended <= 1 and (final.state == "active") == (ended == 0)
    assert final.uses == outcome.won.count("used")


def test_no_read_after_a_revocation_has_committed(vault: Vault, civil: AgencyClient, http: TestClient) -> None:
    owner = person_id(vault)
    token = consented_tokens(vault, civil, owner, REPEATED_ITEM)["access_token"]
    grant = _grant(vault, owner)
    committed_at: list[float] = []

    def act(i: int) -> tuple[str, float, float, bool]:
        import time

        if i == 0:
            with vault.db.session() as session:
                vault.consent.revoke(session, grant.id, actor="staff:x", owner_id=None, reason=None)
            committed_at.append(time.monotonic())
            return ("revoke", 0.0, time.monotonic(), False)
        started = time.monotonic()
        response = http.post(
            "/graphql",
            json={"query": READ, "variables": {"o": PERSONS[0].id_number}},
            headers={"Authorization": f"Bearer {token}"},
        )
        data = (response.json().get("data") or {}).get("licences") if response.status_code == 200 else None
        return ("read", started, time.monotonic(), bool(data))

    results = parallel(act, n=PARALLEL)
    revoked = committed_at[0]
    for kind, started, _, released in results:
        if kind == "read" and started > revoked:
            assert not released, "a read that began after the revocation committed released data"
    used = _grant(vault, owner).uses
    assert used == sum(1 for r in results if r[0] == "read" and r[3]) == events(vault, "fields.released", owner)
