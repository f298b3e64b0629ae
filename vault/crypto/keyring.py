"""Master keys (KEKs): a local key file for development, VAULT_MASTER_KEYS in production.

Wrapped key format, version 1:  0x01 | len(kek_id) | kek_id (ASCII) | nonce (24) | ciphertext+tag
Associated data: the header (version, kek id) followed by the caller's context (owner id, purpose).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from vault.crypto import aead
from vault.crypto.errors import DecryptionFailed, KeyringError, UnknownKey

WRAP_VERSION = 1
_ID_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def _check_id(kek_id: str) -> str:
    if not kek_id or len(kek_id) > 64 or not set(kek_id) <= _ID_ALPHABET:
        raise KeyringError(f"master key id {kek_id!r} must be 1-64 characters of a-z, 0-9, '-' and '_'")
    return kek_id


def new_kek_id() -> str:
    return f"kek-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"


def wrapped_kek_id(wrapped: bytes) -> str:
    """The KEK id recorded in a wrapped key's header; raises DecryptionFailed if the header is malformed."""
    if len(wrapped) < 2 or wrapped[0] != WRAP_VERSION:
        raise DecryptionFailed("wrapped key has an unknown format version")
    length = wrapped[1]
    if len(wrapped) < 2 + length + aead.NONCE_BYTES + aead.TAG_BYTES:
        raise DecryptionFailed("wrapped key is truncated")
    try:
        return wrapped[2 : 2 + length].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionFailed("wrapped key header is malformed") from None


class Keyring:
    """KEKs by id, primary first. Subclasses decide where they persist."""

    def __init__(self, keys: dict[str, bytes], primary: str) -> None:
        if primary not in keys:
            raise KeyringError(f"primary master key {primary!r} is not in the keyring")
        for kek_id, key in keys.items():
            _check_id(kek_id)
            if len(key) != aead.KEY_BYTES:
                raise KeyringError(f"master key {kek_id!r} must be {aead.KEY_BYTES} bytes, got {len(key)}")
        self._keys = dict(keys)
        self._primary = primary

    @property
    def primary_id(self) -> str:
        return self._primary

    def key_ids(self) -> list[str]:
        return [self._primary, *(k for k in self._keys if k != self._primary)]

    def in_memory(self) -> Keyring:
        """The same keys in a plain keyring that persists nothing: what a worker process is handed over its pipe."""
        return Keyring(self._keys, self._primary)

    def wrap(self, key: bytes, context: bytes) -> bytes:
        kek_id = self._primary.encode("ascii")
        header = bytes([WRAP_VERSION, len(kek_id)]) + kek_id
        nonce = aead.new_nonce()
        return header + nonce + aead.seal(self._keys[self._primary], nonce, key, header + context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        kek_id = wrapped_kek_id(wrapped)
        kek = self._keys.get(kek_id)
        if kek is None:
            raise UnknownKey(f"master key {kek_id!r} is not in the keyring")
        header_end = 2 + wrapped[1]
        nonce = wrapped[header_end : header_end + aead.NONCE_BYTES]
        return aead.open_(kek, nonce, wrapped[header_end + aead.NONCE_BYTES :], wrapped[:header_end] + context)

    def add_primary(self) -> str:
        raise KeyringError(
            "master keys come from VAULT_MASTER_KEYS: put a new key first in the variable, restart, "
            "then run `vault keys rotate --rewrap-only` to re-wrap"
        )

    def retire(self, kek_id: str) -> None:
        raise KeyringError("master keys come from VAULT_MASTER_KEYS: remove the key from the variable instead")


class EnvKeyring(Keyring):
    """Keys from VAULT_MASTER_KEYS (`id:base64`, comma separated, first is primary)."""

    @classmethod
    def parse(cls, value: str) -> EnvKeyring:
        keys: dict[str, bytes] = {}
        for position, item in enumerate(value.split(","), start=1):
            kek_id, sep, encoded = item.strip().partition(":")
            if not sep:
                raise KeyringError(f"VAULT_MASTER_KEYS item {position} must look like id:base64key")
            try:
                key = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise KeyringError(f"VAULT_MASTER_KEYS item {position} ({kek_id}) is not valid base64") from None
            if kek_id in keys:
                raise KeyringError(f"VAULT_MASTER_KEYS names key {kek_id!r} twice")
            keys[_check_id(kek_id)] = key
        primary = next(iter(keys))
        return cls(keys, primary)


class FileKeyring(Keyring):
    """Keys in a JSON file (mode 0600) in the data directory; rotation and retirement rewrite it atomically."""

    def __init__(self, path: Path, keys: dict[str, bytes], primary: str) -> None:
        super().__init__(keys, primary)
        self.path = path
        self._seen = self._stamp()

    def _stamp(self) -> tuple[int, int]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return (0, 0)
        return (stat.st_mtime_ns, stat.st_ino)

    def _fresh(self) -> None:
        """Pick up a rotation or retirement made by another process (the CLI) while this one runs."""
        stamp = self._stamp()
        if stamp != self._seen and stamp != (0, 0):
            current = FileKeyring.open_or_create(self.path)
            self._keys, self._primary, self._seen = current._keys, current._primary, stamp

    @property
    def primary_id(self) -> str:
        self._fresh()
        return self._primary

    def key_ids(self) -> list[str]:
        self._fresh()
        return super().key_ids()

    def wrap(self, key: bytes, context: bytes) -> bytes:
        self._fresh()
        return super().wrap(key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        self._fresh()
        return super().unwrap(wrapped, context)

    @classmethod
    def open_or_create(cls, path: Path) -> FileKeyring:
        if not path.exists():
            kek_id = new_kek_id()
            ring = cls(path, {kek_id: aead.new_key()}, kek_id)
            ring._save()
            return ring
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyringError(f"{path} must be readable by its owner only (mode 0600), it is {mode:04o}")
        try:
            data = json.loads(path.read_text())
            keys = {k: base64.b64decode(v, validate=True) for k, v in data["keys"].items()}
            primary = data["primary"]
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise KeyringError(f"{path} is not a valid key file: {type(exc).__name__}") from None
        return cls(path, keys, primary)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "primary": self._primary,
            "keys": {k: base64.b64encode(v).decode() for k, v in self._keys.items()},
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(body, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            self._seen = self._stamp()
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def add_primary(self) -> str:
        kek_id = new_kek_id()
        self._keys[kek_id] = aead.new_key()
        self._primary = kek_id
        self._save()
        return kek_id

    def retire(self, kek_id: str) -> None:
        if kek_id not in self._keys:
            raise KeyringError(f"master key {kek_id!r} is not in the keyring")
        if kek_id == self._primary:
            raise KeyringError(f"master key {kek_id!r} is the primary: rotate first")
        del self._keys[kek_id]
        self._save()


def load_keyring(master_keys: str | None, key_file: Path) -> Keyring:
    """VAULT_MASTER_KEYS when set, else the data directory's key file (created on first use)."""
    if master_keys:
        return EnvKeyring.parse(master_keys)
    return FileKeyring.open_or_create(key_file)
