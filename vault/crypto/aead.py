"""XChaCha20-Poly1305 (IETF variant) through libsodium's bindings in PyNaCl."""

from __future__ import annotations

import nacl.bindings as sodium
import nacl.exceptions
import nacl.utils

from vault.crypto.errors import DecryptionFailed

KEY_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_KEYBYTES
NONCE_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
TAG_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES


def new_key() -> bytes:
    return nacl.utils.random(KEY_BYTES)


def new_nonce() -> bytes:
    """A fresh random 24-byte nonce: large enough that random nonces never collide in practice."""
    return nacl.utils.random(NONCE_BYTES)


def seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate; returns ciphertext followed by the 16-byte tag."""
    if len(key) != KEY_BYTES or len(nonce) != NONCE_BYTES:
        raise ValueError("XChaCha20-Poly1305 needs a 32-byte key and a 24-byte nonce")
    return bytes(sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, nonce, key))


def open_(key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Authenticate and decrypt; any mismatch of key, nonce, bytes or aad raises DecryptionFailed."""
    if len(key) != KEY_BYTES or len(nonce) != NONCE_BYTES or len(sealed) < TAG_BYTES:
        raise DecryptionFailed("ciphertext does not authenticate")
    try:
        return bytes(sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, aad, nonce, key))
    except nacl.exceptions.CryptoError:
        raise DecryptionFailed("ciphertext does not authenticate") from None
