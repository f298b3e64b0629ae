"""DPoP (RFC 9449): a key held by the agency, and a fresh proof for every request made with it."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from urllib.parse import urlsplit, urlunsplit

from joserfc import jws
from joserfc.jwk import ECKey


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DPoPKey:
    """An ES256 (P-256) key pair; tokens issued with its proofs work only with proofs signed by it."""

    def __init__(self, key: ECKey | None = None) -> None:
        self.key = key or ECKey.generate_key("P-256")
        self.nonce: str | None = None  # a server-provided nonce (DPoP-Nonce), sent back when the vault asks for one

    @property
    def jkt(self) -> str:
        """The RFC 7638 thumbprint the vault binds tokens (and, at PAR, the authorization code) to."""
        return self.key.thumbprint()

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        parts = urlsplit(url)
        claims: dict[str, object] = {
            "jti": secrets.token_urlsafe(24),
            "htm": method.upper(),
            "htu": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            "iat": int(time.time()),
        }
        if access_token is not None:
            claims["ath"] = _b64(hashlib.sha256(access_token.encode()).digest())
        if self.nonce:
            claims["nonce"] = self.nonce
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.as_dict(private=False)}
        return jws.serialize_compact(header, json.dumps(claims).encode(), self.key)
