"""The read path's guarantees under concurrent load, over HTTP: many reads in flight at once, each held a moment
between gathering its data (read-only) and committing its access event and use (the write), so that revocations,
the last use of a "once" grant and failures of the access log land while reads are half-way through.

- No read releases data after its grant's revocation has committed: every read that returned values committed
  its use before the revocation did (the revocation sees them all and no use is counted after it).
- No read releases data without its committed access event: each such request's `fields.released` event, found by
  its request id, is in the database; a request whose event could not be written returned nothing.
- A "once" grant read by many readers at once returns data exactly once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

import vault.api.app as graphql_app
from tests.concurrency.conftest import ONCE_ITEM, REPEATED_ITEM, events, person_id
from tests.oauth_helpers import AgencyClient, consented_tokens
from vault.audit.models import AuditEvent
from vault.consent.models import Grant
from vault.demo import PERSONS
from vault.oauth.models import Token
from vault.wiring import Vault

READ = """query($o: String!) { licences(owner: $o, types: ["resident-id-card"]) { fields { name value } } }"""
READERS = 12
HELD_SECONDS = 0.02  # between a read's data and its write: long enough for others to overtake it


@dataclass
class Reads:
    """What each request answered, by its request id (True: it returned field values)."""

    answered: dict[str, bool] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def released(self) -> list[str]:
        return [request_id for request_id, values in self.answered.items() if values]


def _values(result: Any) -> bool:
    licences = (result.data or {}).get("licences") or []
    return any(f.get("value") is not None for licence in licences for f in licence.get("fields") or [])


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    """Record every GraphQL request's outcome by request id, and hold each query between its read and its write."""
    seen = Reads()
    execute, run = graphql_app.execute, graphql_app._run

    def recorded(view: Any, request: Any, data: Any) -> Any:
        outcome = execute(view, request, data)
        with seen.lock:
            seen.answered[request.request_id] = outcome.status is None and _values(outcome.result)
            seen.statuses.append(outcome.status or 200)
        return outcome

    def held(*args: Any) -> Any:
        result = run(*args)
        time.sleep(HELD_SECONDS)
        return result

    monkeypatch.setattr(graphql_app, "execute", recorded)
    monkeypatch.setattr(graphql_app, "_run", held)
    return seen


def _grant(vault: Vault, owner: uuid.UUID) -> Grant:
    with vault.db.session() as session:
        return session.scalars(select(Grant).where(Grant.owner_id == owner)).one()


def _committed_request_ids(vault: Vault, action: str, owner: uuid.UUID) -> set[str]:
    """Request ids named by the committed events of `action` about `owner` (each entry is canonical JSON)."""
    import json

    with vault.db.session() as session:
        entries = session.scalars(
            select(AuditEvent.entry).where(AuditEvent.action == action, AuditEvent.owner_id == owner)
        ).all()
    return {str(json.loads(entry).get("request_id")) for entry in entries}


def _read_loop(http: TestClient, token: str, until: Callable[[], bool]) -> None:
    while not until():
        http.post(
            "/graphql",
            json={"query": READ, "variables": {"o": PERSONS[0].id_number}},
            headers={"Authorization": f"Bearer {token}"},
        )


def _together(work: list[Callable[[], None]]) -> None:
    barrier = threading.Barrier(len(work), timeout=60)
    failures: list[BaseException] = []

    def run(call: Callable[[], None]) -> None:
        barrier.wait()
        try:
            call()
        except BaseException as error:  # re-raised below, in the test's thread
            failures.append(error)

    threads = [threading.Thread(target=run, args=(call,)) for call in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a reader hung"
    assert not failures, failures


def test_no_read_releases_data_after_the_revocation_committed(
    vault: Vault, civil: AgencyClient, http: TestClient, reads: Reads
) -> None:
    owner = person_id(vault)
    token = consented_tokens(vault, civil, owner, REPEATED_ITEM)["access_token"]
    grant = _grant(vault, owner)
    revoked = threading.Event()
    uses_at_revocation: list[int] = []

    def revoke() -> None:
        deadline = time.monotonic() + 30
        while len(reads.released) < 3 and time.monotonic() < deadline:  # the readers are in full flow
            time.sleep(0.01)
        try:  # a revocation that fails (a deadlock with the readers, say) fails the test instead of hanging it
            with vault.db.session() as session:
                vault.consent.revoke(session, grant.id, actor="staff:x", owner_id=None, reason=None)
                # the revocation holds the grant's row now: what it sees is every use committed before it
                uses_at_revocation.append(session.get(Grant, grant.id, populate_existing=True).uses)  # type: ignore[union-attr]
        finally:
            revoked.set()

    after: list[float] = []

    def stop() -> bool:
        if revoked.is_set() and not after:
            after.append(time.monotonic())
        return bool(after) and time.monotonic() - after[0] > 0.3

    _together([revoke, *(lambda: _read_loop(http, token, stop) for _ in range(READERS))])

    released = reads.released
    assert released, "no read released anything before the revocation: the test proves nothing"
    assert any(status == 401 for status in reads.statuses), "no read was refused after the revocation"
    # every read that returned values counted its use before the revocation committed, and none after it
    final = _grant(vault, owner)
    assert final.state == "revoked"
    assert len(released) == uses_at_revocation[0] == final.uses
    # ... and each has its own committed access event
    committed = _committed_request_ids(vault, "fields.released", owner)
    assert set(released) <= committed
    assert events(vault, "fields.released", owner) == len(released)


def test_no_read_releases_data_without_its_committed_access_event(
    vault: Vault, civil: AgencyClient, http: TestClient, reads: Reads, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = person_id(vault)
    token = consented_tokens(vault, civil, owner, REPEATED_ITEM)["access_token"]
    append_each, calls, failed, batches = vault.audit.append_each, [0], [0], [0]
    guard = threading.Lock()

    def flaky(session: Any, events: Any) -> Any:
        """A batch of several reads' events, inserted together, fails every other time (its reads are then each
        written again alone); one read's event, inserted alone, fails every third time."""
        with guard:
            if len(events) > 1:
                batches[0] += 1
                fail = batches[0] % 2 == 1
            elif events and events[0][0].action.value == "fields.released":
                calls[0] += 1
                fail = calls[0] % 3 == 0
                failed[0] += fail
            else:
                fail = False
        if fail:
            raise OSError("the access log's storage failed")
        return append_each(session, events)

    monkeypatch.setattr(vault.audit, "append_each", flaky)
    deadline = time.monotonic() + 1.5
    _together([lambda: _read_loop(http, token, lambda: time.monotonic() > deadline) for _ in range(READERS)])

    released = reads.released
    assert released and failed[0], "the test needs reads that succeed and event writes that fail"
    committed = _committed_request_ids(vault, "fields.released", owner)
    assert set(released) <= committed, "a read returned values without its committed access event"
    assert len(committed) == len(released) == _grant(vault, owner).uses
    assert reads.statuses.count(500) == failed[0]


def test_a_once_grant_read_by_many_at_once_returns_data_exactly_once(
    vault: Vault, agency: AgencyClient, http: TestClient, reads: Reads
) -> None:
    owner = person_id(vault)
    token = consented_tokens(vault, agency, owner, ONCE_ITEM)["access_token"]

    def one() -> None:
        http.post(
            "/graphql",
            json={"query": READ, "variables": {"o": PERSONS[0].id_number}},
            headers={"Authorization": f"Bearer {token}"},
        )

    _together([one] * READERS)

    assert len(reads.answered) == READERS
    released = reads.released
    assert len(released) == 1, reads.answered
    assert _committed_request_ids(vault, "fields.released", owner) == set(released)
    final = _grant(vault, owner)
    assert final.uses == 1 and final.state == "exhausted"


def _read(http: TestClient, token: str) -> tuple[int, bool]:
    response = http.post(
        "/graphql",
        json={"query": READ, "variables": {"o": PERSONS[0].id_number}},
        headers={"Authorization": f"Bearer {token}"},
    )
    licences = ((response.json().get("data") or {}).get("licences")) or []
    return response.status_code, any(f.get("value") for lic in licences for f in lic.get("fields") or [])


@pytest.mark.parametrize("ending", ["token revoked", "grant revoked", "agency suspended"])
def test_an_ending_committed_by_one_worker_is_honoured_by_the_next_request_in_another(
    vault: Vault, civil: AgencyClient, http: TestClient, ending: str
) -> None:
    """Two workers (two apps, each its own vault: caches, pools) on one database; both have read with the token,
    so whatever either remembers is warm. One ends the token, grant or agency; the other's next read gets nothing."""
    from vault.web.app import create_app
    from vault.wiring import build_vault

    owner = person_id(vault)
    token = consented_tokens(vault, civil, owner, REPEATED_ITEM)["access_token"]
    other = build_vault(vault.settings)
    try:
        with TestClient(create_app(vault=other), base_url=str(http.base_url)) as second:
            assert _read(http, token) == (200, True) and _read(second, token) == (200, True)
            released = events(vault, "fields.released", owner)
            with vault.db.session() as session:
                if ending == "token revoked":
                    from vault.oauth.tokens import digest

                    row = session.scalars(select(Token).where(Token.access_hash == digest(token))).one()
                    assert vault.tokens.revoke_row(session, row) == 1
                elif ending == "grant revoked":
                    grant = _grant(vault, owner)
                    vault.consent.revoke(session, grant.id, actor="staff:x", owner_id=None, reason=None)
                else:
                    vault.agencies.suspend(session, civil.client_id, actor="staff:x", reason="audit")
            assert _read(second, token) == (401, False)
            assert _read(http, token) == (401, False)
            assert events(vault, "fields.released", owner) == released
    finally:
        other.close()


def test_a_read_and_a_revocation_at_the_same_moment_do_not_deadlock(
    vault: Vault, civil: AgencyClient, http: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read has checked its token (a shared lock on the token's row) when a revocation starts (it locks the
    grant, then wants the tokens). Were the read to lock the grant only now, to count its use, each would wait for
    the other and PostgreSQL would fail one of them. The read locks the grant first, so the revocation waits."""
    owner = person_id(vault)
    token = consented_tokens(vault, civil, owner, REPEATED_ITEM)["access_token"]
    grant = _grant(vault, owner)
    checked, revoking = threading.Event(), threading.Event()
    require_unrevoked = vault.tokens.require_unrevoked

    def then_wait(session: Any, token_id: Any) -> None:
        require_unrevoked(session, token_id)
        checked.set()
        assert revoking.wait(30)
        time.sleep(0.5)  # the revocation is under way: it holds, or waits for, the grant's row

    require_all_live = vault.tokens.require_all_live

    def then_wait_all(session: Any, token_ids: Any) -> None:  # the check, made at the end of a group commit's batch
        require_all_live(session, token_ids)
        checked.set()
        assert revoking.wait(30)
        time.sleep(0.5)

    monkeypatch.setattr(vault.tokens, "require_unrevoked", then_wait)
    monkeypatch.setattr(vault.tokens, "require_all_live", then_wait_all)
    outcome: dict[str, Any] = {}

    def revoke() -> None:
        assert checked.wait(30)
        revoking.set()
        try:
            with vault.db.session() as session:
                vault.consent.revoke(session, grant.id, actor="staff:x", owner_id=None, reason=None)
            outcome["revoked"] = True
        except Exception as error:  # the outcome under test
            outcome["revoked"] = error

    revoker = threading.Thread(target=revoke)
    revoker.start()
    read = _read(http, token)
    revoker.join(60)
    assert outcome.get("revoked") is True, outcome
    assert read == (200, True)  # it committed first, with its use; the revocation came after it
    final = _grant(vault, owner)
    assert final.state == "revoked" and final.uses == 1 == events(vault, "fields.released", owner)


def test_no_read_releases_data_after_its_agency_s_suspension_committed(
    vault: Vault, civil: AgencyClient, http: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read has checked its token and its agency (alone, or at the end of its batch) when the agency is
    suspended. Either the suspension waits for the read's commit (the read then happened before it), or the read
    releases nothing: never data answered after the suspension committed."""
    owner = person_id(vault)
    token = consented_tokens(vault, civil, owner, REPEATED_ITEM)["access_token"]
    committed_meanwhile: list[bool] = []
    suspender: list[threading.Thread] = []

    def suspend() -> None:
        with vault.db.session() as session:
            vault.agencies.suspend(session, civil.client_id, actor="staff:x", reason="audit")

    def then_suspend() -> None:
        if suspender:  # once: a retry of the write checks again and sees whatever the suspension left
            return
        suspender.append(threading.Thread(target=suspend))
        suspender[0].start()
        suspender[0].join(1.0)  # PostgreSQL: done at once unless the read's lock holds it back
        committed_meanwhile.append(not suspender[0].is_alive())

    require_unrevoked, require_all_live = vault.tokens.require_unrevoked, vault.tokens.require_all_live

    def one(session: Any, token_id: Any) -> None:
        require_unrevoked(session, token_id)
        then_suspend()

    def all_of(session: Any, token_ids: Any) -> None:
        require_all_live(session, token_ids)
        then_suspend()

    monkeypatch.setattr(vault.tokens, "require_unrevoked", one)
    monkeypatch.setattr(vault.tokens, "require_all_live", all_of)
    _, released = _read(http, token)
    suspender[0].join(30)
    assert not suspender[0].is_alive()
    assert committed_meanwhile, "the read checked nothing: the test proves nothing"
    assert not (released and committed_meanwhile[0]), "data answered after the agency's suspension committed"
    assert _read(http, token) == (401, False)
