"""An activation code is single use, claimed by one guarded UPDATE: of N parallel redemptions exactly one wins."""

from __future__ import annotations

from sqlalchemy.orm import Session
from sqlmodel import select

from tests import factories
from tests.concurrency.race import PARALLEL, race
from vault.owners.accounts import AccountService, Enrolments, hash_password
from vault.owners.errors import ActivationFailed
from vault.owners.models import Account
from vault.wiring import Vault


def test_parallel_redemptions_of_one_code_have_exactly_one_winner(vault: Vault) -> None:
    # protection removed to see this fail: the `used_at IS NULL` guard and rowcount check in Enrolments.redeem
    enrolments = Enrolments(vault.keys, vault.audit)
    with vault.db.session() as session:
        person = factories.person(vault, session)
        login = vault.owners.details(session, person).identifier
        issued = enrolments.issue(session, person.id, actor="operator:cli")

    hashes = [hash_password(f"password number {i}") for i in range(PARALLEL)]

    def attempt(session: Session, i: int) -> Account:
        return enrolments.redeem(session, login=login, code=issued.code, password_hash=hashes[i])

    outcome = race(vault.db, attempt)

    assert len(outcome.won) == 1, outcome.lost
    assert len(outcome.lost) == PARALLEL - 1 and not outcome.errors_of(ActivationFailed)
    winner = outcome.won[0]
    with vault.db.session() as session:
        assert len(session.scalars(select(Account).where(Account.owner_id == person.id)).all()) == 1
        accounts = AccountService(vault.keys)
        signed_in = [i for i in range(PARALLEL) if accounts.authenticate(session, login, f"password number {i}")]
        assert len(signed_in) == 1 and winner.id is not None
