"""Known answers for every format the vault writes to disk: fixed keys and nonces give exactly these bytes.

A change to a version byte, a header, the associated data, a KDF person string or the disclosure encoding makes
data already stored unreadable (or indexes unfindable); these tests fail first. Each format is pinned both ways:
writing gives the stored bytes, and the stored bytes still read back. (The audit-log checkpoint is pinned with
its own format, beside the audit log.)
"""

from __future__ import annotations

import uuid

import pytest

from vault.crypto import aead, envelope
from vault.crypto.blind_index import blind_index
from vault.crypto.keyring import EnvKeyring
from vault.licences import sdjwt

OWNER = uuid.UUID("00000000-0000-4000-8000-000000000001")
DEK_ID = uuid.UUID("00000000-0000-4000-8000-000000000002")
RECORD = uuid.UUID("00000000-0000-4000-8000-000000000003")
DEK = bytes(range(32))
KEK = bytes(range(32, 64))
INDEX_KEY = bytes(range(64, 96))
NONCE = bytes(range(100, 124))
CONTEXT = envelope.FieldContext(OWNER, RECORD, "name", record_version=2)

# 0x01 | dek id | nonce | XChaCha20-Poly1305("张三", aad = header || owner || record || version || field)
FIELD_V1 = (
    "01" + "00000000000040008000000000000002" + "6465666768696a6b6c6d6e6f707172737475767778797a7b"
    "99cf595447a7c8d110158414ce47618c4bfd618e6069"
)
# 0x01 | len("kek-2026") | "kek-2026" | nonce | XChaCha20-Poly1305(dek, aad = header || "owner-dek" || owner || dek id)
WRAPPED_V1 = (
    "01" + "08" + "6b656b2d32303236" + "6465666768696a6b6c6d6e6f707172737475767778797a7b"
    "fba76b17b2f1303d129ba3c69feccc18274b60f026e91870c07c85590a8da77a77e6813f8ea73cef3ccb2d0af3944f0a"
)
# BLAKE2b-256(key = index key, person = "cv-blind-index", "person-id" || 0x00 || NFKC upper-cased value)
INDEX = "268823613b645e4a39b6f4a2134d413d008de3c514ef960529e7d5bd094deb36"
# base64url(canonical JSON [salt, name, value]) and its SHA-256 digest as it appears in `_sd`
DISCLOSURE = "WyJBQUVDQXdRRkJnY0lDUW9MREEwT0R3IiwibmFtZSIsIuW8oOS4iSJd"
DISCLOSURE_DIGEST = "3Y-DVS8_dEVMQcQpTBHxGdYEJq_Ev-H2y06VQ8YjMkw"


@pytest.fixture
def fixed_nonce(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aead, "new_nonce", lambda: NONCE)


@pytest.mark.usefixtures("fixed_nonce")
def test_field_envelope_v1() -> None:
    key = envelope.DataKey(OWNER, DEK_ID, DEK)
    assert key.encrypt_text("张三", CONTEXT).hex() == FIELD_V1
    assert key.decrypt_text(bytes.fromhex(FIELD_V1), CONTEXT) == "张三"
    assert envelope.ciphertext_dek_id(bytes.fromhex(FIELD_V1)) == DEK_ID


@pytest.mark.usefixtures("fixed_nonce")
def test_wrapped_data_key_v1() -> None:
    keyring = EnvKeyring({"kek-2026": KEK}, "kek-2026")
    assert envelope.DataKey(OWNER, DEK_ID, DEK).wrap(keyring).hex() == WRAPPED_V1
    assert envelope.DataKey.unwrap(keyring, OWNER, DEK_ID, bytes.fromhex(WRAPPED_V1)).key == DEK


def test_blind_index() -> None:
    assert blind_index(INDEX_KEY, "person-id", "11010519491231002x").hex() == INDEX
    assert blind_index(INDEX_KEY, "person-id", " １１０１０５１９４９１２３１００２X ").hex() == INDEX  # NFKC, trimmed


def test_sd_jwt_disclosure_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdjwt.secrets, "token_bytes", lambda n: bytes(range(n)))
    disclosure = sdjwt.make_disclosure("name", "张三")
    assert disclosure == DISCLOSURE
    assert sdjwt.digest(DISCLOSURE) == DISCLOSURE_DIGEST
    assert sdjwt.decode_disclosure(DISCLOSURE) == ("AAECAwQFBgcICQoLDA0ODw", "name", "张三")
