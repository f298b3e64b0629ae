"""Compact JWS with EdDSA over Ed25519 (RFC 7515, RFC 8037), built on PyNaCl.

Only `alg: EdDSA` is ever produced or accepted: the algorithm is pinned by the verifier, never taken on
trust from the token, so "none", HMAC-with-public-key and similar downgrades cannot happen.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

import nacl.exceptions
import nacl.signing

from vault.crypto.errors import JwsError

ALG = "EdDSA"
_ED25519_KEY_BYTES = 32
_ED25519_SIG_BYTES = 64
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    """Encode bytes as base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; ValueError unless `text` is the one canonical encoding of its bytes."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not unpadded base64url") from exc
    # Non-zero trailing bits would give one value several encodings, and so a token several forms.
    if b64url_encode(data) != text:
        raise ValueError("non-canonical base64url")
    return data


def canonical_json(value: Any) -> bytes:
    """Serialise `value` as compact, key-sorted UTF-8 JSON, so equal values always sign the same bytes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False).encode("utf-8")


def _no_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        # Parsers disagree on which duplicate wins, so a duplicate is a way to show two readers two claims.
        if name in obj:
            raise ValueError(f"duplicate member {name!r}")
        obj[name] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_loads_strict(data: bytes | str) -> Any:
    """Parse JSON strictly: UTF-8, no duplicate member names, no NaN or Infinity; ValueError otherwise."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return json.loads(text, object_pairs_hook=_no_duplicate_members, parse_constant=_reject_constant)


def json_object(data: bytes) -> dict[str, Any]:
    """Parse `data` as a strict JSON object (see json_loads_strict); raise JwsError("bad_json") otherwise."""
    try:
        value = json_loads_strict(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise JwsError("bad_json") from exc
    if not isinstance(value, dict):
        raise JwsError("bad_json")
    return value


def sign_compact(header: Mapping[str, Any], payload: Mapping[str, Any] | bytes, key: nacl.signing.SigningKey) -> str:
    """Sign `payload` (a JSON object, serialised canonically, or raw bytes) and return a compact JWS.

    Raises JwsError("unsupported_alg") unless header["alg"] is "EdDSA".
    """
    if header.get("alg") != ALG:
        raise JwsError("unsupported_alg")
    payload_bytes = payload if isinstance(payload, bytes) else canonical_json(dict(payload))
    signing_input = f"{b64url_encode(canonical_json(dict(header)))}.{b64url_encode(payload_bytes)}"
    signature = key.sign(signing_input.encode("ascii")).signature
    return f"{signing_input}.{b64url_encode(signature)}"


def decode_unverified(token: str) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """Split a compact JWS into (header, payload bytes, signing input, signature) WITHOUT checking it.

    Raises JwsError("malformed"), ("bad_base64url") or ("bad_json"). Nothing returned is trustworthy until
    verify_compact has succeeded.
    """
    if not isinstance(token, str) or not token.isascii():
        raise JwsError("malformed")
    parts = token.split(".")
    if len(parts) != 3:
        raise JwsError("malformed")
    try:
        header_bytes, payload, signature = (b64url_decode(part) for part in parts)
    except ValueError as exc:
        raise JwsError("bad_base64url") from exc
    header = json_object(header_bytes)
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return header, payload, signing_input, signature


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True only if `signature` is a valid Ed25519 signature of `message` under the 32-byte `public_key`.

    Never raises: keys or signatures of the wrong length, non-canonical S and small-order points are all
    simply False (libsodium's strict verification).
    """
    if len(public_key) != _ED25519_KEY_BYTES or len(signature) != _ED25519_SIG_BYTES:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return False
    return True


def verify_compact(token: str, key: nacl.signing.VerifyKey) -> tuple[dict[str, Any], bytes]:
    """Verify a compact EdDSA JWS under `key` and return (header, payload bytes).

    Raises JwsError with reason "malformed", "bad_base64url", "bad_json", "unsupported_alg",
    "unsupported_crit" or "bad_signature".
    """
    header, payload, signing_input, signature = decode_unverified(token)
    if header.get("alg") != ALG:
        raise JwsError("unsupported_alg")
    # RFC 7515 4.1.11: we understand no extensions, so any critical one means we must refuse.
    if "crit" in header:
        raise JwsError("unsupported_crit")
    if not verify_ed25519(bytes(key), signing_input, signature):
        raise JwsError("bad_signature")
    return header, payload


def public_jwk(verify_key: nacl.signing.VerifyKey, kid: str) -> dict[str, str]:
    """The public JWK (RFC 8037 OKP) for `verify_key`, labelled with `kid`."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url_encode(bytes(verify_key)),
        "kid": kid,
        "alg": ALG,
        "use": "sig",
    }


def verify_key_from_jwk(jwk: Mapping[str, Any]) -> nacl.signing.VerifyKey:
    """The VerifyKey of a public Ed25519 JWK; raise JwsError("bad_jwk") for anything else.

    A JWK carrying the private part "d" is refused, so a private key never travels as a public one.
    """
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or "d" in jwk:
        raise JwsError("bad_jwk")
    if jwk.get("alg", ALG) != ALG or jwk.get("use", "sig") != "sig":
        raise JwsError("bad_jwk")
    x_text = jwk.get("x")
    if not isinstance(x_text, str):
        raise JwsError("bad_jwk")
    try:
        x = b64url_decode(x_text)
    except ValueError as exc:
        raise JwsError("bad_jwk") from exc
    if len(x) != _ED25519_KEY_BYTES:
        raise JwsError("bad_jwk")
    return nacl.signing.VerifyKey(x)
