"""Ending a representative link is claimed by one guarded UPDATE: of N parallel attempts exactly one wins."""

from __future__ import annotations

import json
from datetime import date

from sqlmodel import select

from tests import factories
from tests.concurrency.race import PARALLEL, race
from vault.audit.models import AuditEvent
from vault.owners.errors import LinkAlreadyEnded
from vault.owners.models import Representative, RepresentativeRole
from vault.wiring import Vault


def test_parallel_attempts_to_end_a_link_have_exactly_one_winner(vault: Vault) -> None:
    # protection removed to see this fail: the `ended_at IS NULL` guard and rowcount check in end_representative
    with vault.db.session() as session:
        company = factories.enterprise(vault, session)
        person = factories.person(vault, session)
        link = vault.owners.add_representative(
            session,
            enterprise_id=company.id,
            person_id=person.id,
            role=RepresentativeRole.AUTHORISED_AGENT,
            valid_from=date(2026, 1, 1),
            valid_until=None,
            actor="test",
        )
        link_id, company_id = link.id, company.id

    outcome = race(vault.db, lambda session, i: vault.owners.end_representative(session, link_id, actor=f"staff:{i}"))

    assert len(outcome.won) == 1, outcome.lost
    assert len(outcome.lost) == PARALLEL - 1 and not outcome.errors_of(LinkAlreadyEnded)
    with vault.db.session() as session:
        row = session.get(Representative, link_id)
        assert row is not None and row.ended_at is not None
        ended = [
            json.loads(e.entry)
            for e in session.scalars(select(AuditEvent).where(AuditEvent.action == "representative.ended"))
        ]
        assert len(ended) == 1 and ended[0]["owner"] == str(company_id)  # shown to the company, once
        assert not vault.owners.may_act_for(session, row.person_id, company_id, date(2026, 6, 1))
