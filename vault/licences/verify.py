"""Verifying a presented licence with nothing but the issuer's published metadata and status list.

`verify_offline` is what an agency runs: no call to the vault or the issuer is needed once it holds the issuer
metadata and a fresh status list token. The vault's own verification uses the same function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nacl.signing

from vault.crypto.errors import CryptoError
from vault.crypto.jws import verify_key_from_jwk
from vault.licences.sdjwt import Verified, verify_presentation
from vault.licences.status_list import StatusListError, read_status_list_jwt

REASON_TEXT = {
    "ok": "genuine and in force",
    "malformed": "not a well-formed SD-JWT licence",
    "wrong_type": "not an EdDSA-signed dc+sd-jwt licence",
    "unknown_issuer_or_key": "signed by an unknown issuer or key",
    "bad_signature": "the issuer's signature does not verify",
    "digest_mismatch": "a disclosed field was altered or does not belong to this licence",
    "duplicate_disclosure": "a field is disclosed twice",
    "expired": "expired",
    "suspended": "suspended by its issuer",
    "revoked": "revoked or superseded by its issuer",
    "status_unavailable": "its status could not be checked",
}


def _keys(metadata: Mapping[str, Any]) -> dict[str, nacl.signing.VerifyKey]:
    keys = {}
    for jwk in metadata.get("jwks", {}).get("keys", []):
        try:
            keys[str(jwk["kid"])] = verify_key_from_jwk(jwk)
        except (CryptoError, KeyError, ValueError, TypeError):
            continue  # an unusable key in the metadata simply does not verify anything
    return keys


def verify_offline(
    presentation: str,
    *,
    issuer_metadata: Mapping[str, Mapping[str, Any]],
    status_lists: Mapping[str, str],
    now: int,
) -> Verified:
    """Verify against issuer metadata (issuer id -> metadata JSON) and status list tokens (uri -> token).

    A licence with a status reference whose list is not given, or whose list does not verify under the same
    issuer's keys, fails with "status_unavailable": revocation is never assumed absent.
    """
    keys_by_issuer = {iss: _keys(meta) for iss, meta in issuer_metadata.items() if meta.get("issuer") == iss}

    def resolve_key(iss: str, kid: str) -> nacl.signing.VerifyKey | None:
        return keys_by_issuer.get(iss, {}).get(kid)

    result_issuer: list[str] = []

    def status_of(uri: str, idx: int) -> int | None:
        token = status_lists.get(uri)
        issuer = result_issuer[0] if result_issuer else None
        if token is None or issuer is None:
            return None
        for key in keys_by_issuer.get(issuer, {}).values():
            try:
                listing = read_status_list_jwt(token, key, now=now, expected_sub=uri, expected_iss=issuer)
                return listing.status(idx)
            except (StatusListError, IndexError):
                continue
        return None

    def resolve_and_remember(iss: str, kid: str) -> nacl.signing.VerifyKey | None:
        result_issuer[:] = [iss]
        return resolve_key(iss, kid)

    return verify_presentation(presentation, resolve_key=resolve_and_remember, now=now, status_of=status_of)


def explain(result: Verified) -> str:
    return REASON_TEXT.get(result.reason, result.reason)
