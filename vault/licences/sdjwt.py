"""Issuer-signed licences as SD-JWT VCs (RFC 9901 and IETF SD-JWT VC), every field selectively disclosable.

Issuance: `<issuer JWT>~<disclosure>~...~`, where the JWT carries only salted digests (`_sd`, padded with
decoys) and each disclosure is base64url(JSON [salt, name, value]). A holder presents the same JWT with just
the disclosures it chooses; a verifier recomputes each digest and finds it in the signed `_sd`. Only flat,
top-level object-property disclosures are made or accepted, and no key binding JWT.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard

import nacl.signing

from vault.crypto.errors import JwsError
from vault.crypto.jws import (
    ALG,
    b64url_decode,
    b64url_encode,
    canonical_json,
    decode_unverified,
    json_loads_strict,
    json_object,
    sign_compact,
    verify_compact,
)
from vault.licences.errors import LicenceError
from vault.licences.status_list import INVALID, SUSPENDED, VALID

SD_JWT_TYP = "dc+sd-jwt"
SD_ALG = "sha-256"
SEPARATOR = "~"
_SALT_BYTES = 16
_DECOYS_MIN, _DECOYS_MAX = 2, 6
# Claims the token itself needs (SD-JWT VC forbids disclosing them) and SD-JWT's own markers.
RESERVED_CLAIMS = frozenset(
    {"iss", "iat", "exp", "nbf", "vct", "vct#integrity", "cnf", "status", "_sd", "_sd_alg", "..."}
)

REASONS = (
    "ok",
    "malformed",
    "unknown_issuer_or_key",
    "bad_signature",
    "wrong_type",
    "digest_mismatch",
    "duplicate_disclosure",
    "expired",
    "suspended",
    "revoked",
    "status_unavailable",
)


@dataclass(frozen=True)
class StatusRef:
    """Where a licence's status lives: index `idx` of the Status List Token published at `uri`."""

    idx: int
    uri: str

    def to_claim(self) -> dict[str, Any]:
        """The `status` claim value (Token Status List, Referenced Token section)."""
        return {"status_list": {"idx": self.idx, "uri": self.uri}}


class UnknownField(LicenceError, LookupError):
    """A presentation asked for a field the SD-JWT has no disclosure for; `name` is that field."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the licence has no field {name!r}")
        self.name = name


@dataclass(frozen=True)
class Verified:
    """The outcome of verify_presentation.

    `reason` is one of REASONS. `issuer`, `vct`, `exp` and `status_ref` are filled once the issuer's
    signature has verified (so an expired or revoked licence still says whose it was), and are None
    before that; `claims` holds the disclosed fields and is empty unless `ok`.
    """

    ok: bool
    reason: str
    issuer: str | None = None
    vct: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    exp: int | None = None
    status_ref: StatusRef | None = None


def digest(disclosure: str) -> str:
    """base64url(SHA-256(ASCII of the base64url disclosure)), the value listed in `_sd` (RFC 9901 4.2.3)."""
    return b64url_encode(hashlib.sha256(disclosure.encode("ascii")).digest())


def make_disclosure(name: str, value: Any) -> str:
    """A fresh object-property disclosure [salt, name, value] with a 128-bit random salt."""
    salt = b64url_encode(secrets.token_bytes(_SALT_BYTES))
    return b64url_encode(canonical_json([salt, name, value]))


def _decoy() -> str:
    # A digest of fresh randomness is indistinguishable from a real one (RFC 9901 4.2.5).
    return b64url_encode(hashlib.sha256(secrets.token_bytes(_SALT_BYTES)).digest())


def issue_sd_jwt(
    *,
    issuer: str,
    kid: str,
    key: nacl.signing.SigningKey,
    vct: str,
    fields: Mapping[str, Any],
    iat: int,
    exp: int | None,
    status: StatusRef | None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """Issue an SD-JWT VC whose every entry of `fields` is a disclosure; return `<jwt>~<d1>~...~`.

    The disclosures follow the order of `fields` (bulk issuance pairs them by position, without decoding).

    `extra_claims` are signed in the clear and never disclosable. Raises ValueError for a field or extra
    claim that uses a reserved name, for a name used by both, and for `sub` among the extra claims (a
    licence must not carry a stable subject identifier that links every presentation of it).
    """
    extra = dict(extra_claims or {})
    for name in fields:
        if not isinstance(name, str) or name in RESERVED_CLAIMS or name in extra:
            raise ValueError(f"field name {name!r} is reserved or also an extra claim")
    for name in extra:
        if name in RESERVED_CLAIMS or name == "sub":
            raise ValueError(f"extra claim {name!r} is reserved")
    disclosures = [make_disclosure(name, value) for name, value in fields.items()]
    decoys = [_decoy() for _ in range(_DECOYS_MIN + secrets.randbelow(_DECOYS_MAX - _DECOYS_MIN + 1))]
    payload: dict[str, Any] = {
        **extra,
        "iss": issuer,
        "iat": iat,
        "vct": vct,
        "_sd_alg": SD_ALG,
        # Sorted so the position of a digest says nothing about which field it is.
        "_sd": sorted([digest(d) for d in disclosures] + decoys),
    }
    if exp is not None:
        payload["exp"] = exp
    if status is not None:
        payload["status"] = status.to_claim()
    jwt = sign_compact({"alg": ALG, "typ": SD_JWT_TYP, "kid": kid}, payload, key)
    return SEPARATOR.join([jwt, *disclosures, ""])


def split(sd_jwt: str) -> tuple[str, list[str]]:
    """Split `<jwt>~<d1>~...~` into the JWT and its disclosures; ValueError for any other shape.

    A trailing key binding JWT (`...~<kb-jwt>`) is refused: this profile has none.
    """
    if not isinstance(sd_jwt, str) or not sd_jwt.isascii() or not sd_jwt.endswith(SEPARATOR):
        raise ValueError("not an SD-JWT without key binding")
    jwt, *disclosures = sd_jwt[: -len(SEPARATOR)].split(SEPARATOR)
    if not jwt or "" in disclosures:
        raise ValueError("empty SD-JWT component")
    return jwt, disclosures


def decode_disclosure(disclosure: str) -> tuple[str, str, Any]:
    """The (salt, name, value) of an object-property disclosure; ValueError for anything else."""
    decoded = json_loads_strict(b64url_decode(disclosure))
    if not isinstance(decoded, list) or len(decoded) != 3:
        raise ValueError("not an object-property disclosure")
    salt, name, value = decoded
    if not isinstance(salt, str) or not isinstance(name, str) or name in ("_sd", "..."):
        raise ValueError("bad disclosure salt or name")
    return salt, name, value


def disclosure_map(sd_jwt: str) -> dict[str, str]:
    """Map each disclosed field name to its disclosure, in issuance order; ValueError if malformed."""
    by_name: dict[str, str] = {}
    for disclosure in split(sd_jwt)[1]:
        _, name, _ = decode_disclosure(disclosure)
        if name in by_name:
            raise ValueError(f"two disclosures for {name!r}")
        by_name[name] = disclosure
    return by_name


def present(sd_jwt: str, fields: Iterable[str]) -> str:
    """The issuer JWT with exactly the disclosures of `fields`, as `<jwt>~<d>~...~` (no key binding).

    Raises UnknownField for a name with no disclosure, ValueError if `sd_jwt` is malformed.
    """
    if isinstance(fields, str):
        raise TypeError("fields must be a collection of names, not one string")
    by_name = disclosure_map(sd_jwt)
    wanted = set(fields)
    for name in wanted:
        if name not in by_name:
            raise UnknownField(name)
    chosen = [disclosure for name, disclosure in by_name.items() if name in wanted]
    return SEPARATOR.join([split(sd_jwt)[0], *chosen, ""])


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_digest_list(sd: object) -> TypeGuard[list[str]]:
    # RFC 9901 7.1: a digest that occurs twice in the signed payload makes the whole SD-JWT invalid.
    return isinstance(sd, list) and all(isinstance(d, str) for d in sd) and len(set(sd)) == len(sd)


def _parse_status(claim: object) -> StatusRef:
    if not isinstance(claim, dict) or not isinstance(claim.get("status_list"), dict):
        raise ValueError("status claim without a status_list reference")
    idx, uri = claim["status_list"].get("idx"), claim["status_list"].get("uri")
    if not _is_int(idx) or idx < 0 or not isinstance(uri, str) or not uri:
        raise ValueError("bad status_list reference")
    return StatusRef(idx=idx, uri=uri)


def _has_sd_markers(value: Any) -> bool:
    # Nested disclosures are not in this profile; refusing them keeps us and recursive verifiers in agreement.
    if isinstance(value, dict):
        return "_sd" in value or "..." in value or any(_has_sd_markers(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_sd_markers(v) for v in value)
    return False


def _disclosed_claims(disclosures: list[str], sd: list[str], payload: Mapping[str, Any]) -> dict[str, Any] | str:
    """The disclosed fields, or the failure reason."""
    signed_digests = set(sd)
    seen: set[str] = set()
    claims: dict[str, Any] = {}
    for disclosure in disclosures:
        dg = digest(disclosure)
        if dg in seen:
            return "duplicate_disclosure"
        seen.add(dg)
        if dg not in signed_digests:
            return "digest_mismatch"
        try:
            _, name, value = decode_disclosure(disclosure)
        except ValueError:
            return "malformed"
        if name in claims:
            return "duplicate_disclosure"
        if name in payload or _has_sd_markers(value):
            return "malformed"
        claims[name] = value
    return claims


def _status_reason(value: int | None) -> str:
    if value == VALID:
        return "ok"
    if value == INVALID:
        return "revoked"
    if value == SUSPENDED:
        return "suspended"
    # No list, or a status type we do not know: fail closed rather than guess.
    return "status_unavailable"


def verify_presentation(
    presentation: str,
    *,
    resolve_key: Callable[[str, str], nacl.signing.VerifyKey | None],
    now: int,
    status_of: Callable[[str, int], int | None] | None = None,
) -> Verified:
    """Verify an SD-JWT VC presentation at time `now`; never raises for bad input, returns the reason.

    Checks, in order: shape; header typ dc+sd-jwt and alg EdDSA ("wrong_type"); `resolve_key(iss, kid)`
    ("unknown_issuer_or_key" when it returns None); the signature; payload shape (`vct`, `_sd_alg`
    sha-256, `_sd`); each disclosure's digest appears once in `_sd`, no disclosure twice, no disclosed
    name clashing with a signed plain claim; `exp` (expired once `now` reaches it, as RFC 7519 says);
    then, if the licence has a status and `status_of(uri, idx)` is given, its value: 1 revoked,
    2 suspended, None or an unknown value status_unavailable. Exceptions from the callbacks propagate.
    """
    try:
        jwt, disclosures = split(presentation)
        header, payload_bytes, _, _ = decode_unverified(jwt)
        unverified = json_object(payload_bytes)
    except (ValueError, JwsError):
        return Verified(ok=False, reason="malformed")
    if header.get("typ") != SD_JWT_TYP or header.get("alg") != ALG:
        return Verified(ok=False, reason="wrong_type")
    issuer, kid = unverified.get("iss"), header.get("kid")
    if not isinstance(issuer, str) or not isinstance(kid, str):
        return Verified(ok=False, reason="malformed")
    key = resolve_key(issuer, kid)
    if key is None:
        return Verified(ok=False, reason="unknown_issuer_or_key")
    try:
        verify_compact(jwt, key)
    except JwsError as exc:
        return Verified(ok=False, reason="bad_signature" if exc.reason == "bad_signature" else "malformed")
    payload = unverified  # the bytes it was parsed from are the ones the signature covers
    vct, exp, sd = payload.get("vct"), payload.get("exp"), payload.get("_sd")
    if not isinstance(vct, str) or not (exp is None or _is_int(exp)) or not _is_int(payload.get("iat")):
        return Verified(ok=False, reason="malformed", issuer=issuer)
    try:
        status_ref = _parse_status(payload["status"]) if "status" in payload else None
    except ValueError:
        return Verified(ok=False, reason="malformed", issuer=issuer)
    failed = Verified(ok=False, reason="malformed", issuer=issuer, vct=vct, exp=exp, status_ref=status_ref)
    if payload.get("_sd_alg") != SD_ALG or not _is_digest_list(sd):
        return failed
    claims = _disclosed_claims(disclosures, sd, payload)
    if isinstance(claims, str):
        return replace(failed, reason=claims)
    if exp is not None and now >= exp:
        return replace(failed, reason="expired")
    if status_ref is not None and status_of is not None:
        reason = _status_reason(status_of(status_ref.uri, status_ref.idx))
        if reason != "ok":
            return replace(failed, reason=reason)
    return replace(failed, ok=True, reason="ok", claims=claims)
