"""Key rotation re-wraps data keys only, survives a crash part-way, and refuses to retire a key in use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.crypto.errors import KeyringError
from vault.crypto.models import OwnerKey
from vault.owners.identifiers import synthetic_resident_id
from vault.owners.models import Owner
from vault.wiring import Vault


def _people(vault: Vault, count: int) -> None:
    from datetime import date

    with vault.db.session() as session:
        for i in range(count):
            vault.owners.add_person(
                session, id_number=synthetic_resident_id("110101", date(1990, 1, 1), i), name=f"演示{i}", actor="t"
            )


def _ciphertexts(vault: Vault) -> dict:  # type: ignore[type-arg]
    with vault.db.session() as session:
        return {o.id: (o.name_ct, o.identifier_ct) for o in session.scalars(select(Owner))}


def _names(vault: Vault) -> list[str]:
    with vault.db.session() as session:
        return sorted(vault.owners.details(session, o).name for o in session.scalars(select(Owner)))


def test_rotation_rewraps_every_dek_and_leaves_data_bytes_identical(vault: Vault) -> None:
    _people(vault, 5)
    before = _ciphertexts(vault)
    old = vault.keyring.primary_id
    new = vault.keyring.add_primary()
    with vault.db.session() as session:
        system_keys = sum(vault.keys.status(session).system_keys.values())
    assert vault.keys.rewrap_all(vault.db.session) == 5 + system_keys  # five DEKs and every system key
    assert _ciphertexts(vault) == before
    with vault.db.session() as session:
        status = vault.keys.status(session)
        assert status.deks == {new: 5} and old not in status.system_keys
        vault.keys.retire(session, old)
    assert vault.keyring.key_ids() == [new]
    assert _names(vault) == sorted(f"演示{i}" for i in range(5))


def test_a_crash_mid_rotation_leaves_every_owner_readable(vault: Vault) -> None:
    _people(vault, 6)
    old = vault.keyring.primary_id
    new = vault.keyring.add_primary()
    batches = 0

    @contextmanager
    def crashing_unit_of_work() -> Iterator[Session]:
        nonlocal batches
        batches += 1
        if batches == 3:
            raise RuntimeError("power cut")
        with vault.db.session() as session:
            yield session

    with pytest.raises(RuntimeError):
        vault.keys.rewrap_all(crashing_unit_of_work, batch=2)
    with vault.db.session() as session:
        status = vault.keys.status(session)
    assert status.deks == {new: 4, old: 2}
    assert len(_names(vault)) == 6
    with pytest.raises(KeyringError, match="still wraps 2"), vault.db.session() as session:
        vault.keys.retire(session, old)
    vault.keys.rewrap_all(vault.db.session)
    with vault.db.session() as session:
        assert vault.keys.status(session).deks == {new: 6}
        assert {k.kek_id for k in session.scalars(select(OwnerKey))} == {new}
