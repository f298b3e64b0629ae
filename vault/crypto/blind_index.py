"""Blind indexes: exact lookup of identifiers without decrypting anything.

digest = BLAKE2b-256(key = index key, person = "cv-blind-index", data = kind || 0x00 || normalised value).
The index key is not a KEK, so a leaked index table cannot be brute-forced without it, and rotating KEKs
leaves indexes valid.
"""

from __future__ import annotations

import unicodedata

import nacl.encoding
import nacl.hash

INDEX_KEY_BYTES = 32


def normalise(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip().upper()


def blind_index(index_key: bytes, kind: str, value: str) -> bytes:
    """Keyed BLAKE2b over the normalised value; `kind` separates identifier kinds (person id, licence no)."""
    if len(index_key) != INDEX_KEY_BYTES:
        raise ValueError("the blind-index key must be 32 bytes")
    if "\x00" in kind:
        raise ValueError("an index kind cannot contain NUL")
    return nacl.hash.blake2b(
        kind.encode() + b"\x00" + normalise(value).encode("utf-8"),
        digest_size=32,
        key=index_key,
        person=b"cv-blind-index\x00\x00",
        encoder=nacl.encoding.RawEncoder,
    )
