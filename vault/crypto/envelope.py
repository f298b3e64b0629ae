"""Per-owner data keys (DEKs) and per-field encryption under them.

Field ciphertext format, version 1:  0x01 | dek id (16 bytes) | nonce (24) | ciphertext+tag
Associated data: the header, then owner id, record id, record version and field name, each length-prefixed,
so a ciphertext moved to another owner, record, version or field no longer authenticates.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from vault.crypto import aead
from vault.crypto.errors import DecryptionFailed, UnknownKey
from vault.crypto.interfaces import MasterKeyProvider

FIELD_VERSION = 1
_HEADER = 1 + 16


_LENGTH = struct.Struct(">I").pack


def _frame(*parts: bytes) -> bytes:
    return b"".join([_LENGTH(len(p)) + p for p in parts])


def dek_context(owner_id: uuid.UUID, dek_id: uuid.UUID) -> bytes:
    """What a wrapped DEK is bound to besides its KEK: the owner and the DEK's own id."""
    return _frame(b"owner-dek", owner_id.bytes, dek_id.bytes)


def system_key_context(purpose: str, kid: str) -> bytes:
    """What a wrapped system key (index key, signing keys) is bound to."""
    return _frame(b"system-key", purpose.encode(), kid.encode())


@dataclass(frozen=True)
class FieldContext:
    """Where a value lives; every part goes into the associated data."""

    owner_id: uuid.UUID
    record_id: uuid.UUID
    field: str
    record_version: int = 1

    def aad(self, header: bytes) -> bytes:
        return header + _frame(
            self.owner_id.bytes,
            self.record_id.bytes,
            struct.pack(">Q", self.record_version),
            self.field.encode(),
        )


@dataclass(frozen=True)
class DataKey:
    """An owner's unwrapped DEK. Lives only in memory, only while a request needs it."""

    owner_id: uuid.UUID
    dek_id: uuid.UUID
    key: bytes

    @classmethod
    def generate(cls, owner_id: uuid.UUID) -> DataKey:
        return cls(owner_id, uuid.uuid4(), aead.new_key())

    def wrap(self, keyring: MasterKeyProvider) -> bytes:
        return keyring.wrap(self.key, dek_context(self.owner_id, self.dek_id))

    @classmethod
    def unwrap(cls, keyring: MasterKeyProvider, owner_id: uuid.UUID, dek_id: uuid.UUID, wrapped: bytes) -> DataKey:
        return cls(owner_id, dek_id, keyring.unwrap(wrapped, dek_context(owner_id, dek_id)))

    def encrypt(self, plaintext: bytes, ctx: FieldContext) -> bytes:
        if ctx.owner_id != self.owner_id:
            raise ValueError("a field is encrypted only under its own owner's key")
        header = bytes([FIELD_VERSION]) + self.dek_id.bytes
        nonce = aead.new_nonce()
        return header + nonce + aead.seal(self.key, nonce, plaintext, ctx.aad(header))

    def decrypt(self, ciphertext: bytes, ctx: FieldContext) -> bytes:
        if len(ciphertext) < _HEADER + aead.NONCE_BYTES + aead.TAG_BYTES or ciphertext[0] != FIELD_VERSION:
            raise DecryptionFailed("ciphertext has an unknown format or is truncated")
        if ciphertext[1:_HEADER] != self.dek_id.bytes:
            raise UnknownKey("ciphertext names a data key that is not this owner's")
        nonce = ciphertext[_HEADER : _HEADER + aead.NONCE_BYTES]
        return aead.open_(self.key, nonce, ciphertext[_HEADER + aead.NONCE_BYTES :], ctx.aad(ciphertext[:_HEADER]))

    def encrypt_fields(
        self, texts: Mapping[str, str], owner_id: uuid.UUID, record_id: uuid.UUID, record_version: int = 1
    ) -> dict[str, bytes]:
        """encrypt_text() of several fields of one record (same ciphertexts and associated data), framed once."""
        if owner_id != self.owner_id:
            raise ValueError("a field is encrypted only under its own owner's key")
        header = bytes([FIELD_VERSION]) + self.dek_id.bytes
        prefix = header + _frame(owner_id.bytes, record_id.bytes, struct.pack(">Q", record_version))
        items = []
        for name, text in texts.items():
            field = name.encode()
            items.append((text.encode("utf-8"), prefix + struct.pack(">I", len(field)) + field))
        return {
            name: header + nonce + ciphertext
            for name, (nonce, ciphertext) in zip(texts, aead.seal_many(self.key, items), strict=True)
        }

    def encrypt_text(self, text: str, ctx: FieldContext) -> bytes:
        return self.encrypt(text.encode("utf-8"), ctx)

    def decrypt_text(self, ciphertext: bytes, ctx: FieldContext) -> str:
        return self.decrypt(ciphertext, ctx).decode("utf-8")


def ciphertext_dek_id(ciphertext: bytes) -> uuid.UUID:
    """The DEK id in a field ciphertext's header."""
    if len(ciphertext) < _HEADER or ciphertext[0] != FIELD_VERSION:
        raise DecryptionFailed("ciphertext has an unknown format or is truncated")
    return uuid.UUID(bytes=ciphertext[1:_HEADER])
