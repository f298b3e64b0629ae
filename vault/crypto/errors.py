"""Errors raised by the cryptographic helpers in vault.crypto."""


class CryptoError(Exception):
    """Base class for every failure raised by vault.crypto."""


class JwsError(CryptoError):
    """A compact JWS could not be built, parsed or verified; `reason` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DecryptionFailed(CryptoError):
    """A ciphertext did not authenticate: wrong key, wrong context, or tampered bytes."""


class UnknownKey(CryptoError):
    """A ciphertext or wrapped key names a key id this vault does not hold."""


class KeyDestroyed(CryptoError):
    """The owner's data key was destroyed by an erasure: their data is gone for good."""


class KeyringError(CryptoError):
    """The master keyring is missing, malformed or cannot be changed as asked."""
