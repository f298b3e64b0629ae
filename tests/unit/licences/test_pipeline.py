"""Bulk issuance prepared by worker processes and written here: the same guarantees as one transaction a batch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import col, select

from tests.unit.licences.test_bulk import add_person, counts, driving
from vault.audit.events import Action
from vault.audit.models import AuditEvent
from vault.crypto.keyring import Keyring
from vault.licences import pipeline as pipelines
from vault.licences.bulk import BulkIssuer, BulkRow, RowOutcome, RowStatus
from vault.licences.models import Licence, LicenceField, LicenceVersion, StatusEntry
from vault.licences.pipeline import Pipeline, WorkerSetup
from vault.owners.models import OwnerKind
from vault.wiring import Vault


@pytest.fixture
def pipeline(vault: Vault) -> Iterator[Pipeline]:
    settings = vault.settings
    setup = WorkerSetup(settings.database_url, settings.policies_dir, settings.public_url, vault.keyring.in_memory())
    with Pipeline(BulkIssuer(vault.licences), vault.db, setup, workers=1) as running:
        yield running


def issue(vault: Vault, pipeline: Pipeline, batches: list[list[BulkRow]]) -> list[RowOutcome]:
    issued = pipeline.issue(batches, unit_of_work=vault.db.session, actor="operator:test")
    return [outcome for outcomes in issued for outcome in outcomes]


def test_workers_hold_the_master_keys_in_memory_only(vault: Vault) -> None:
    copy = vault.keyring.in_memory()
    assert type(copy) is Keyring  # persists nothing, unlike the file keyring it copies
    assert copy.key_ids() == vault.keyring.key_ids()


def test_pipelined_licences_decrypt_verify_and_are_logged_like_any_other(vault: Vault, pipeline: Pipeline) -> None:
    owner = add_person(vault)
    batches = [[driving(owner) for n in range(4)] for b in range(3)]
    batches[1].append(driving(owner, name="别人"))  # not the holder on record
    outcomes = issue(vault, pipeline, batches)
    assert [o.status for o in outcomes] == [RowStatus.ISSUED] * 8 + [RowStatus.INVALID] + [RowStatus.ISSUED] * 4
    assert [p.field for p in outcomes[8].problems] == ["name"]
    issued = [o.licence_id for o in outcomes if o.licence_id is not None]
    with vault.db.session() as session:
        valid = [row for batch in batches for row in batch if dict(row.values)["name"] != "别人"]
        for licence_id, row in zip(issued, valid, strict=True):
            licence = vault.licences.get(session, licence_id)
            given = {k: v for k, v in row.values}
            assert vault.licences.values(session, licence, list(given)) == given
            presented = vault.licences.present(session, licence_id, ["name"], actor="test")
            assert vault.licences.verify(session, presented).ok
        versions = session.scalars(select(LicenceVersion).where(col(LicenceVersion.licence_id).in_(issued))).all()
        slots = session.execute(
            select(StatusEntry.idx, StatusEntry.version_id).where(col(StatusEntry.issuer_code) == "traffic-police")
        ).all()
        assert {(v.status_idx, v.id) for v in versions} <= {(i, v) for i, v in slots}
        assert len({v.status_idx for v in versions}) == 12
        logged = session.scalars(
            select(AuditEvent.entry).where(col(AuditEvent.action) == Action.LICENCE_ISSUED.value)
        ).all()
        assert sum(str(lid) in str(entry) for lid in issued for entry in logged) == 12
        field_ids = session.scalars(select(LicenceField.id).where(col(LicenceField.version_id) == versions[0].id)).all()
        assert len(set(field_ids)) == len(field_ids) > 1 and all(uuid.UUID(str(f)).version == 4 for f in field_ids)


def test_running_the_same_batches_again_issues_nothing_twice(vault: Vault, pipeline: Pipeline) -> None:
    owner = add_person(vault)
    batches = [[driving(owner) for n in range(3)] for b in range(2)]
    batches[1].append(batches[0][0])  # a row repeated in a later batch, prepared before the first was written
    first = issue(vault, pipeline, batches)
    assert [o.status for o in first] == [RowStatus.ISSUED] * 6 + [RowStatus.ALREADY_ISSUED]
    assert first[6].licence_id == first[0].licence_id
    before = counts(vault)
    again = issue(vault, pipeline, batches)
    assert {o.status for o in again} == {RowStatus.ALREADY_ISSUED}
    assert [o.licence_id for o in again] == [o.licence_id for o in first]
    assert counts(vault) == before


def test_a_batch_that_fails_while_written_leaves_nothing_and_the_ones_before_stay(
    vault: Vault, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = add_person(vault)
    before = counts(vault)
    append_stamped = vault.audit.append_stamped
    calls = []

    def fails_the_second_time(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # after the batch's licences, versions, fields and slots were inserted
            raise RuntimeError("the log is unavailable")
        return append_stamped(*args)

    monkeypatch.setattr(vault.audit, "append_stamped", fails_the_second_time)
    batches = [[driving(owner) for n in range(3)] for b in range(3)]
    with pytest.raises(RuntimeError, match="unavailable"):
        issue(vault, pipeline, batches)
    with vault.db.session() as session:
        fields_each = len(session.scalars(select(LicenceField.id).limit(100)).all()) // 3
    # the first batch whole (3 licences, versions, slots, events and their fields), nothing of the second
    after = counts(vault)
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 3, 3 * fields_each, 3, 3]


def test_a_slot_taken_by_another_writer_meanwhile_is_never_shared(
    vault: Vault, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = add_person(vault)
    (taken,) = issue(vault, pipeline, [[driving(owner)]])
    with vault.db.session() as session:
        taken_slot = session.scalars(
            select(LicenceVersion.status_idx).where(col(LicenceVersion.licence_id) == taken.licence_id)
        ).one()
    draw = BulkIssuer.draw_slots
    drawn: list[int] = []

    def stale_draw(self: BulkIssuer, session: Any, issuer: str, count: int, kept: Any = ()) -> list[int]:
        slots = draw(self, session, issuer, count, kept)
        if not drawn:  # as if another writer took this slot after it was drawn
            slots[0] = taken_slot
        drawn.extend(slots)
        return slots

    monkeypatch.setattr(BulkIssuer, "draw_slots", stale_draw)
    outcomes = issue(vault, pipeline, [[driving(owner) for n in range(3)]])
    assert [o.status for o in outcomes] == [RowStatus.ISSUED] * 3  # the batch lost the race, then was issued again
    with vault.db.session() as session:
        holders = session.execute(
            select(StatusEntry.idx, Licence.id)
            .join(LicenceVersion, col(LicenceVersion.id) == col(StatusEntry.version_id))
            .join(Licence, col(Licence.id) == col(LicenceVersion.licence_id))
            .where(col(StatusEntry.issuer_code) == "traffic-police")
        ).all()
    assert dict(holders)[taken_slot] == taken.licence_id
    assert len({idx for idx, _ in holders}) == len(holders) == 4


def test_an_owner_erased_while_the_batch_was_prepared_gets_nothing(
    vault: Vault, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, other = add_person(vault), add_person(vault, name="另一居民")
    with vault.db.session() as session:
        erasing = vault.owners.find(session, OwnerKind.PERSON, owner)
    assert erasing is not None
    write = Pipeline._write

    def erase_first(self: Pipeline, batch: Any, *args: Any) -> list[RowOutcome]:
        batch.prepared.result()  # the worker has checked the owner and sealed the rows under their key
        if not erased:
            with vault.db.session() as session:
                vault.owners.request_erasure(session, erasing.id, actor="test", now=True)
            erased.append(1)
        return write(self, batch, *args)

    erased: list[int] = []
    monkeypatch.setattr(Pipeline, "_write", erase_first)
    outcomes = issue(vault, pipeline, [[driving(owner), driving(other, name="另一居民")]])
    assert erased
    assert [o.status for o in outcomes] == [RowStatus.INVALID, RowStatus.ISSUED]
    assert [p.field for p in outcomes[0].problems] == ["owner"]
    with vault.db.session() as session:
        assert session.scalars(select(Licence).where(col(Licence.owner_id) == erasing.id)).all() == []


def test_the_writer_checkpoints_when_the_wal_passes_its_size_and_at_the_end(
    vault: Vault, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not vault.db.is_sqlite:
        pytest.skip("SQLite's WAL")
    owner = add_person(vault)
    seen: list[int] = []
    checkpoint = vault.db.checkpoint_wal

    def counted() -> None:
        seen.append(vault.db.wal_bytes())
        checkpoint()

    monkeypatch.setattr(vault.db, "checkpoint_wal", counted)
    monkeypatch.setattr(pipelines, "CHECKPOINT_WAL_BYTES", 1)
    issue(vault, pipeline, [[driving(owner)] for _ in range(3)])
    assert len(seen) == 3 and all(seen)  # after the two batches written while the next was prepared, and at the end
    assert vault.db.wal_bytes() == 0
