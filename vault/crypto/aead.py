"""XChaCha20-Poly1305 (IETF variant) through libsodium's bindings in PyNaCl."""

from __future__ import annotations

from collections.abc import Sequence

import nacl.bindings as sodium
import nacl.exceptions
import nacl.utils

# PyNaCl's public function checks and formats its messages on every call, which costs more than sealing a short
# value; seal_many calls the same libsodium function through the same binding, checking its inputs once
from nacl._sodium import ffi, lib

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


def seal_many(key: bytes, items: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """(nonce, seal()) of each (plaintext, aad) under one key, each with a fresh random nonce: bulk issuance's path."""
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError("XChaCha20-Poly1305 needs a 32-byte key")
    nonces = nacl.utils.random(NONCE_BYTES * len(items))
    clen = ffi.new("unsigned long long *")
    sealed = []
    for n, (plaintext, aad) in enumerate(items):
        if not isinstance(plaintext, bytes) or not isinstance(aad, bytes) or not aad:
            raise TypeError("seal_many takes bytes, with associated data")
        nonce = nonces[n * NONCE_BYTES : (n + 1) * NONCE_BYTES]
        out = ffi.new("unsigned char[]", len(plaintext) + TAG_BYTES)
        if lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
            out, clen, plaintext, len(plaintext), aad, len(aad), ffi.NULL, nonce, key
        ):
            raise nacl.exceptions.CryptoError("encryption failed")
        sealed.append((nonce, ffi.buffer(out, clen[0])[:]))
    return sealed


def open_(key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Authenticate and decrypt; any mismatch of key, nonce, bytes or aad raises DecryptionFailed."""
    if len(key) != KEY_BYTES or len(nonce) != NONCE_BYTES or len(sealed) < TAG_BYTES:
        raise DecryptionFailed("ciphertext does not authenticate")
    try:
        return bytes(sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, aad, nonce, key))
    except nacl.exceptions.CryptoError:
        raise DecryptionFailed("ciphertext does not authenticate") from None
