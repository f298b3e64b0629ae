"""The witness cosigns only a checkpoint that the log signed and that extends, by a valid consistency proof, the
last one it cosigned: never a smaller tree, a fork, or a proof from the wrong size."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nacl.signing
import pytest

from vault.audit import merkle, note
from vault.audit.witnessing import request_body
from vault.witness.service import Witness
from vault.witness.store import WitnessStore

ORIGIN = "vault.test/log"


@pytest.fixture
def log_key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(b"\x01" * 32)


@pytest.fixture
def witness(tmp_path: Path, log_key: nacl.signing.SigningKey) -> Witness:
    store = WitnessStore(tmp_path)
    store.add_log(note.verifier_of(ORIGIN, note.ED25519, log_key).vkey)
    return Witness(store, "witness.test/w1", nacl.signing.SigningKey(b"\x02" * 32), clock=lambda: 1_700_000_000)


def _leaves(n: int, tag: bytes = b"") -> list[bytes]:
    return [merkle.leaf_hash(tag + i.to_bytes(4, "big")) for i in range(n)]


def _signed(leaves: list[bytes], key: nacl.signing.SigningKey, origin: str = ORIGIN) -> str:
    body = note.Checkpoint(origin, len(leaves), merkle.root(leaves)).text()
    return note.Note(body, (note.sign(body, origin, key),)).render()


def _submit(witness: Witness, old: int, proof: list[bytes], signed: str) -> tuple[int, str]:
    answer = witness.add_checkpoint(request_body(old, proof, signed))
    return answer.status, answer.body


def test_cosigns_a_consistent_chain_with_a_valid_cosignature(
    witness: Witness, log_key: nacl.signing.SigningKey
) -> None:
    leaves = _leaves(20)
    status, body = _submit(witness, 0, [], _signed(leaves[:5], log_key))
    assert status == 200
    signed = _signed(leaves, log_key)
    status, body = _submit(witness, 5, merkle.consistency_proof(leaves, 5), signed)
    assert status == 200
    cosigned = note.parse_note(signed.replace("\n\n", "\n\n", 1) + body)
    assert note.verified_by(cosigned, [witness.verifier]) == [witness.verifier]
    assert note.timestamp_of(cosigned.signatures[-1]) == 1_700_000_000
    # the key id follows tlog-cosignature: SHA-256(name || 0x0A || 0x04 || key)[:4]
    expected = hashlib.sha256(b"witness.test/w1\n\x04" + bytes(witness.key.verify_key)).digest()[:4]
    assert cosigned.signatures[-1].key_id == expected


def test_refuses_a_smaller_tree(witness: Witness, log_key: nacl.signing.SigningKey) -> None:
    leaves = _leaves(10)
    assert _submit(witness, 0, [], _signed(leaves, log_key))[0] == 200
    assert _submit(witness, 10, [], _signed(leaves[:6], log_key))[0] == 400
    assert _submit(witness, 0, [], _signed(leaves[:6], log_key)) == (409, "10\n")


def test_refuses_a_fork_of_the_same_size_and_a_fork_that_grows(
    witness: Witness, log_key: nacl.signing.SigningKey
) -> None:
    leaves = _leaves(10)
    assert _submit(witness, 0, [], _signed(leaves, log_key))[0] == 200
    forked = [*leaves[:4], merkle.leaf_hash(b"spliced"), *leaves[5:]]
    assert _submit(witness, 10, [], _signed(forked, log_key))[0] == 409
    grown = [*forked, *_leaves(6, b"more")]
    assert _submit(witness, 10, merkle.consistency_proof(grown, 10), _signed(grown, log_key))[0] == 422
    assert witness.store.read_latest(ORIGIN).size == 10  # type: ignore[union-attr]


def test_refuses_a_proof_from_the_wrong_old_size_with_its_own_size(
    witness: Witness, log_key: nacl.signing.SigningKey
) -> None:
    leaves = _leaves(16)
    assert _submit(witness, 0, [], _signed(leaves[:8], log_key))[0] == 200
    assert _submit(witness, 4, merkle.consistency_proof(leaves, 4), _signed(leaves, log_key)) == (409, "8\n")


def test_refuses_unknown_logs_bad_signatures_and_garbage(witness: Witness, log_key: nacl.signing.SigningKey) -> None:
    leaves = _leaves(3)
    assert _submit(witness, 0, [], _signed(leaves, log_key, origin="other.test/log"))[0] == 404
    assert _submit(witness, 0, [], _signed(leaves, nacl.signing.SigningKey(b"\x03" * 32)))[0] == 403
    assert witness.add_checkpoint(b"old x\n\nnot a note").status == 400
    assert witness.add_checkpoint(b"\xff\xfe").status == 400
