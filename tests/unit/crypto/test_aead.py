"""XChaCha20-Poly1305 against the draft's known answer and every Wycheproof vector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vault.crypto import aead
from vault.crypto.errors import DecryptionFailed

VECTORS = (
    Path(__file__).resolve().parents[3].parent / "shared" / "testvectors" / "wycheproof_xchacha20_poly1305_test.json"
)

# draft-irtf-cfrg-xchacha-03, appendix A.3.1
KAT_PLAINTEXT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
    b"sunscreen would be it."
)
KAT_AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
KAT_KEY = bytes.fromhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
KAT_NONCE = bytes.fromhex("404142434445464748494a4b4c4d4e4f5051525354555657")
KAT_CIPHERTEXT = bytes.fromhex(
    "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39"
    "ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
    "21f9664c97637da9768812f615c68b13b52e"
)
KAT_TAG = bytes.fromhex("c0875924c1c7987947deafd8780acf49")


def test_known_answer_a_3_1() -> None:
    sealed = aead.seal(KAT_KEY, KAT_NONCE, KAT_PLAINTEXT, KAT_AAD)
    assert sealed == KAT_CIPHERTEXT + KAT_TAG
    assert aead.open_(KAT_KEY, KAT_NONCE, sealed, KAT_AAD) == KAT_PLAINTEXT


def _cases() -> list[dict[str, str]]:
    data = json.loads(VECTORS.read_text())
    return [dict(t, ivSize=g["ivSize"]) for g in data["testGroups"] for t in g["tests"]]


def test_every_wycheproof_vector_ran() -> None:
    data = json.loads(VECTORS.read_text())
    assert len(_cases()) == data["numberOfTests"] == 315


@pytest.mark.parametrize("case", _cases(), ids=lambda c: f"tc{c['tcId']}")
def test_wycheproof(case: dict[str, str]) -> None:
    key, nonce = bytes.fromhex(case["key"]), bytes.fromhex(case["iv"])
    msg, aad = bytes.fromhex(case["msg"]), bytes.fromhex(case["aad"])
    sealed = bytes.fromhex(case["ct"]) + bytes.fromhex(case["tag"])
    if case["result"] == "valid":
        assert aead.seal(key, nonce, msg, aad) == sealed
        assert aead.open_(key, nonce, sealed, aad) == msg
        return
    with pytest.raises((DecryptionFailed, ValueError)):
        if aead.open_(key, nonce, sealed, aad) != msg:
            raise DecryptionFailed("decrypted to something else")


def test_nonces_are_fresh_and_24_bytes() -> None:
    nonces = {aead.new_nonce() for _ in range(1000)}
    assert len(nonces) == 1000
    assert {len(n) for n in nonces} == {24}


def test_seal_many_seals_as_seal_does_each_with_its_own_nonce() -> None:
    items = [(KAT_PLAINTEXT, KAT_AAD), (b"", b"a"), ("测试".encode(), b"field:name")]
    sealed = aead.seal_many(KAT_KEY, items)
    assert len({nonce for nonce, _ in sealed}) == 3
    for (plaintext, aad), (nonce, ciphertext) in zip(items, sealed, strict=True):
        assert ciphertext == aead.seal(KAT_KEY, nonce, plaintext, aad)
        assert aead.open_(KAT_KEY, nonce, ciphertext, aad) == plaintext
    with pytest.raises(ValueError):
        aead.seal_many(KAT_KEY[:31], items)
    with pytest.raises(TypeError):
        aead.seal_many(KAT_KEY, [(b"x", b"")])
