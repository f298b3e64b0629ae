"""Compact EdDSA JWS: encoding, signing, strict parsing and verification."""

from __future__ import annotations

import json

import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault.crypto import jws
from vault.crypto.errors import CryptoError, JwsError
from vault.crypto.jws import (
    b64url_decode,
    b64url_encode,
    decode_unverified,
    json_object,
    public_jwk,
    sign_compact,
    verify_compact,
    verify_ed25519,
    verify_key_from_jwk,
)

# RFC 8037 appendix A.1 / A.4: the Ed25519 key and the JWS it yields for "Example of Ed25519 signing".
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


@pytest.fixture
def key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(bytes(range(32)))


def _token(key: nacl.signing.SigningKey) -> str:
    return sign_compact({"alg": "EdDSA", "kid": "tp-2025"}, {"姓名": "张三", "准驾车型": "C1"}, key)


def _replace_part(token: str, index: int, new: str) -> str:
    parts = token.split(".")
    parts[index] = new
    return ".".join(parts)


# --- base64url -------------------------------------------------------------------------------------------


@given(st.binary(max_size=200))
def test_b64url_round_trips_without_padding(data: bytes) -> None:
    encoded = b64url_encode(data)
    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    assert b64url_decode(encoded) == data


@pytest.mark.parametrize(
    "text",
    [
        "YQ==",  # padding
        "a+b/",  # the standard alphabet, not the URL-safe one
        "YQ Q",  # whitespace
        "Y",  # a length no encoding can have
        "YR",  # non-zero trailing bits: a second spelling of "a"
        "中文",
    ],
)
def test_b64url_decode_refuses_anything_but_the_canonical_form(text: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(text)


def test_b64url_decode_refuses_non_strings() -> None:
    with pytest.raises(ValueError):
        b64url_decode(b"YQ")  # type: ignore[arg-type]


def test_b64url_of_empty_is_empty() -> None:
    assert b64url_encode(b"") == "" and b64url_decode("") == b""


# --- signing and verifying -------------------------------------------------------------------------------


def test_reproduces_the_rfc8037_example() -> None:
    key = nacl.signing.SigningKey(b64url_decode(RFC8037_D))
    assert b64url_encode(bytes(key.verify_key)) == RFC8037_X
    # Ed25519 is deterministic, so the same header and payload must give the RFC's exact bytes.
    assert sign_compact({"alg": "EdDSA"}, b"Example of Ed25519 signing", key) == RFC8037_JWS
    header, payload = verify_compact(RFC8037_JWS, key.verify_key)
    assert header == {"alg": "EdDSA"} and payload == b"Example of Ed25519 signing"


def test_round_trip_with_chinese_claims(key: nacl.signing.SigningKey) -> None:
    token = _token(key)
    header, payload = verify_compact(token, key.verify_key)
    assert header == {"alg": "EdDSA", "kid": "tp-2025"}
    assert json.loads(payload) == {"姓名": "张三", "准驾车型": "C1"}
    # ensure_ascii=False: the payload carries UTF-8, not \\u escapes.
    assert "张三".encode() in payload and b"\\u" not in payload


def test_payload_json_is_canonical(key: nacl.signing.SigningKey) -> None:
    a = sign_compact({"alg": "EdDSA", "kid": "k"}, {"b": 1, "a": [1, 2]}, key)
    b = sign_compact({"kid": "k", "alg": "EdDSA"}, {"a": [1, 2], "b": 1}, key)
    assert a == b
    assert decode_unverified(a)[1] == b'{"a":[1,2],"b":1}'


def test_decode_unverified_returns_the_signed_parts(key: nacl.signing.SigningKey) -> None:
    token = _token(key)
    header, payload, signing_input, signature = decode_unverified(token)
    assert header["kid"] == "tp-2025"
    assert json.loads(payload) == {"姓名": "张三", "准驾车型": "C1"}
    assert signing_input == token.rsplit(".", 1)[0].encode()
    assert len(signature) == 64
    assert key.verify_key.verify(signing_input, signature) == signing_input


def test_sign_refuses_any_alg_but_eddsa(key: nacl.signing.SigningKey) -> None:
    for header in ({}, {"alg": "none"}, {"alg": "ES256"}, {"alg": "Ed25519"}):
        with pytest.raises(JwsError) as info:
            sign_compact(header, b"x", key)
        assert info.value.reason == "unsupported_alg"


def test_wrong_key_is_a_bad_signature(key: nacl.signing.SigningKey) -> None:
    other = nacl.signing.SigningKey(bytes(32))
    with pytest.raises(JwsError) as info:
        verify_compact(_token(key), other.verify_key)
    assert info.value.reason == "bad_signature"
    assert isinstance(info.value, CryptoError)


def test_tampering_with_any_part_is_detected(key: nacl.signing.SigningKey) -> None:
    token = _token(key)
    forged_payload = b64url_encode(json.dumps({"姓名": "李四", "准驾车型": "A1"}).encode())
    forged_header = b64url_encode(b'{"alg":"EdDSA","kid":"other"}')
    signature = b64url_decode(token.split(".")[2])
    flipped = b64url_encode(bytes([signature[0] ^ 1]) + signature[1:])
    for forged in (
        _replace_part(token, 1, forged_payload),
        _replace_part(token, 0, forged_header),
        _replace_part(token, 2, flipped),
    ):
        with pytest.raises(JwsError) as info:
            verify_compact(forged, key.verify_key)
        assert info.value.reason == "bad_signature"


def test_alg_none_and_other_algs_are_refused_before_any_crypto(key: nacl.signing.SigningKey) -> None:
    token = _token(key)
    for alg in ("none", "HS256", "ES256", None):
        header = b64url_encode(json.dumps({"alg": alg}).encode())
        with pytest.raises(JwsError) as info:
            verify_compact(_replace_part(token, 0, header), key.verify_key)
        assert info.value.reason == "unsupported_alg"


def test_critical_extensions_are_refused(key: nacl.signing.SigningKey) -> None:
    token = sign_compact({"alg": "EdDSA", "crit": ["exp"], "exp": 1}, b"x", key)
    with pytest.raises(JwsError) as info:
        verify_compact(token, key.verify_key)
    assert info.value.reason == "unsupported_crit"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "malformed"),
        ("a.b", "malformed"),
        ("a.b.c.d", "malformed"),
        ("ä.b.c", "malformed"),
        ("eyJ=.e30.AA", "bad_base64url"),
        (b64url_encode(b"not json") + ".e30.AA", "bad_json"),
        (b64url_encode(b"[1]") + ".e30.AA", "bad_json"),
        (b64url_encode(b'{"alg":"EdDSA","alg":"none"}') + ".e30.AA", "bad_json"),
        (b64url_encode(b'{"alg":NaN}') + ".e30.AA", "bad_json"),
        (b64url_encode(bytes([0x7B, 0xFF, 0x7D])) + ".e30.AA", "bad_json"),
    ],
)
def test_malformed_tokens_say_why(token: str, reason: str, key: nacl.signing.SigningKey) -> None:
    with pytest.raises(JwsError) as info:
        verify_compact(token, key.verify_key)
    assert info.value.reason == reason


def test_non_string_token_is_malformed(key: nacl.signing.SigningKey) -> None:
    with pytest.raises(JwsError) as info:
        decode_unverified(b"a.b.c")  # type: ignore[arg-type]
    assert info.value.reason == "malformed"


def test_truncated_signature_is_bad(key: nacl.signing.SigningKey) -> None:
    token = _token(key)
    short = b64url_encode(b64url_decode(token.split(".")[2])[:63])
    with pytest.raises(JwsError) as info:
        verify_compact(_replace_part(token, 2, short), key.verify_key)
    assert info.value.reason == "bad_signature"


def test_verify_compact_goes_through_verify_ed25519(
    key: nacl.signing.SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Wycheproof suite exercises verify_ed25519; this pins that JWS verification really uses it.
    calls: list[tuple[bytes, bytes, bytes]] = []

    def spy(public_key: bytes, message: bytes, signature: bytes) -> bool:
        calls.append((public_key, message, signature))
        return False

    monkeypatch.setattr(jws, "verify_ed25519", spy)
    with pytest.raises(JwsError):
        verify_compact(_token(key), key.verify_key)
    assert len(calls) == 1 and calls[0][0] == bytes(key.verify_key)


def test_json_object_refuses_non_objects() -> None:
    assert json_object(b'{"a":1}') == {"a": 1}
    for data in (b"[]", b'"x"', b"1", b"\xff"):
        with pytest.raises(JwsError):
            json_object(data)


# --- verify_ed25519 --------------------------------------------------------------------------------------


def test_verify_ed25519_never_raises(key: nacl.signing.SigningKey) -> None:
    message = "机动车驾驶证".encode()
    signature = key.sign(message).signature
    public = bytes(key.verify_key)
    assert verify_ed25519(public, message, signature)
    assert not verify_ed25519(public, message + b"!", signature)
    assert not verify_ed25519(public[:31], message, signature)
    assert not verify_ed25519(public, message, signature[:63])
    assert not verify_ed25519(public, message, signature + b"\x00")
    assert not verify_ed25519(bytes(32), message, signature)


# --- JWKs ------------------------------------------------------------------------------------------------


def test_public_jwk_round_trip(key: nacl.signing.SigningKey) -> None:
    jwk = public_jwk(key.verify_key, "tp-2025")
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url_encode(bytes(key.verify_key)),
        "kid": "tp-2025",
        "alg": "EdDSA",
        "use": "sig",
    }
    assert bytes(verify_key_from_jwk(jwk)) == bytes(key.verify_key)


def test_rfc8037_public_jwk_is_accepted() -> None:
    key = verify_key_from_jwk({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X})
    verify_compact(RFC8037_JWS, key)


@pytest.mark.parametrize(
    "change",
    [
        {"kty": "EC"},
        {"crv": "X25519"},
        {"crv": "Ed448"},
        {"x": b64url_encode(bytes(31))},
        {"x": b64url_encode(bytes(33))},
        {"x": "not base64!"},
        {"x": 42},
        {"x": None},
        {"alg": "ES256"},
        {"use": "enc"},
        {"d": RFC8037_D},
    ],
)
def test_verify_key_from_jwk_refuses_other_keys(change: dict[str, object]) -> None:
    jwk: dict[str, object] = {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, **change}
    if change.get("x", "") is None:
        del jwk["x"]
    with pytest.raises(JwsError) as info:
        verify_key_from_jwk(jwk)
    assert info.value.reason == "bad_jwk"
