"""The read ledger's flush, on its own: what a write records, and that writing it again records the same."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from tests.unit.api.support import demo_person
from vault.api.reads import Authority, MandateRead, ReadLedger
from vault.audit.models import AuditEvent
from vault.mandates.services import MandateClaim, MandateService
from vault.policy.catalogue import RateLimits
from vault.policy.engine import MandateInfo
from vault.wiring import Vault

MANDATE = "traffic-accident-handling"
CLIENT = "traffic-police"
NOW = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    return demo_vault


def test_a_write_run_again_after_a_rolled_back_attempt_is_counted_afresh(vault: Vault) -> None:
    """A group commit runs a rolled-back batch's writes again alone. An attempt that found the limit spent (inside
    the batch, counted with the batch's other reads) must not leave its refusal behind: if the read is counted
    when written again, it releases its data and its event says so."""
    owner = demo_person(vault)
    mandate = dataclasses.replace(
        vault.policy.catalogue.mandate(MANDATE), rate_limits=RateLimits(per_case=1, per_client=100, window_hours=1)
    )
    claim = MandateClaim(MANDATE, "case-1", frozenset(), "012345")
    authority = Authority(mandate=MandateInfo(mandate_id=MANDATE, case_reference="case-1"), claim=claim)
    ledger = ReadLedger(mandate_read=MandateRead(mandate, claim, owner, ("name",), NOW))
    ledger.released(owner, ["name"])
    ledger.owner(owner).licences.add(uuid.uuid4())
    flush = dict(client_id=CLIENT, authority=authority, request_id="r-1")
    ledger.stamp(**flush)  # type: ignore[arg-type]

    session = vault.db.session().__enter__()
    try:  # the batch's attempt: another read of the batch took the case's one read before this one
        MandateService(vault.keys, vault.audit, vault.policy.catalogue).count_read(session, mandate, claim, CLIENT, NOW)
        ledger.flush(session, vault, **flush)  # type: ignore[arg-type]
        assert ledger.limited is not None
    finally:
        session.rollback()
        session.close()

    with vault.db.session() as session:  # written again alone: the batch was rolled back, the case's read is free
        ledger.flush(session, vault, **flush)  # type: ignore[arg-type]
    with vault.db.session() as session:
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.owner_id == owner)).all()
    assert "fields.released" in actions, actions
    assert ledger.limited is None
