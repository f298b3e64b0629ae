"""How the agency authenticates to the vault's OAuth endpoints: client_secret_basic or private_key_jwt."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Protocol
from urllib.parse import quote

from joserfc import jws
from joserfc.jwk import ECKey, OKPKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class ClientAuth(Protocol):
    client_id: str

    def apply(self, endpoint: str, issuer: str, headers: dict[str, str], form: dict[str, str]) -> None:
        """Add the credentials to a request for `endpoint` (headers or form)."""


class ClientSecretBasic:
    """HTTP Basic with the client id and secret, each form-urlencoded first (RFC 6749 §2.3.1)."""

    def __init__(self, client_id: str, secret: str) -> None:
        self.client_id = client_id
        self._secret = secret

    def apply(self, endpoint: str, issuer: str, headers: dict[str, str], form: dict[str, str]) -> None:
        pair = f"{quote(self.client_id, safe='')}:{quote(self._secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()


class PrivateKeyJwt:
    """RFC 7523: a short-lived assertion signed with a key whose public half the agency registered."""

    def __init__(self, client_id: str, key: ECKey | OKPKey, kid: str | None = None, lifetime: int = 60) -> None:
        self.client_id = client_id
        self.key = key
        self.kid = kid or key.kid or key.thumbprint()
        self.lifetime = lifetime

    def assertion(self, audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + self.lifetime,
        }
        alg = "ES256" if isinstance(self.key, ECKey) else "Ed25519"
        header = {"alg": alg, "kid": self.kid}
        return jws.serialize_compact(header, json.dumps(claims).encode(), self.key, algorithms=[alg])

    def apply(self, endpoint: str, issuer: str, headers: dict[str, str], form: dict[str, str]) -> None:
        form["client_id"] = self.client_id
        form["client_assertion_type"] = ASSERTION_TYPE
        form["client_assertion"] = self.assertion(issuer)
