"""Offline verification: licence presentations (SD-JWT VC) and consent receipts, with no call to the vault per check.

What verification needs (the vault's JWKS, issuer metadata, status list tokens) is fetched once and cached for as
long as the publisher says: HTTP `Cache-Control: max-age` and, for a status list, its `ttl` and `exp` claims.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from vault_sdk.errors import VerificationError

SD_JWT_TYP = "dc+sd-jwt"
RECEIPT_TYP = "consent-receipt+jwt"
ANSWER_TYP = "predicate-answer+jwt"
STATUS_LIST_TYP = "statuslist+jwt"
SHOWING_TYP = "vault-showing+jwt"
ALGORITHMS = ["EdDSA", "Ed25519"]
VALID, INVALID, SUSPENDED = 0, 1, 2
DEFAULT_TTL = 300
MAX_LIST_BYTES = 16 * 1024 * 1024
_MAX_AGE = re.compile(r"max-age=(\d+)")


def b64url_decode(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _strict_json(data: bytes) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            raise ValueError("duplicate member")
        return result

    return json.loads(data, object_pairs_hook=no_duplicates)


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Presentation:
    """The outcome of verifying one presented licence. `ok` only if genuine, unaltered, unexpired and in force."""

    ok: bool
    reason: str  # ok, malformed, wrong_type, unknown_issuer_or_key, bad_signature, digest_mismatch, expired, ...
    issuer: str | None = None
    vct: str | None = None
    exp: int | None = None
    claims: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Cached:
    value: Any
    until: float


def _signature_verifies(token: str, jwk: Mapping[str, Any]) -> tuple[dict[str, Any], bytes] | None:
    """The (header, payload) of an EdDSA compact JWS verified under `jwk`; None if it does not verify."""
    try:
        key = OKPKey.import_key(dict(jwk))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            verified = jws.deserialize_compact(token, key, algorithms=ALGORITHMS)
    except (JoseError, ValueError, TypeError):
        return None
    return dict(verified.headers()), verified.payload


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    header = _strict_json(b64url_decode(parts[0]))
    if not isinstance(header, dict):
        raise ValueError("header is not an object")
    return header


def _payload(token: str) -> dict[str, Any]:
    payload = _strict_json(b64url_decode(token.split(".")[1]))
    if not isinstance(payload, dict):
        raise ValueError("payload is not an object")
    return payload


def metadata_url(issuer: str) -> str:
    """SD-JWT VC issuer metadata: `/.well-known/jwt-vc-issuer` inserted between the host and the issuer's path."""
    parts = urlsplit(issuer)
    return urlunsplit((parts.scheme, parts.netloc, "/.well-known/jwt-vc-issuer" + parts.path, "", ""))


def status_at(packed: bytes, bits: int, idx: int) -> int:
    if not 0 <= idx < len(packed) * 8 // bits:
        raise IndexError(idx)
    offset = idx * bits
    return (packed[offset // 8] >> (offset % 8)) & ((1 << bits) - 1)


def inflate(lst: str) -> bytes:
    inflater = zlib.decompressobj()
    packed = inflater.decompress(b64url_decode(lst), MAX_LIST_BYTES)
    if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
        raise ValueError("status list is truncated, too large or has trailing data")
    return packed


def verify_sd_jwt(
    presentation: str,
    *,
    keys_of: Callable[[str], Mapping[str, Mapping[str, Any]]],
    status_of: Callable[[str, str, int], int | None] | None,
    now: int,
) -> Presentation:
    """Verify a presentation `<jwt>~<disclosure>~...~` (no key binding) issued as `dc+sd-jwt`, EdDSA.

    `keys_of(issuer)` gives that issuer's public JWKs by kid; `status_of(issuer, uri, idx)` the status value.
    """
    try:
        if not presentation.isascii() or not presentation.endswith("~"):
            raise ValueError("not an SD-JWT without key binding")
        jwt, *disclosures = presentation[:-1].split("~")
        if not jwt or "" in disclosures:
            raise ValueError("empty component")
        header, unverified = _header(jwt), _payload(jwt)
    except (ValueError, UnicodeDecodeError):
        return Presentation(False, "malformed")
    if header.get("typ") != SD_JWT_TYP or header.get("alg") not in ALGORITHMS:
        return Presentation(False, "wrong_type")
    issuer, kid = unverified.get("iss"), header.get("kid")
    if not isinstance(issuer, str) or not isinstance(kid, str):
        return Presentation(False, "malformed")
    jwk = keys_of(issuer).get(kid)
    if jwk is None:
        return Presentation(False, "unknown_issuer_or_key", issuer)
    if _signature_verifies(jwt, jwk) is None:
        return Presentation(False, "bad_signature", issuer)
    payload = unverified
    vct, exp, sd = payload.get("vct"), payload.get("exp"), payload.get("_sd")
    failed = Presentation(False, "malformed", issuer, vct if isinstance(vct, str) else None)
    if not isinstance(vct, str) or not (exp is None or _int(exp)) or not _int(payload.get("iat")):
        return failed
    if payload.get("_sd_alg") != "sha-256" or not isinstance(sd, list) or len(set(sd)) != len(sd):
        return failed
    claims: dict[str, Any] = {}
    seen: set[str] = set()
    for disclosure in disclosures:
        digest = base64.urlsafe_b64encode(hashlib.sha256(disclosure.encode()).digest()).rstrip(b"=").decode()
        if digest in seen:
            return Presentation(False, "duplicate_disclosure", issuer, vct)
        seen.add(digest)
        if digest not in sd:
            return Presentation(False, "digest_mismatch", issuer, vct)
        try:
            decoded = _strict_json(b64url_decode(disclosure))
        except (ValueError, UnicodeDecodeError):
            return failed
        if not isinstance(decoded, list) or len(decoded) != 3 or not isinstance(decoded[1], str):
            return failed
        _, name, value = decoded
        if name in ("_sd", "...") or name in payload or name in claims:
            return failed
        claims[name] = value
    if exp is not None and now >= exp:
        return Presentation(False, "expired", issuer, vct, exp)
    status = payload.get("status")
    if status is not None:
        reference = status.get("status_list") if isinstance(status, dict) else None
        uri = reference.get("uri") if isinstance(reference, dict) else None
        idx = reference.get("idx") if isinstance(reference, dict) else None
        if not isinstance(uri, str) or not _int(idx) or idx < 0:  # type: ignore[operator]
            return failed
        value = status_of(issuer, uri, int(idx)) if status_of is not None else None  # type: ignore[arg-type]
        reason = {VALID: "ok", INVALID: "revoked", SUSPENDED: "suspended"}.get(value, "status_unavailable")  # type: ignore[arg-type]
        if reason != "ok":
            return Presentation(False, reason, issuer, vct, exp)
    return Presentation(True, "ok", issuer, vct, exp, claims)


class Verifier:
    """Verifies presentations and consent receipts offline, fetching keys and status lists into a TTL cache."""

    def __init__(self, issuer: str, http: httpx2.Client | None = None, clock: Callable[[], float] = time.time) -> None:
        self.issuer = issuer.rstrip("/")
        self.http = http or httpx2.Client(timeout=10)
        self.clock = clock
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self.fetches = 0  # how many documents were fetched (the rest came from the cache)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, url: str, parse: Callable[[httpx2.Response], tuple[Any, float | None]]) -> Any:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None and cached.until > now:
                return cached.value
        response = self.http.get(url)
        self.fetches += 1
        if response.status_code != 200:
            raise VerificationError("unavailable", f"{url} answered {response.status_code}", response.status_code)
        value, ttl = parse(response)
        match = _MAX_AGE.search(response.headers.get("cache-control", ""))
        max_age = float(match.group(1)) if match else DEFAULT_TTL
        lifetime = min(max_age, ttl) if ttl is not None else max_age
        with self._lock:
            self._cache[url] = _Cached(value, now + max(lifetime, 0))
        return value

    # the vault's keys and consent receipts

    def vault_keys(self) -> dict[str, dict[str, Any]]:
        def parse(response: httpx2.Response) -> tuple[Any, float | None]:
            return {str(k.get("kid")): k for k in response.json().get("keys", [])}, None

        keys: dict[str, dict[str, Any]] = self._get(f"{self.issuer}/oauth/jwks", parse)
        return keys

    def _vault_signed(self, token: str, typ: str, what: str) -> dict[str, Any]:
        """The claims of a JWS of type `typ` that this vault signed with a key it publishes; raises otherwise."""
        try:
            header = _header(token)
        except (ValueError, UnicodeDecodeError):
            raise VerificationError("malformed", "not a compact JWS") from None
        if header.get("typ") != typ or header.get("alg") not in ALGORITHMS:
            raise VerificationError("wrong_type", f"not an EdDSA {typ}")
        jwk = self.vault_keys().get(str(header.get("kid")))
        if jwk is None:
            raise VerificationError("unknown_key", "signed by a key the vault does not publish")
        verified = _signature_verifies(token, jwk)
        if verified is None:
            raise VerificationError("bad_signature", "the vault's signature does not verify")
        claims = _strict_json(verified[1])
        if not isinstance(claims, dict) or claims.get("iss") != self.issuer:
            raise VerificationError("wrong_issuer", f"the {what} was not signed by this vault")
        return claims

    def verify_receipt(self, receipt: str, *, agency: str | None = None, grant_id: str | None = None) -> dict[str, Any]:
        """The claims of a vault-signed consent receipt; raises VerificationError if it is not one."""
        claims = self._vault_signed(receipt, RECEIPT_TYP, "receipt")
        if agency is not None and claims.get("agency") != agency:
            raise VerificationError("wrong_agency", "the receipt is another agency's")
        if grant_id is not None and claims.get("jti") != grant_id:
            raise VerificationError("wrong_grant", "the receipt is for another grant")
        return claims

    def verify_answer(self, answer: str, *, agency: str | None = None) -> dict[str, Any]:
        """The claims of a vault-signed answer to a `check` (yes or no, no value); raises VerificationError if not."""
        claims = self._vault_signed(answer, ANSWER_TYP, "answer")
        if not isinstance(claims.get("answer"), bool):
            raise VerificationError("incomplete", "the answer carries no yes or no")
        if agency is not None and claims.get("agency") != agency:
            raise VerificationError("wrong_agency", "the answer was given to another agency")
        return claims

    # licence presentations

    def issuer_keys(self, issuer: str) -> dict[str, dict[str, Any]]:
        def parse(response: httpx2.Response) -> tuple[Any, float | None]:
            body = response.json()
            if body.get("issuer") != issuer:
                return {}, None  # metadata for another issuer vouches for nothing
            return {str(k.get("kid")): k for k in body.get("jwks", {}).get("keys", [])}, None

        try:
            keys: dict[str, dict[str, Any]] = self._get(metadata_url(issuer), parse)
        except (VerificationError, httpx2.HTTPError, ValueError):
            return {}
        return keys

    def status(self, issuer: str, uri: str, idx: int) -> int | None:
        """The status at `idx` of the list at `uri`, verified under the issuer's keys; None if it cannot be."""
        keys = self.issuer_keys(issuer)

        def parse(response: httpx2.Response) -> tuple[Any, float | None]:
            token = response.text.strip()
            header = _header(token)
            jwk = keys.get(str(header.get("kid")))
            verified = _signature_verifies(token, jwk) if jwk is not None else None
            if verified is None or header.get("typ") != STATUS_LIST_TYP:
                raise VerificationError("status_unavailable", "the status list does not verify")
            claims = _strict_json(verified[1])
            if claims.get("sub") != uri or claims.get("iss") not in (None, issuer) or not _int(claims.get("exp")):
                raise VerificationError("status_unavailable", "the status list is for another list or issuer")
            listing = claims.get("status_list") or {}
            packed, bits = inflate(str(listing.get("lst", ""))), int(listing.get("bits", 0))
            if bits not in (1, 2, 4, 8):
                raise VerificationError("status_unavailable", "the status list's bits are not 1, 2, 4 or 8")
            ttl = claims.get("ttl")
            lifetime = float(claims["exp"]) - self.clock()
            if _int(ttl):
                lifetime = min(lifetime, float(ttl))
            return (packed, bits, int(claims["exp"])), lifetime

        try:
            packed, bits, exp = self._get(uri, parse)
            if self.clock() >= exp:
                return None
            return status_at(packed, bits, idx)
        except (VerificationError, httpx2.HTTPError, ValueError, IndexError, KeyError, TypeError, zlib.error):
            return None

    def verify_showing(self, text: str, nonce: str | None = None) -> Presentation:
        """Verify what a person's QR code holds: a presentation plus the vault's short-lived showing JWT.

        Reasons beyond verify_presentation's: not_a_showing, bad_showing_signature, showing_expired, wrong_nonce
        (the showing was made for another counter's code).
        """
        presentation, _, showing = text.rpartition("~")
        if not presentation or not showing:
            return Presentation(False, "not_a_showing")
        presentation += "~"
        try:
            header = _header(showing)
        except (ValueError, UnicodeDecodeError):
            return Presentation(False, "not_a_showing")
        jwk = self.vault_keys().get(str(header.get("kid")))
        verified = _signature_verifies(showing, jwk) if jwk is not None else None
        if header.get("typ") != SHOWING_TYP or verified is None:
            return Presentation(False, "bad_showing_signature")
        claims = _strict_json(verified[1])
        digest = base64.urlsafe_b64encode(hashlib.sha256(presentation.encode()).digest()).rstrip(b"=").decode()
        if not isinstance(claims, dict) or claims.get("sd_hash") != digest or not _int(claims.get("exp")):
            return Presentation(False, "bad_showing_signature")
        if self.clock() >= claims["exp"]:
            return Presentation(False, "showing_expired")
        bound = claims.get("nonce")
        if isinstance(bound, str) and nonce is not None and bound != nonce:
            return Presentation(False, "wrong_nonce")
        return self.verify_presentation(presentation)

    def verify_presentation(self, presentation: str) -> Presentation:
        """Verify one presented licence; never raises for bad input (see `reason`)."""
        return verify_sd_jwt(presentation, keys_of=self.issuer_keys, status_of=self.status, now=int(self.clock()))
