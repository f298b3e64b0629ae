"""A mandate's read limits hold across workers: N reads counted at once at a limit of k, exactly k are counted."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session
from sqlmodel import col, func, select
from starlette.testclient import TestClient

from tests.concurrency.race import PARALLEL, parallel, race
from tests.oauth_helpers import BASE
from tests.unit.api.support import gql, identifier, police_token
from vault.audit.models import AuditEvent
from vault.group_commit import GroupCommit
from vault.mandates.errors import RateLimited
from vault.mandates.models import MandateCounter
from vault.mandates.services import MandateClaim, MandateService
from vault.policy.catalogue import Mandate, RateLimits
from vault.web.app import create_app
from vault.wiring import Vault

MANDATE = "traffic-accident-handling"
POLICE = "police-criminal-investigation"
READ = 'query($o: String!) { licences(owner: $o, types: ["resident-id-card"]) { fields(names: ["name"]) { value } } }'
NOW = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)


def _mandate(vault: Vault, per_case: int, per_client: int) -> Mandate:
    mandate = vault.policy.catalogue.mandate(MANDATE)
    limits = RateLimits(per_case=per_case, per_client=per_client, window_hours=1)
    return dataclasses.replace(mandate, rate_limits=limits)


def _counts(vault: Vault) -> dict[str, int]:
    with vault.db.session() as session:
        return {row.key.split(":")[0]: row.count for row in session.scalars(select(MandateCounter))}


def _count(vault: Vault, mandate: Mandate, case: str) -> Callable[[Session, int], None]:
    """One read counted against the mandate's limits for `case`, as each racing request would."""
    service = MandateService(vault.keys, vault.audit, vault.policy.catalogue)
    claim = MandateClaim(MANDATE, case, frozenset(), "012345")
    return lambda session, i: service.count_read(session, mandate, claim, "traffic-police", NOW)


def test_a_case_limit_admits_exactly_that_many_reads_at_once(vault: Vault) -> None:
    mandate = _mandate(vault, per_case=3, per_client=100)
    outcome = race(vault.db, _count(vault, mandate, "case-1"))
    assert len(outcome.won) == 3 and len(outcome.lost) == PARALLEL - 3
    assert not outcome.errors_of(RateLimited)
    assert all(isinstance(error, RateLimited) and error.scope == "case" for error in outcome.lost)
    # a read refused for its case is not counted against the client either
    assert _counts(vault) == {"client": 3, "case": 3}


def test_a_client_limit_of_one_admits_one_read_at_once(vault: Vault) -> None:
    mandate = _mandate(vault, per_case=100, per_client=1)
    outcome = race(vault.db, _count(vault, mandate, "case-2"))
    assert len(outcome.won) == 1 and not outcome.errors_of(RateLimited)
    assert _counts(vault) == {"client": 1, "case": 1}


def test_a_limit_of_zero_admits_no_read(vault: Vault) -> None:
    mandate = _mandate(vault, per_case=0, per_client=5)
    outcome = race(vault.db, _count(vault, mandate, "case-3"), n=2)
    assert not outcome.won and not outcome.errors_of(RateLimited)
    assert not any(_counts(vault).values())


def test_reads_at_once_over_a_case_limit_release_data_exactly_up_to_it(vault: Vault) -> None:
    """Reads whose counts are committed together (group commit) still stop at the limit: a batch whose total would
    pass it is written again read by read, and the reads over it are refused and recorded."""
    limit = vault.policy.catalogue.mandate(POLICE).rate_limits.per_case
    with TestClient(create_app(vault=vault), base_url=BASE) as http:
        token = police_token(http, case="XS-2026-000777")

        def read(i: int) -> int:
            return gql(http, token, READ, {"o": identifier("a")}).status_code

        statuses = parallel(read, n=limit + 6)
    assert sorted(statuses) == [200] * limit + [429] * 6
    with vault.db.session() as session:
        released = session.scalar(select(func.count()).where(col(AuditEvent.action) == "fields.released"))
        denied = session.scalar(select(func.count()).where(col(AuditEvent.action) == "fields.denied"))
    assert (released, denied) == (limit, 6)
    assert _counts(vault)["case"] == limit


def test_a_read_counted_alone_and_a_batch_take_the_counters_in_one_order(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """count_read (a read run alone) and count_reads (a batch's end) lock the client's and the case's rows in the
    same order: two workers doing one each at the same moment both succeed, where opposite orders deadlock."""
    mandate = _mandate(vault, per_case=100, per_client=100)
    service = MandateService(vault.keys, vault.audit, vault.policy.catalogue)
    claim = MandateClaim(MANDATE, "case-9", frozenset(), "012345")
    with vault.db.session() as session:  # both rows exist: each upsert then waits on the other's row lock
        service.count_read(session, mandate, claim, "traffic-police", NOW)
    took: dict[str, list[str]] = {"alone": [], "batch": []}
    asking = {"alone": threading.Event(), "batch": threading.Event()}
    real, real_all = MandateService._take, MandateService._take_all

    def take(session: Session, key: str, start: datetime, limit: int, count: int = 1) -> bool:
        took["alone"].append(key.split(":")[0])
        result = real(session, key, start, limit, count)
        if len(took["alone"]) == 1:  # the first row held: the batch asks for both rows before this asks its second
            asking["alone"].set()
            asking["batch"].wait(10)
            time.sleep(0.2)
        return result

    def take_all(session: Session, takes: list[tuple[str, datetime, int, int]]) -> set[tuple[str, datetime]]:
        asking["alone"].wait(10)
        took["batch"] += [key.split(":")[0] for key, *_ in takes]  # one statement takes the rows in this order
        asking["batch"].set()
        return real_all(session, takes)

    monkeypatch.setattr(MandateService, "_take", staticmethod(take))
    monkeypatch.setattr(MandateService, "_take_all", staticmethod(take_all))
    errors: dict[str, BaseException | None] = {}

    def run(who: str, count: Callable[[Session], None]) -> None:
        try:
            with vault.db.session() as session:
                count(session)
            errors[who] = None
        except BaseException as error:  # the outcome under test
            errors[who] = error

    threads = [
        threading.Thread(
            target=run,
            name="alone",
            args=("alone", lambda s: service.count_read(s, mandate, claim, "traffic-police", NOW)),
        ),
        threading.Thread(
            target=run,
            name="batch",
            args=("batch", lambda s: service.count_reads(s, [(mandate, claim, "traffic-police", NOW)])),
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert took["alone"] == took["batch"] == ["case", "client"]
    assert errors == {"alone": None, "batch": None}
    assert _counts(vault) == {"client": 3, "case": 3}


def test_reads_of_a_spent_case_do_not_make_other_reads_batches_run_write_by_write(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = vault.policy.catalogue.mandate(POLICE).rate_limits.per_case
    with TestClient(create_app(vault=vault), base_url=BASE) as http:
        spent, fresh = police_token(http, case="XS-2026-000801"), police_token(http, case="XS-2026-000802")
        for _ in range(limit):
            assert gql(http, spent, READ, {"o": identifier("a")}).status_code == 200
        assert gql(http, spent, READ, {"o": identifier("a")}).status_code == 429  # this worker learns it is spent
        alone: list[int] = []
        real = GroupCommit._alone

        def counted_alone(self: GroupCommit, write: Any) -> None:
            alone.append(1)
            real(self, write)

        monkeypatch.setattr(GroupCommit, "_alone", counted_alone)

        def read(i: int) -> int:
            return gql(http, spent if i % 2 else fresh, READ, {"o": identifier("a")}).status_code

        statuses = parallel(read, n=16)
    assert sorted(statuses) == [200] * 8 + [429] * 8
    assert not alone, f"{len(alone)} writes were run alone"
