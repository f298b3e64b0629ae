"""Owners stored encrypted, found by blind index, linked to enterprises, erased by key destruction."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from vault.audit.models import AuditEvent
from vault.crypto.errors import KeyDestroyed
from vault.owners.accounts import AccountService
from vault.owners.errors import DuplicateOwner, InvalidIdentifier, OwnerNotFound, RepresentativeError
from vault.owners.models import Account, AccountRole, BlindIndex, Owner, OwnerKind, RepresentativeRole
from vault.wiring import Vault

PERSON_ID = "11010519491231002X"
CREDIT_CODE = "91350100M000100Y43"


def test_person_is_stored_encrypted_and_found_by_identifier(vault: Vault) -> None:
    with vault.db.session() as session:
        owner = vault.owners.add_person(session, id_number=PERSON_ID.lower(), name="演示居民", actor="test")
    with vault.db.session() as session:
        stored = session.get(Owner, owner.id)
        assert stored is not None and stored.name_ct is not None
        assert "演示居民".encode() not in stored.name_ct and PERSON_ID.encode() not in (stored.identifier_ct or b"")
        found = vault.owners.find(session, OwnerKind.PERSON, " " + PERSON_ID + " ")
        assert found is not None and found.id == owner.id
        details = vault.owners.details(session, found)
        assert (details.name, details.identifier) == ("演示居民", PERSON_ID)
        assert vault.owners.summaries(session)[0].masked_identifier == "110***********002X"


def test_duplicate_identifier_is_refused_without_echoing_it(vault: Vault) -> None:
    with vault.db.session() as session:
        vault.owners.add_person(session, id_number=PERSON_ID, name="甲", actor="test")
    with pytest.raises(DuplicateOwner) as caught, vault.db.session() as session:
        vault.owners.add_person(session, id_number=PERSON_ID, name="乙", actor="test")
    assert PERSON_ID not in str(caught.value)
    with vault.db.session() as session:
        assert len(vault.owners.summaries(session)) == 1


def test_invalid_identifier_names_the_rule_and_stores_nothing(vault: Vault) -> None:
    with pytest.raises(InvalidIdentifier) as caught, vault.db.session() as session:
        vault.owners.add_person(session, id_number="110105194912310021", name="甲", actor="test")
    assert caught.value.rule == "check_character"
    with vault.db.session() as session:
        assert vault.owners.summaries(session) == []
        assert vault.audit.size(session) == 0


def test_representatives_and_their_dates(vault: Vault) -> None:
    with vault.db.session() as session:
        person = vault.owners.add_person(session, id_number=PERSON_ID, name="甲", actor="test")
        company = vault.owners.add_enterprise(session, credit_code=CREDIT_CODE, name="演示公司", actor="test")
        vault.owners.add_representative(
            session,
            enterprise_id=company.id,
            person_id=person.id,
            role=RepresentativeRole.AUTHORISED_AGENT,
            valid_from=date(2025, 1, 1),
            valid_until=date(2025, 12, 31),
            actor="test",
        )
        assert vault.owners.may_act_for(session, person.id, company.id, date(2025, 6, 1))
        assert not vault.owners.may_act_for(session, person.id, company.id, date(2026, 1, 1))
        with pytest.raises(RepresentativeError):
            vault.owners.add_representative(
                session,
                enterprise_id=person.id,
                person_id=company.id,
                role=RepresentativeRole.LEGAL_REPRESENTATIVE,
                valid_from=date(2025, 1, 1),
                valid_until=None,
                actor="test",
            )


def test_erasure_destroys_only_that_owners_key(vault: Vault) -> None:
    with vault.db.session() as session:
        gone = vault.owners.add_person(session, id_number=PERSON_ID, name="甲", actor="test")
        kept = vault.owners.add_enterprise(session, credit_code=CREDIT_CODE, name="演示公司", actor="test")
        AccountService(vault.keys).create(
            session, login=PERSON_ID, password="long enough", role=AccountRole.CITIZEN, owner_id=gone.id
        )
    with vault.db.session() as session:
        first = vault.owners.request_erasure(session, gone.id, actor="test").erase_after
        assert vault.owners.request_erasure(session, gone.id, actor="test").erase_after == first  # no restart
        assert vault.owners.details(session, vault.owners.get(session, gone.id)).name == "甲"  # grace period
        assert vault.owners.erase_due(session) == 0
    with vault.db.session() as session:
        vault.owners.request_erasure(session, gone.id, actor="test", now=True)
    with vault.db.session() as session:
        with pytest.raises(KeyDestroyed):
            vault.owners.details(session, vault.owners.get(session, gone.id))
        assert vault.owners.find(session, OwnerKind.PERSON, PERSON_ID) is None
        assert session.scalars(select(BlindIndex).where(BlindIndex.owner_id == gone.id)).all() == []
        assert session.scalars(select(Account).where(Account.owner_id == gone.id)).all() == []
        assert vault.owners.details(session, vault.owners.get(session, kept.id)).name == "演示公司"
        assert vault.audit.verify(session).ok
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all()
        assert actions[-2:] == ["owner.erasure_requested", "owner.erased"]
        with pytest.raises(OwnerNotFound):
            vault.owners.request_erasure(session, gone.id, actor="test")
