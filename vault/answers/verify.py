"""Offline verification of a signed answer: only the vault's published keys (its JWKS) are needed.

A verifier that holds the JWKS from /oauth/jwks (or the issuer metadata's jwks_uri) checks the signature, the type
and that every member an answer carries is there; a single changed byte makes it fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nacl.signing

from vault.answers.errors import AnswerInvalid
from vault.answers.services import ANSWER_TYPE
from vault.crypto import jws
from vault.crypto.errors import CryptoError

REQUIRED = (
    "iss", "jti", "iat", "answered_at", "agency", "grant", "predicate", "question", "licence_type", "parameters",
    "answer", "licence_status",
)  # fmt: skip


@dataclass(frozen=True)
class VerifiedAnswer:
    kid: str
    claims: Mapping[str, Any]

    @property
    def answer(self) -> bool:
        return bool(self.claims["answer"])


def verify_answer(
    token: str, keys: Mapping[str, nacl.signing.VerifyKey], *, issuer: str | None = None
) -> VerifiedAnswer:
    """The answer's claims if the vault signed it as it stands; raises AnswerInvalid with the reason otherwise.

    `keys` are the vault's public keys by kid (vault.portability.verify.keys_from_jwks reads a JWKS); `issuer`,
    when given, must equal the answer's iss.
    """
    try:
        header, _, _, _ = jws.decode_unverified(token.strip())
    except (CryptoError, ValueError, TypeError) as error:
        raise AnswerInvalid("malformed", f"not a compact JWS: {error}") from None
    if header.get("typ") != ANSWER_TYPE or header.get("alg") != "EdDSA":
        raise AnswerInvalid("wrong_type", f"not a signed answer (typ must be {ANSWER_TYPE}, alg EdDSA)")
    kid = str(header.get("kid"))
    key = keys.get(kid)
    if key is None:
        raise AnswerInvalid("unknown_key", f"no published key with kid {kid!r}")
    try:
        _, payload = jws.verify_compact(token.strip(), key)
    except (CryptoError, ValueError) as error:
        raise AnswerInvalid("bad_signature", f"the signature does not verify: {error}") from None
    try:
        claims: dict[str, Any] = jws.json_object(payload)
    except (CryptoError, ValueError) as error:
        raise AnswerInvalid("malformed", f"the payload is not a JSON object: {error}") from None
    missing = [name for name in REQUIRED if name not in claims]
    if missing or not isinstance(claims.get("answer"), bool):
        raise AnswerInvalid("incomplete", f"the answer lacks {missing[0] if missing else 'a yes or no'}")
    if issuer is not None and claims["iss"] != issuer:
        raise AnswerInvalid("wrong_issuer", f"issued by {claims['iss']!r}, not {issuer!r}")
    return VerifiedAnswer(kid, claims)
