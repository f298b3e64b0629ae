"""Per-field envelope encryption: context binding, tampering, unknown keys, and master-key wrapping."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.crypto import aead
from vault.crypto.envelope import DataKey, FieldContext, ciphertext_dek_id
from vault.crypto.errors import DecryptionFailed, KeyringError, UnknownKey
from vault.crypto.keyring import EnvKeyring, FileKeyring, Keyring, wrapped_kek_id

OWNER, OTHER = uuid.uuid4(), uuid.uuid4()
RECORD = uuid.uuid4()


def keyring() -> Keyring:
    return Keyring({"k1": aead.new_key(), "k2": aead.new_key()}, "k1")


def test_round_trip_and_header_carries_key_id() -> None:
    dek = DataKey.generate(OWNER)
    ctx = FieldContext(OWNER, RECORD, "name", 1)
    ct = dek.encrypt_text("演示居民甲", ctx)
    assert dek.decrypt_text(ct, ctx) == "演示居民甲"
    assert ciphertext_dek_id(ct) == dek.dek_id
    assert "演示居民甲".encode() not in ct


@pytest.mark.parametrize(
    "moved",
    [
        FieldContext(OWNER, uuid.uuid4(), "name", 1),  # another record
        FieldContext(OWNER, RECORD, "address", 1),  # another field
        FieldContext(OWNER, RECORD, "name", 2),  # another version
    ],
    ids=["record", "field", "version"],
)
def test_a_ciphertext_moved_elsewhere_fails(moved: FieldContext) -> None:
    dek = DataKey.generate(OWNER)
    ct = dek.encrypt_text("value", FieldContext(OWNER, RECORD, "name", 1))
    with pytest.raises(DecryptionFailed):
        dek.decrypt(ct, moved)


def test_a_ciphertext_moved_to_another_owner_fails() -> None:
    dek, other = DataKey.generate(OWNER), DataKey.generate(OTHER)
    ct = dek.encrypt_text("value", FieldContext(OWNER, RECORD, "name"))
    with pytest.raises(UnknownKey):
        other.decrypt(ct, FieldContext(OTHER, RECORD, "name"))
    # even with the other owner's key id spliced into the header, the tag does not verify
    spliced = ct[:1] + other.dek_id.bytes + ct[17:]
    with pytest.raises(DecryptionFailed):
        other.decrypt(spliced, FieldContext(OTHER, RECORD, "name"))


def test_same_plaintext_encrypts_differently() -> None:
    dek = DataKey.generate(OWNER)
    ctx = FieldContext(OWNER, RECORD, "name")
    assert dek.encrypt_text("x", ctx) != dek.encrypt_text("x", ctx)


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_flipped_byte_of_a_field_fails_closed(position: int, bit: int) -> None:
    dek = DataKey.generate(OWNER)
    ctx = FieldContext(OWNER, RECORD, "name")
    ct = bytearray(dek.encrypt_text("a value of some length", ctx))
    ct[position % len(ct)] ^= 1 << bit
    with pytest.raises((DecryptionFailed, UnknownKey)):
        dek.decrypt(bytes(ct), ctx)


def test_every_byte_position_of_a_field_is_protected() -> None:
    dek = DataKey.generate(OWNER)
    ctx = FieldContext(OWNER, RECORD, "f")
    ct = dek.encrypt_text("v", ctx)
    for i in range(len(ct)):
        tampered = bytearray(ct)
        tampered[i] ^= 0x01
        with pytest.raises((DecryptionFailed, UnknownKey)):
            dek.decrypt(bytes(tampered), ctx)


def test_every_byte_of_a_wrapped_key_is_protected() -> None:
    ring = keyring()
    dek = DataKey.generate(OWNER)
    wrapped = dek.wrap(ring)
    assert DataKey.unwrap(ring, OWNER, dek.dek_id, wrapped).key == dek.key
    for i in range(len(wrapped)):
        tampered = bytearray(wrapped)
        tampered[i] ^= 0x01
        with pytest.raises((DecryptionFailed, UnknownKey)):
            DataKey.unwrap(ring, OWNER, dek.dek_id, bytes(tampered))


def test_wrapped_key_is_bound_to_owner_and_dek_id() -> None:
    ring = keyring()
    dek = DataKey.generate(OWNER)
    wrapped = dek.wrap(ring)
    with pytest.raises(DecryptionFailed):
        DataKey.unwrap(ring, OTHER, dek.dek_id, wrapped)
    with pytest.raises(DecryptionFailed):
        DataKey.unwrap(ring, OWNER, uuid.uuid4(), wrapped)


def test_unknown_master_key_id_fails() -> None:
    ring = keyring()
    wrapped = DataKey.generate(OWNER).wrap(ring)
    assert wrapped_kek_id(wrapped) == "k1"
    other = Keyring({"k9": aead.new_key()}, "k9")
    with pytest.raises(UnknownKey):
        other.unwrap(wrapped, b"ctx")


def test_every_master_key_unwraps_the_primary_wraps() -> None:
    k1, k2 = aead.new_key(), aead.new_key()
    old = Keyring({"k1": k1}, "k1")
    wrapped = old.wrap(b"k" * 32, b"ctx")
    new = Keyring({"k1": k1, "k2": k2}, "k2")
    assert new.unwrap(wrapped, b"ctx") == b"k" * 32
    assert wrapped_kek_id(new.wrap(b"k" * 32, b"ctx")) == "k2"


def test_env_keyring_parses_and_names_bad_items() -> None:
    import base64

    good = base64.b64encode(b"a" * 32).decode()
    ring = EnvKeyring.parse(f"new:{good},old:{good}")
    assert ring.key_ids() == ["new", "old"]
    with pytest.raises(KeyringError, match="item 2"):
        EnvKeyring.parse(f"new:{good},broken")
    with pytest.raises(KeyringError, match="32 bytes"):
        EnvKeyring.parse("short:" + base64.b64encode(b"abc").decode())
    with pytest.raises(KeyringError, match="not valid base64"):
        EnvKeyring.parse("bad:!!!")


def test_key_file_is_created_0600_and_refused_when_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    ring = FileKeyring.open_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert FileKeyring.open_or_create(path).key_ids() == ring.key_ids()
    path.chmod(0o644)
    with pytest.raises(KeyringError, match="0600"):
        FileKeyring.open_or_create(path)


def test_file_keyring_rotation_persists_and_retire_refuses_primary(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    ring = FileKeyring.open_or_create(path)
    first = ring.primary_id
    second = ring.add_primary()
    reopened = FileKeyring.open_or_create(path)
    assert reopened.primary_id == second and set(reopened.key_ids()) == {first, second}
    with pytest.raises(KeyringError, match="primary"):
        reopened.retire(second)
    reopened.retire(first)
    assert FileKeyring.open_or_create(path).key_ids() == [second]


def test_a_running_process_picks_up_a_rotation_made_by_another(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    server = FileKeyring.open_or_create(path)
    cli = FileKeyring.open_or_create(path)
    new = cli.add_primary()
    wrapped = server.wrap(b"k" * 32, b"ctx")
    assert wrapped_kek_id(wrapped) == new  # the server wraps under the new primary at once
    old = next(k for k in cli.key_ids() if k != new)
    cli.retire(old)
    assert server.key_ids() == [new]


def test_fields_sealed_together_open_one_by_one_and_only_where_they_belong() -> None:
    owner, record = uuid.uuid4(), uuid.uuid4()
    dek = DataKey.generate(owner)
    sealed = dek.encrypt_fields({"name": "测试", "class": "C1"}, owner, record, 3)
    for name, text in (("name", "测试"), ("class", "C1")):
        assert dek.decrypt_text(sealed[name], FieldContext(owner, record, name, 3)) == text
    with pytest.raises(DecryptionFailed):
        dek.decrypt_text(sealed["name"], FieldContext(owner, record, "class", 3))
    with pytest.raises(DecryptionFailed):
        dek.decrypt_text(sealed["name"], FieldContext(owner, record, "name", 1))
    with pytest.raises(ValueError, match="own owner"):
        dek.encrypt_fields({"name": "x"}, uuid.uuid4(), record)
