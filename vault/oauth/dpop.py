"""DPoP (RFC 9449): proofs of possession of an agency's key, checked at the token endpoint and at /graphql.

A proof is a JWS of type `dpop+jwt` signed with the private key whose public JWK is in its header. It names the
HTTP method and URL it was made for (`htm`, `htu`), when (`iat`), a unique `jti` and, at a resource, the hash of
the access token it accompanies (`ath`). Tokens issued against a proof are bound to the key's RFC 7638 thumbprint
(`cnf.jkt`) and accepted only with a fresh proof signed by that key.

Each proof is accepted once: its `jti` is claimed in the database (a primary key, kept until the proof could no
longer be accepted anyway), so a replay is refused by whichever worker or process it reaches.
"""

from __future__ import annotations

import base64
import hashlib
import re
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from vault import jsonbounds
from vault.oauth.models import DpopProof

ALGORITHMS = ["ES256", "EdDSA", "Ed25519"]  # asymmetric only; "EdDSA" is RFC 8037's name for Ed25519
PROOF_TYPE = "dpop+jwt"
MAX_AGE = timedelta(seconds=60)  # a proof is accepted this long after its iat ...
MAX_SKEW = timedelta(seconds=10)  # ... and this far ahead of the vault's clock
MAX_PROOF_LENGTH = 4096
KEY_TYPES: dict[str, type[ECKey] | type[OKPKey]] = {"EC": ECKey, "OKP": OKPKey}
_THUMBPRINT = re.compile(r"^[A-Za-z0-9_-]{43}$")


class InvalidProof(Exception):
    """A DPoP proof that is missing, malformed, for another request, another key or token, stale, or replayed."""

    error = "invalid_dpop_proof"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True)
class Proof:
    jkt: str  # the RFC 7638 SHA-256 thumbprint of the proof's public key
    jti: str
    issued_at: datetime


def access_token_hash(access_token: str) -> str:
    """`ath`: the base64url SHA-256 of the access token (RFC 9449 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()).rstrip(b"=").decode()


def normalise_htu(url: str) -> str:
    """The URL a proof names, compared without query and fragment (RFC 9449 §4.3), scheme and host lower-cased."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))


def is_thumbprint(value: str) -> bool:
    """Whether `value` has the form of a base64url SHA-256 thumbprint (43 characters)."""
    return bool(_THUMBPRINT.match(value))


def thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 thumbprint of a public JWK (EC P-256 or OKP Ed25519)."""
    return _public_key(jwk).thumbprint()


def _public_key(jwk: Any) -> ECKey | OKPKey:
    if not isinstance(jwk, dict):
        raise InvalidProof("the proof's header must carry the public key as a JWK object (jwk)")
    if "d" in jwk:
        raise InvalidProof("the proof's jwk holds a private key: send only the public key")
    kind = KEY_TYPES.get(str(jwk.get("kty")))
    if kind is None:
        raise InvalidProof("the proof's key must be an EC (P-256) or OKP (Ed25519) public key")
    try:
        key = kind.import_key(jwk)
    except (JoseError, ValueError, TypeError) as error:
        raise InvalidProof("the proof's jwk is not a usable public key") from error
    if key.as_dict(private=False).get("crv") not in ("P-256", "Ed25519"):
        raise InvalidProof("the proof's key must be on curve P-256 or Ed25519")
    return key


def verify(proof: str | None, *, method: str, url: str, now: datetime, access_token: str | None = None) -> Proof:
    """Check one proof for this request (signature, type, key, htm, htu, iat window and, at a resource, ath).

    The jti is not claimed here: call `claim` in a unit of work that commits before the request is answered.
    """
    if not proof:
        raise InvalidProof("a DPoP proof is required (the DPoP header)")
    if len(proof) > MAX_PROOF_LENGTH or proof.count(".") != 2:
        raise InvalidProof("the DPoP header is not one compact JWS")
    try:
        header = jws.extract_compact(proof.encode()).protected
    except (JoseError, ValueError) as error:
        raise InvalidProof("the DPoP header is not one compact JWS") from error
    if header.get("typ") != PROOF_TYPE:
        raise InvalidProof(f"the proof's typ must be {PROOF_TYPE}")
    if header.get("alg") not in ALGORITHMS:
        raise InvalidProof(f"the proof's alg must be one of {', '.join(ALGORITHMS)}")
    key = _public_key(header.get("jwk"))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
            verified = jws.deserialize_compact(proof, key, algorithms=ALGORITHMS)
    except (JoseError, ValueError) as error:
        raise InvalidProof("the proof's signature does not verify with its jwk") from error
    try:
        claims = jsonbounds.loads(verified.payload)
    except (ValueError, jsonbounds.TooDeep) as error:
        raise InvalidProof("the proof's payload is not a JSON object") from error
    if not isinstance(claims, dict):
        raise InvalidProof("the proof's payload is not a JSON object")
    jti, htm, htu, iat = claims.get("jti"), claims.get("htm"), claims.get("htu"), claims.get("iat")
    if not isinstance(jti, str) or not 16 <= len(jti) <= 256:
        raise InvalidProof("the proof's jti must be a unique string of 16 to 256 characters")
    if htm != method.upper():
        raise InvalidProof(f"the proof's htm must be {method.upper()}")
    if not isinstance(htu, str) or normalise_htu(htu) != normalise_htu(url):
        raise InvalidProof(f"the proof's htu must be {normalise_htu(url)}")
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise InvalidProof("the proof's iat must be a number of seconds")
    stamp = now.timestamp()
    if iat > stamp + MAX_SKEW.total_seconds() or iat < stamp - MAX_AGE.total_seconds():
        raise InvalidProof(f"the proof's iat must be within {int(MAX_AGE.total_seconds())} seconds of now")
    if access_token is not None and claims.get("ath") != access_token_hash(access_token):
        raise InvalidProof("the proof's ath must be the hash of the access token it accompanies")
    return Proof(jkt=key.thumbprint(), jti=jti, issued_at=datetime.fromtimestamp(iat, now.tzinfo))


def claim(session: Session, proof: Proof, now: datetime) -> None:
    """Accept the proof once: its jti is inserted under a primary key; a second insert, anywhere, fails."""
    digest = hashlib.sha256(f"{proof.jkt}\x00{proof.jti}".encode()).digest()
    expires = max(proof.issued_at, now) + MAX_AGE + MAX_SKEW
    try:
        with session.begin_nested():
            session.add(DpopProof(jti_hash=digest, jkt=proof.jkt, expires_at=expires))
    except IntegrityError:
        raise InvalidProof("this DPoP proof was already used (jti replayed)") from None


def purge(session: Session, now: datetime) -> int:
    """Forget the jtis of proofs that could no longer be accepted (their iat is out of the window)."""
    result = session.execute(delete(DpopProof).where(col(DpopProof.expires_at) < now))
    return int(getattr(result, "rowcount", 0) or 0)
