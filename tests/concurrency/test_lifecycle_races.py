"""Licences, erasure and maintenance leadership under parallel attempts."""

from __future__ import annotations

import uuid
from datetime import timedelta

from tests import factories
from tests.concurrency.conftest import events, person_id
from tests.concurrency.race import PARALLEL, race
from vault import clock
from vault.audit.events import Action, Event
from vault.licences.errors import IllegalTransition
from vault.licences.lifecycle import Step
from vault.licences.models import Licence
from vault.licences.status_list import INVALID
from vault.maintenance import leadership_for
from vault.owners.models import Owner
from vault.wiring import Vault

ISSUER = "traffic-police"


def _licence(vault: Vault) -> uuid.UUID:
    with vault.db.session() as session:
        owner = session.get(Owner, person_id(vault))
        assert owner is not None
        return factories.driving_licence(vault, session, owner).id


def test_parallel_revocations_of_a_licence_revoke_it_once(vault: Vault) -> None:
    licence_id = _licence(vault)
    outcome = race(
        vault.db,
        lambda session, i: vault.licences.change(session, licence_id, Step.REVOKE, issuer_code=ISSUER),
    )
    assert len(outcome.won) == 1 and not outcome.errors_of(IllegalTransition)
    assert events(vault, "licence.revoked") == 1


def test_suspend_racing_revoke_never_resurrects_a_revoked_licence(vault: Vault) -> None:
    licence_id = _licence(vault)

    def step(session: object, i: int) -> str:
        which = Step.REVOKE if i % 2 else Step.SUSPEND
        vault.licences.change(session, licence_id, which, issuer_code=ISSUER)  # type: ignore[arg-type]
        return which.value

    outcome = race(vault.db, step)
    assert not outcome.errors_of(IllegalTransition)
    assert outcome.won.count("revoke") == 1 and outcome.won.count("suspend") <= 1
    with vault.db.session() as session:
        licence = session.get(Licence, licence_id)
        assert licence is not None and licence.state == "revoked"
        version = vault.licences.current_version(session, licence)
        assert vault.status_lists.status(session, licence.issuer_code, version.status_idx) == INVALID
    assert events(vault, "licence.revoked") == 1
    assert events(vault, "licence.suspended") == outcome.won.count("suspend")


def test_parallel_renewals_never_share_a_version(vault: Vault) -> None:
    licence_id = _licence(vault)
    outcome = race(
        vault.db,
        lambda session, i: vault.licences.renew(
            session, licence_id, issuer_code=ISSUER, changes={"address": f"新地址{i}号"}
        ),
    )
    # each renewal that wins supersedes the version it read; one that read a superseded version loses cleanly
    assert outcome.won and not outcome.errors_of(IllegalTransition)
    with vault.db.session() as session:
        licence = session.get(Licence, licence_id)
        assert licence is not None and licence.current_version == 1 + len(outcome.won)
    assert events(vault, "licence.renewed") == len(outcome.won)


def test_parallel_erasures_of_one_owner_erase_it_once(vault: Vault) -> None:
    owner = person_id(vault)
    with vault.db.session() as session:
        row = session.get(Owner, owner)
        assert row is not None
        row.erase_after = clock.utcnow() - timedelta(seconds=1)
    outcome = race(vault.db, lambda session, i: vault.owners.erase_if_due(session, owner))
    assert sorted(outcome.won) == [False] * (PARALLEL - 1) + [True], outcome.lost
    assert events(vault, "owner.erased", owner) == 1


def test_one_maintenance_leader_at_a_time(vault: Vault) -> None:
    leaders = [leadership_for(vault) for _ in range(4)]
    try:
        held = [leader.try_acquire() for leader in leaders]
        assert held.count(True) == 1
        winner = held.index(True)
        leaders[winner].release()
        assert [leader.try_acquire() for i, leader in enumerate(leaders) if i != winner].count(True) == 1
    finally:
        for leader in leaders:
            leader.release()


def test_parallel_sequencer_steps_integrate_each_event_once_and_sign_once(vault: Vault) -> None:
    with vault.db.session() as session:
        for n in range(5):  # something new to integrate and sign
            vault.audit.append(session, Event(Action.KEYS_ROTATED, f"operator:test-{n}"))
    outcome = race(vault.db, lambda session, i: vault.audit.sequence(session))
    assert not outcome.lost, outcome.lost
    integrated = [count for count, _ in outcome.won if count]
    signed = [checkpoint for _, checkpoint in outcome.won if checkpoint is not None]
    assert len(integrated) == 1 and integrated[0] >= 5 and len(signed) == 1
    with vault.db.session() as session:
        assert vault.audit.pending(session) == 0
