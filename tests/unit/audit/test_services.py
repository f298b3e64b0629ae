"""The access log: append, checkpoint, prove, and catch every kind of tampering at its position."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select, text

from vault.audit import merkle
from vault.audit.events import Action, Event
from vault.audit.models import AuditCheckpoint, AuditEvent
from vault.audit.services import verify_entries
from vault.crypto import jws
from vault.crypto.services import VAULT_SIGNING
from vault.wiring import Vault


def _fill(vault: Vault, count: int, checkpoint_every: int = 4) -> None:
    with vault.db.session() as session:
        for i in range(count):
            vault.audit.append(
                session,
                Event(Action.FIELDS_RELEASED, "agency:test", owner_id=uuid.uuid4(), fields=("name",), reason=f"r{i}"),
            )
            if (i + 1) % checkpoint_every == 0:
                vault.audit.checkpoint(session)


def _stored(vault: Vault) -> tuple[list[tuple[int, bytes, bytes]], list[tuple[int, bytes, str]], dict]:  # type: ignore[type-arg]
    with vault.db.session() as session:
        rows = [
            (e.leaf_index, e.entry, e.leaf_hash)
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.leaf_index))
        ]
        cps = [
            (c.tree_size, c.root, c.signed)
            for c in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size))
        ]
        keys = vault.keys.public_keys(session, VAULT_SIGNING)
    return rows, cps, keys


def _rehash(rows: list[tuple[int, bytes, bytes]]) -> list[tuple[int, bytes, bytes]]:
    """What an attacker with write access would do to hide an edit: recompute every stored leaf hash."""
    return [(i, e, merkle.leaf_hash(e)) for i, e, _ in rows]


def test_untouched_log_verifies(vault: Vault) -> None:
    _fill(vault, 12)
    rows, cps, keys = _stored(vault)
    report = verify_entries(rows, cps, keys)
    assert report.ok and report.size == 12 and report.checkpoints == 3


@pytest.mark.parametrize("position", [0, 5, 11])
def test_edit_is_found_at_its_position(vault: Vault, position: int) -> None:
    _fill(vault, 12)
    rows, cps, keys = _stored(vault)
    index, entry, _ = rows[position]
    body = json.loads(entry)
    body["actor"] = "agency:innocent"
    rows[position] = (index, jws.canonical_json(body), rows[position][2])
    assert verify_entries(rows, cps, keys).problem.position == position  # type: ignore[union-attr]
    rehashed = _rehash(rows)
    problem = verify_entries(rehashed, cps, keys).problem
    assert problem is not None and problem.position == (position + 1 if position < 11 else 11)


@pytest.mark.parametrize("position", [0, 6, 11])
def test_delete_is_found_at_its_position(vault: Vault, position: int) -> None:
    _fill(vault, 12)
    rows, cps, keys = _stored(vault)
    del rows[position]
    problem = verify_entries(rows, cps, keys).problem
    assert problem is not None and problem.position == position
    renumbered = [(i, e, h) for i, (_, e, h) in enumerate(rows)]
    problem = verify_entries(renumbered, cps, keys).problem
    assert problem is not None and problem.position == position


def test_reorder_is_found(vault: Vault) -> None:
    _fill(vault, 12)
    rows, cps, keys = _stored(vault)
    rows[3], rows[4] = (3, rows[4][1], rows[4][2]), (4, rows[3][1], rows[3][2])
    problem = verify_entries(rows, cps, keys).problem
    assert problem is not None and problem.position == 3


def test_insert_is_found(vault: Vault) -> None:
    _fill(vault, 12)
    rows, cps, keys = _stored(vault)
    forged = dict(json.loads(rows[5][1]), index=6, id=str(uuid.uuid4()))
    entry = jws.canonical_json(forged)
    rows.insert(6, (6, entry, merkle.leaf_hash(entry)))
    rows = [(i, e, h) for i, (_, e, h) in enumerate(rows)]
    problem = verify_entries(rows, cps, keys).problem
    assert problem is not None and problem.position == 6


def test_forged_checkpoint_is_caught(vault: Vault) -> None:
    _fill(vault, 8)
    rows, cps, keys = _stored(vault)
    size, root, signed = cps[0]
    forged = signed.rsplit(".", 1)[0] + "." + jws.b64url_encode(b"\x00" * 64)
    problem = verify_entries(rows, [(size, root, forged)], keys).problem
    assert problem is not None and "signature" in problem.what


def test_editing_through_the_database_is_caught_by_verify(vault: Vault) -> None:
    _fill(vault, 6)
    engine = vault.db.engine
    with engine.begin() as conn:  # an attacker with DBA rights drops the guard first
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
        conn.execute(text("UPDATE audit_events SET entry = :e WHERE leaf_index = 2"), {"e": b'{"forged":true}'})
    with vault.db.session() as session:
        problem = vault.audit.verify(session).problem
    assert problem is not None and problem.position == 2


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_inclusion_proofs_check_against_the_signed_checkpoint(vault: Vault, size: int) -> None:
    _fill(vault, size, checkpoint_every=1000)
    with vault.db.session() as session:
        ids = session.scalars(select(AuditEvent.id).order_by(AuditEvent.leaf_index)).all()
        for event_id in ids:
            proof = vault.audit.prove(session, event_id)
            claims = json.loads(jws.verify_compact(proof.checkpoint, vault.keys.signer(session).verify_key)[1])
            assert claims["size"] == proof.tree_size == size and claims["root"] == proof.root
            assert merkle.verify_inclusion(
                merkle.leaf_hash(proof.entry.encode()),
                proof.leaf_index,
                proof.tree_size,
                [jws.b64url_decode(p) for p in proof.path],
                jws.b64url_decode(proof.root),
            )


def test_consistency_between_checkpoints(vault: Vault) -> None:
    _fill(vault, 10, checkpoint_every=3)
    with vault.db.session() as session:
        sizes = [c.tree_size for c in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size))]
        assert sizes == [3, 6, 9]
        old, new = vault.audit.checkpoint_at(session, 3), vault.audit.checkpoint_at(session, 9)
        proof = [jws.b64url_decode(p) for p in vault.audit.consistency(session, 3, 9)]
        assert merkle.verify_consistency(3, 9, old.root, new.root, proof)
        assert vault.audit.checkpoint(session) is not None  # 10 > 9
        assert vault.audit.checkpoint(session) is None  # nothing new since


def test_a_signing_key_planted_in_the_database_does_not_vouch_for_checkpoints(vault: Vault) -> None:
    import nacl.signing

    from vault.crypto.models import SystemKey

    _fill(vault, 3, checkpoint_every=1000)
    attacker = nacl.signing.SigningKey.generate()
    with vault.db.session() as session:
        session.add(
            SystemKey(
                purpose=VAULT_SIGNING,
                kid="planted",
                kek_id=vault.keyring.primary_id,
                wrapped=b"\x01\x00" + b"\x00" * 60,
                public_key=bytes(attacker.verify_key),
            )
        )
        hashes = [e.leaf_hash for e in session.scalars(select(AuditEvent).order_by(AuditEvent.leaf_index))]
        root = merkle.root(hashes)
        claims = {"log": "x", "size": 3, "root": jws.b64url_encode(root), "iat": 0}
        forged = jws.sign_compact({"alg": "EdDSA", "typ": "checkpoint+jwt", "kid": "planted"}, claims, attacker)
        session.add(AuditCheckpoint(tree_size=3, root=root, signed=forged))
    with vault.db.session() as session:
        problem = vault.audit.verify(session).problem
    assert problem is not None and "unknown key" in problem.what
