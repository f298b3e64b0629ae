"""Contracts of the crypto domain, so a KMS can replace the local keyring without touching callers."""

from __future__ import annotations

from typing import Protocol


class MasterKeyProvider(Protocol):
    """Holds the master keys (KEKs): the primary wraps, every key it holds unwraps."""

    @property
    def primary_id(self) -> str:
        """Id of the key that wraps new data keys."""
        ...

    def key_ids(self) -> list[str]:
        """Every key id this provider can unwrap with, primary first."""
        ...

    def wrap(self, key: bytes, context: bytes) -> bytes:
        """Wrap `key` under the primary KEK, bound to `context`; the KEK id travels in the result."""
        ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """Unwrap; raises UnknownKey for a KEK id not held, DecryptionFailed for tampering or wrong context."""
        ...

    def add_primary(self) -> str:
        """Create a new primary KEK and return its id; raises KeyringError where keys are managed outside."""
        ...

    def retire(self, kek_id: str) -> None:
        """Forget a non-primary KEK; the caller must first prove that nothing is wrapped by it."""
        ...
