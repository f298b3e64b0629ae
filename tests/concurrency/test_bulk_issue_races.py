"""Bulk issuances of the same rows at once: each number is issued exactly once, to one licence, with one event."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select

from tests import factories
from tests.concurrency.race import PARALLEL, race
from vault.audit.models import AuditEvent
from vault.demo import PERSONS
from vault.licences.bulk import BulkIssuer, BulkRow, RowStatus
from vault.licences.models import Licence, StatusEntry
from vault.wiring import Vault


def test_racing_batches_of_the_same_rows_issue_each_number_once(vault: Vault) -> None:
    person = PERSONS[1]
    rows = [
        BulkRow(
            person.id_number,
            "driving-licence",
            [(k, str(v)) for k, v in factories.driving_licence_values(name=person.name).items()],
        )
        for _ in range(5)
    ]
    issuer = BulkIssuer(vault.licences)
    with vault.db.session() as session:
        before = (
            int(session.scalar(select(func.count()).select_from(Licence)) or 0),
            int(session.scalar(select(func.count()).where(AuditEvent.action == "licence.issued")) or 0),
        )

    outcome = race(vault.db, lambda session, i: issuer.issue_batch(session, rows, issuer_code="traffic-police"))
    assert not outcome.errors_of(IntegrityError)  # a loser fails on the number's uniqueness, writing nothing
    issued = [o for batch in outcome.won for o in batch if o.status is RowStatus.ISSUED]
    assert len(issued) == len(rows)  # every number once, whoever won it
    assert all(o.status is not RowStatus.INVALID for batch in outcome.won for o in batch)
    assert len(outcome.won) + len(outcome.lost) == PARALLEL

    with vault.db.session() as session:
        after = (
            int(session.scalar(select(func.count()).select_from(Licence)) or 0),
            int(session.scalar(select(func.count()).where(AuditEvent.action == "licence.issued")) or 0),
        )
        slots = session.scalar(select(func.count()).select_from(StatusEntry))
        licences = session.scalar(select(func.count()).select_from(Licence))
    assert after[0] - before[0] == len(rows) and after[1] - before[1] == len(rows)
    assert slots == licences  # no slot without its licence
