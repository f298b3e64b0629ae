"""A showing: one short-lived presentation of a licence at a counter, so a screenshot of it is soon worthless.

Format: the SD-JWT presentation followed, in SD-JWT's key-binding slot, by a JWT the vault signs on the
holder's behalf (`<issuer-jwt>~<disclosure>~...~<showing-jwt>`). The showing JWT's header is
`{"alg": "EdDSA", "typ": "vault-showing+jwt", "kid": <vault key id>}` and its payload
`{"iat", "exp", "jti", "sd_hash"[, "nonce"]}`: `sd_hash` is base64url(SHA-256(the presentation up to and including
its last "~")), as for an RFC 9901 KB-JWT, and `nonce` is the counter's code when the counter gave one.
The holder has no key of their own, so this is not an RFC 9901 key binding and a plain SD-JWT verifier rejects
it; the vault's keys are published at /oauth/jwks so a counter can still check it offline.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import nacl.signing

from vault.crypto.errors import JwsError
from vault.crypto.jws import b64url_encode, decode_unverified, json_object, sign_compact, verify_compact
from vault.crypto.services import Signer

SHOWING_TYP = "vault-showing+jwt"
LIFETIME_SECONDS = 300
NONCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: read aloud or typed at a counter
NONCE_LENGTH = 6

SHOWING_REASONS = ("ok", "not_a_showing", "bad_showing_signature", "showing_expired", "wrong_nonce")


def new_nonce() -> str:
    return "".join(secrets.choice(NONCE_ALPHABET) for _ in range(NONCE_LENGTH))


def normalise_nonce(value: str) -> str | None:
    """The counter code as typed (any case, spaces or dashes), or None if it cannot be one."""
    code = "".join(c for c in value.upper() if c not in " -")
    if len(code) != NONCE_LENGTH or any(c not in NONCE_ALPHABET for c in code):
        return None
    return code


def sd_hash(presentation: str) -> str:
    return b64url_encode(hashlib.sha256(presentation.encode("ascii")).digest())


def make_showing(presentation: str, signer: Signer, *, now: int, nonce: str | None = None) -> tuple[str, int]:
    """The presentation with a vault-signed showing JWT appended; returns it and its expiry (unix seconds)."""
    if not presentation.endswith("~"):
        raise ValueError("not an SD-JWT presentation")
    expires = now + LIFETIME_SECONDS
    claims: dict[str, object] = {"iat": now, "exp": expires, "jti": secrets.token_urlsafe(12)}
    claims["sd_hash"] = sd_hash(presentation)
    if nonce is not None:
        claims["nonce"] = nonce
    jwt = sign_compact({"alg": "EdDSA", "typ": SHOWING_TYP, "kid": signer.kid}, claims, signer.key)
    return presentation + jwt, expires


@dataclass(frozen=True)
class ShowingCheck:
    """`reason` is one of SHOWING_REASONS; `presentation` is the SD-JWT part whenever the text had the shape."""

    reason: str
    presentation: str | None = None
    expires: int | None = None
    nonce: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


def check_showing(
    text: str, *, vault_keys: Mapping[str, nacl.signing.VerifyKey], now: int, nonce: str | None = None
) -> ShowingCheck:
    """Check the showing JWT of `text` (never raises for bad input): signed by a vault key, for this very
    presentation, not expired, and for this counter when the showing names one and `nonce` is the counter's."""
    text = text.strip()
    if not text.isascii() or "~" not in text or text.endswith("~"):
        return ShowingCheck("not_a_showing", text if text.endswith("~") else None)
    presentation, _, jwt = text.rpartition("~")
    presentation += "~"
    try:
        header = decode_unverified(jwt)[0]
        key = vault_keys.get(str(header.get("kid")))
        if header.get("typ") != SHOWING_TYP or key is None:
            return ShowingCheck("bad_showing_signature", presentation)
        claims = json_object(verify_compact(jwt, key)[1])
    except (JwsError, ValueError):
        return ShowingCheck("bad_showing_signature", presentation)
    expires, bound = claims.get("exp"), claims.get("nonce")
    if claims.get("sd_hash") != sd_hash(presentation) or not isinstance(expires, int):
        return ShowingCheck("bad_showing_signature", presentation)
    bound_nonce = bound if isinstance(bound, str) else None
    if now >= expires:
        return ShowingCheck("showing_expired", presentation, expires, bound_nonce)
    if bound_nonce is not None and nonce is not None and bound_nonce != nonce:
        return ShowingCheck("wrong_nonce", presentation, expires, bound_nonce)
    return ShowingCheck("ok", presentation, expires, bound_nonce)


# what a counter is told, in order of precedence
VERDICTS = (
    "in_force",  # genuine, in force, a fresh showing (for this counter when it gave a code)
    "not_fresh",  # genuine and in force, but a plain presentation that never expires: ask for a fresh one
    "presentation_expired",  # the showing's minutes are up
    "wrong_counter",  # made for another counter's code
    "expired",  # the licence itself has expired
    "suspended",
    "revoked",
    "unknown",  # its status could not be checked
    "not_genuine",  # a signature or a digest does not verify, or it is not a licence at all
)


def verdict(check: ShowingCheck, licence_reason: str | None) -> str:
    """One word for the counter from the showing's check and the licence's own (sdjwt REASONS, None if unchecked)."""
    if check.reason == "bad_showing_signature" or licence_reason is None:
        return "not_genuine"
    if licence_reason in ("expired", "suspended", "revoked"):
        return licence_reason
    if licence_reason == "status_unavailable":
        return "unknown"
    if licence_reason != "ok":
        return "not_genuine"
    return {
        "ok": "in_force",
        "not_a_showing": "not_fresh",
        "showing_expired": "presentation_expired",
        "wrong_nonce": "wrong_counter",
    }[check.reason]
