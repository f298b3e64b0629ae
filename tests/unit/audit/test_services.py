"""The access log: append without an index, sequence, prove from tiles, and catch tampering against the witness."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import nacl.signing
import pytest
from sqlalchemy import select, text

from tests.logtools import append, attach, drop_guards, fill, make_witness, rebuild_tiles, resign
from vault.audit import merkle, note, publishing, sequencer
from vault.audit.errors import AuditError, NotIntegrated
from vault.audit.models import AuditCheckpoint, AuditEvent
from vault.crypto import jws
from vault.crypto.services import VAULT_SIGNING
from vault.wiring import Vault


@pytest.fixture
def witnessed(vault: Vault, tmp_path: Path) -> Vault:
    attach(vault, make_witness(tmp_path / "witness"))
    return vault


def _leaf_hashes(vault: Vault) -> list[bytes]:
    with vault.db.session() as session:
        return list(session.scalars(select(AuditEvent.leaf_hash).order_by(AuditEvent.leaf_index)))


def _forget_outside_copies(vault: Vault) -> None:
    """Take away what lives outside the database: the witnesses and the published files."""
    vault.audit.witnesses = ()
    assert vault.audit.data_dir is not None
    for name in ("checkpoint", "verified.json"):
        (vault.audit.data_dir / name).unlink(missing_ok=True)


def test_append_takes_no_index_and_the_sequencer_gives_them_in_arrival_order(vault: Vault) -> None:
    ids = append(vault, 5)
    with vault.db.session() as session:
        assert session.scalars(select(AuditEvent.leaf_index)).all() == [None] * 5
        assert vault.audit.pending(session) == 5
        with pytest.raises(NotIntegrated):
            vault.audit.prove(session, ids[0])
    assert publishing.sequence_step(vault.audit, vault.db) == 5
    with vault.db.session() as session:
        rows = session.execute(select(AuditEvent.id, AuditEvent.leaf_index).order_by(AuditEvent.seq)).all()
        assert [r[1] for r in rows] == [0, 1, 2, 3, 4] and [r[0] for r in rows] == ids
        assert vault.audit.size(session) == 5 and vault.audit.pending(session) == 0
        body = json.loads(session.scalars(select(AuditEvent.entry)).first())  # type: ignore[arg-type]
        assert body["v"] == 2 and "index" not in body and "prev" not in body
    assert publishing.sequence_step(vault.audit, vault.db) == 0


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 255, 256, 257, 600])
def test_inclusion_proofs_from_tiles_verify_against_the_signed_note(vault: Vault, size: int) -> None:
    ids = append(vault, size)
    while True:  # small batches: the tiles must come out the same however the leaves arrive
        with vault.db.session() as session:
            count, _ = vault.audit.sequence(session, limit=97)
        if count < 97:
            break
    hashes = _leaf_hashes(vault)
    with vault.db.session() as session:
        log_key = note.parse_vkey(vault.audit.log_key(session))
        assert vault.audit.tree(session).root() == merkle.root(hashes)
        for event_id in ids[:: max(1, size // 20)]:
            proof = vault.audit.prove(session, event_id)
            signed = note.parse_note(proof.checkpoint)
            assert note.verified_by(signed, [log_key]) == [log_key]
            body = note.parse_checkpoint(signed.text)
            assert body.size == proof.tree_size == size and note.b64(body.root) == proof.root
            assert [note.unb64(p, "p") for p in proof.path] == merkle.inclusion_proof(hashes, proof.leaf_index)
            assert merkle.verify_inclusion(
                merkle.leaf_hash(proof.entry.encode()),
                proof.leaf_index,
                size,
                [note.unb64(p, "p") for p in proof.path],
                body.root,
            )


def test_consistency_between_checkpoints_comes_from_the_tiles(vault: Vault) -> None:
    for count in (3, 3, 3, 1):
        fill(vault, count, cosign=False)
    hashes = _leaf_hashes(vault)
    with vault.db.session() as session:
        sizes = [c.tree_size for c in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size))]
        assert sizes == [3, 6, 9, 10]
        old, new = vault.audit.checkpoint_at(session, 3), vault.audit.checkpoint_at(session, 10)
        proof = [note.unb64(p, "p") for p in vault.audit.consistency(session, 3, 10)]
        assert proof == merkle.consistency_proof(hashes, 3)
        assert merkle.verify_consistency(3, 10, old.root, new.root, proof)
        assert vault.audit.checkpoint(session) is None  # nothing new since


def test_the_sequencer_stores_the_subtree_roots_of_each_tile_that_fills(vault: Vault) -> None:
    append(vault, 600)
    while True:  # small batches: a tile fills across two of them
        with vault.db.session() as session:
            if vault.audit.integrate(session, limit=97) < 97:
                break
    hashes = _leaf_hashes(vault)
    with vault.db.engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT idx, roots FROM audit_tile_roots WHERE level = 0")).all())
    assert sorted(stored) == [0, 1]  # tile 0/002 holds 88 hashes: not full, no roots
    for idx, roots in stored.items():
        first = idx * 256
        assert bytes(roots) == b"".join(merkle.root(hashes[first + 16 * k : first + 16 * k + 16]) for k in range(16))


def _tamper_root(vault: Vault, slot: int) -> None:
    """A DBA alters one stored subtree root of tile 0/000 (derived data: no trigger guards it)."""
    with vault.db.engine.begin() as conn:
        roots = bytearray(conn.execute(text("SELECT roots FROM audit_tile_roots WHERE level = 0 AND idx = 0")).scalar())
        roots[slot * 32 : slot * 32 + 32] = bytes(32)
        conn.execute(text("UPDATE audit_tile_roots SET roots = :r WHERE level = 0 AND idx = 0"), {"r": bytes(roots)})


def test_a_proof_from_an_altered_subtree_root_fails_against_the_signed_checkpoint(vault: Vault) -> None:
    ids = fill(vault, 300, cosign=False)
    _tamper_root(vault, 1)  # the sibling of height 4 on event 0's path
    with vault.db.session() as session:
        log_key = note.parse_vkey(vault.audit.log_key(session))
        proof = vault.audit.prove(session, ids[0])
    signed = note.parse_note(proof.checkpoint)
    assert note.verified_by(signed, [log_key]) == [log_key]
    path = [note.unb64(p, "p") for p in proof.path]
    leaf = merkle.leaf_hash(proof.entry.encode())
    assert not merkle.verify_inclusion(leaf, 0, 300, path, note.parse_checkpoint(signed.text).root)


def test_verify_full_compares_the_stored_subtree_roots_with_the_tiles(vault: Vault) -> None:
    fill(vault, 300, cosign=False)
    assert vault.audit.verify(vault.db.engine, full=True).ok
    _tamper_root(vault, 5)
    problem = vault.audit.verify(vault.db.engine, full=True).problem
    assert problem is not None and problem.position == 5 * 16
    assert problem.what == "the stored subtree roots of tile 0/000 do not match the tree"


def test_a_crash_between_commit_and_integration_loses_nothing(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(vault, 3, cosign=False)
    append(vault, 4)

    def crash(*_args: object) -> None:
        raise SystemExit("killed between assigning indexes and writing tiles")

    monkeypatch.setattr(sequencer, "_write_tiles", crash)
    with pytest.raises(SystemExit):
        publishing.sequence_step(vault.audit, vault.db)
    with vault.db.session() as session:
        assert vault.audit.pending(session) == 4 and vault.audit.size(session) == 3
    monkeypatch.undo()
    assert publishing.sequence_step(vault.audit, vault.db) == 4
    with vault.db.session() as session:
        indexes = sorted(session.scalars(select(AuditEvent.leaf_index)).all())  # type: ignore[type-var]
    assert indexes == list(range(7))
    assert vault.audit.verify(vault.db.engine, full=True).ok


def test_parallel_appends_take_no_lock_and_are_each_integrated_exactly_once(vault: Vault) -> None:
    from tests.concurrency.race import race

    outcome = race(vault.db, lambda session, i: vault.audit.append(session, _event(i)).id, n=16)
    assert not outcome.lost and len(outcome.won) == 16
    publishing.sequence_step(vault.audit, vault.db)
    with vault.db.session() as session:
        rows = session.execute(select(AuditEvent.id, AuditEvent.leaf_index)).all()
    assert sorted(r[1] for r in rows) == list(range(16)) and {r[0] for r in rows} == set(outcome.won)
    assert vault.audit.verify(vault.db.engine, full=True).ok


@pytest.mark.postgres
def test_an_event_that_commits_late_with_a_lower_seq_is_not_skipped(vault: Vault) -> None:
    if vault.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite admits one writer: a transaction cannot commit under another's nose")
    early = vault.db._factory()
    early.begin()
    vault.audit.append(early, _event(0))  # takes the lower seq, commits last
    append(vault, 2)
    assert publishing.sequence_step(vault.audit, vault.db) == 2
    early.commit()
    early.close()
    assert publishing.sequence_step(vault.audit, vault.db) == 1
    with vault.db.session() as session:
        rows = session.execute(select(AuditEvent.seq, AuditEvent.leaf_index).order_by(AuditEvent.seq)).all()
    assert [r[1] for r in rows] == [2, 0, 1]
    assert vault.audit.verify(vault.db.engine, full=True).ok


def _event(i: int):  # type: ignore[no-untyped-def]
    import uuid

    from vault.audit.events import Action, Event

    return Event(Action.FIELDS_RELEASED, "agency:race", owner_id=uuid.uuid4(), reason=f"r{i}")


# tampering, each caught against the witness and missed without it


def test_untouched_log_verifies_against_the_witness(witnessed: Vault) -> None:
    fill(witnessed, 12)
    report = witnessed.audit.verify(witnessed.db.engine, full=True)
    assert report.ok and report.size == 12 and any("witness" in a for a in report.anchors)


def test_truncating_the_tail_is_caught(witnessed: Vault) -> None:
    fill(witnessed, 20)
    drop_guards(witnessed.db.engine)
    with witnessed.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE leaf_index >= 15"))
    rebuild_tiles(witnessed.db.engine)
    resign(witnessed)
    report = witnessed.audit.verify(witnessed.db.engine, full=True)
    assert not report.ok and "removed" in report.problem.what  # type: ignore[union-attr]
    _forget_outside_copies(witnessed)
    assert witnessed.audit.verify(witnessed.db.engine, full=True).ok  # the database alone cannot tell


def test_splicing_an_event_out_and_rechaining_is_caught(witnessed: Vault) -> None:
    fill(witnessed, 20)
    drop_guards(witnessed.db.engine)
    with witnessed.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE leaf_index = 7"))
        for index in range(8, 20):
            conn.execute(
                text("UPDATE audit_events SET leaf_index = :n WHERE leaf_index = :o"), {"n": index - 1, "o": index}
            )
    rebuild_tiles(witnessed.db.engine)
    resign(witnessed)
    fill(witnessed, 1, cosign=False)  # the log carries on
    with witnessed.db.session() as session:
        latest = witnessed.audit.latest_checkpoint(session)
    assert latest is not None and latest.tree_size == 20
    assert publishing.witness_step(witnessed.audit, witnessed.db) == 0  # the witness will not cosign the fork
    report = witnessed.audit.verify(witnessed.db.engine, full=True)
    assert not report.ok and "rewritten" in report.problem.what  # type: ignore[union-attr]
    _forget_outside_copies(witnessed)
    assert witnessed.audit.verify(witnessed.db.engine, full=True).ok


def test_rewriting_an_entry_and_its_hashes_is_caught(witnessed: Vault) -> None:
    fill(witnessed, 10)
    drop_guards(witnessed.db.engine)
    with witnessed.db.engine.begin() as conn:
        entry = conn.execute(text("SELECT entry FROM audit_events WHERE leaf_index = 4")).scalar()
        body = dict(json.loads(entry), actor="agency:innocent")
        forged = jws.canonical_json(body)
        conn.execute(
            text("UPDATE audit_events SET entry = :e, leaf_hash = :h WHERE leaf_index = 4"),
            {"e": forged, "h": merkle.leaf_hash(forged)},
        )
    rebuild_tiles(witnessed.db.engine)
    resign(witnessed)
    report = witnessed.audit.verify(witnessed.db.engine, full=True)
    assert not report.ok and report.problem.position == 9  # type: ignore[union-attr]
    _forget_outside_copies(witnessed)
    assert witnessed.audit.verify(witnessed.db.engine, full=True).ok


def test_an_edit_without_rehashing_is_caught_at_its_position(vault: Vault) -> None:
    fill(vault, 6, cosign=False)
    drop_guards(vault.db.engine)
    with vault.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET entry = :e WHERE leaf_index = 2"), {"e": b'{"forged":true}'})
    problem = vault.audit.verify(vault.db.engine, full=True).problem
    assert problem is not None and problem.position == 2


def test_deleting_checkpoint_rows_is_caught(witnessed: Vault) -> None:
    fill(witnessed, 5)
    fill(witnessed, 5)
    drop_guards(witnessed.db.engine)
    with witnessed.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_checkpoints WHERE tree_size = 10"))
    report = witnessed.audit.verify(witnessed.db.engine, full=True)
    assert not report.ok and "missing from the database" in report.problem.what  # type: ignore[union-attr]
    _forget_outside_copies(witnessed)
    assert witnessed.audit.verify(witnessed.db.engine, full=True).ok


def test_replacing_a_checkpoint_row_is_caught(witnessed: Vault) -> None:
    fill(witnessed, 8)
    drop_guards(witnessed.db.engine)
    attacker = nacl.signing.SigningKey.generate()
    body = note.Checkpoint(witnessed.audit.origin, 8, b"\x07" * 32).text()
    forged = note.Note(body, (note.sign(body, witnessed.audit.origin, attacker),)).render()
    with witnessed.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_checkpoints WHERE tree_size = 8"))
        conn.execute(
            text("INSERT INTO audit_checkpoints (tree_size, root, signed, created_at) VALUES (8, :r, :s, :t)"),
            {"r": b"\x07" * 32, "s": forged, "t": "2026-11-30 00:00:00"},
        )
    report = witnessed.audit.verify(witnessed.db.engine, full=True)
    assert not report.ok and "not signed by the log's key" in report.problem.what  # type: ignore[union-attr]


def test_a_signing_key_planted_in_the_database_does_not_vouch_for_checkpoints(vault: Vault) -> None:
    from vault.crypto.models import SystemKey

    fill(vault, 3, cosign=False)
    attacker = nacl.signing.SigningKey.generate()
    drop_guards(vault.db.engine)
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
        root = merkle.root(_leaf_hashes(vault))
        body = note.Checkpoint(vault.audit.origin, 3, root).text()
        forged = note.Note(body, (note.sign(body, vault.audit.origin, attacker),)).render()
        session.execute(text("DELETE FROM audit_checkpoints"))
        session.add(AuditCheckpoint(tree_size=3, root=root, signed=forged))
    problem = vault.audit.verify(vault.db.engine, full=True).problem
    assert problem is not None and "not signed by the log's key" in problem.what


def test_the_vault_refuses_to_sign_a_truncated_or_rewritten_tree(vault: Vault) -> None:
    fill(vault, 10, cosign=False)
    drop_guards(vault.db.engine)
    with vault.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE leaf_index >= 8"))
    rebuild_tiles(vault.db.engine)
    with pytest.raises(AuditError, match="signed more"), vault.db.session() as session:
        vault.audit.checkpoint(session)
    append(vault, 4)
    with pytest.raises(AuditError, match="no longer matches"):
        publishing.sequence_step(vault.audit, vault.db)


def test_verify_is_incremental_and_reads_from_a_snapshot(vault: Vault) -> None:
    fill(vault, 30, cosign=False)
    first = vault.audit.verify(vault.db.engine)
    assert first.ok and first.start == 0 and first.size == 30
    fill(vault, 5, cosign=False)
    second = vault.audit.verify(vault.db.engine)
    assert second.ok and second.start == 30 and second.size == 35
    if vault.db.engine.dialect.name == "sqlite":  # a writer goes on while verify holds its snapshot
        from vault.audit.verify import snapshot

        done = threading.Event()
        with snapshot(vault.db.engine) as conn:
            conn.execute(text("SELECT count(*) FROM audit_events")).scalar()
            threading.Thread(target=lambda: (append(vault, 1), done.set())).start()
            assert done.wait(5), "a writer waited for verify"


def test_a_proof_names_the_latest_cosigned_checkpoint_that_covers_the_event_else_the_latest(witnessed: Vault) -> None:
    early = fill(witnessed, 3)  # checkpoint 3, cosigned
    late = fill(witnessed, 2, cosign=False)  # checkpoint 5, not yet
    with witnessed.db.session() as session:
        cosigned = witnessed.audit.prove(session, early[1])
        latest = witnessed.audit.prove(session, late[0])
    assert (cosigned.tree_size, latest.tree_size) == (3, 5)
    witness_key = witnessed.audit.witnesses[0].verifier
    assert note.verified_by(note.parse_note(cosigned.checkpoint), [witness_key]) == [witness_key]
    assert note.verified_by(note.parse_note(latest.checkpoint), [witness_key]) == []
