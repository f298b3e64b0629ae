"""Authlib's views of our rows: an agency as a client, a token as a token, and private_key_jwt authentication."""

from __future__ import annotations

import hashlib
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, TokenMixin
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet
from sqlalchemy.exc import IntegrityError

from vault.clock import utcnow
from vault.oauth.adapter import current_session
from vault.oauth.agencies import ASSERTION_KEY_TYPES, secret_matches
from vault.oauth.models import Agency, ClientAssertion, Token
from vault.oauth.scopes import AuthMethod, GrantType

ASSERTION_ALGORITHMS = ["Ed25519", "EdDSA", "ES256"]
MAX_ASSERTION_LIFETIME = 300  # seconds: an assertion expires, and was issued, within five minutes of use (FAPI 2.0)


class Client(ClientMixin):
    def __init__(self, agency: Agency) -> None:
        self.agency = agency

    @property
    def client_id(self) -> str:
        return self.agency.client_id

    def get_client_id(self) -> str:
        return self.agency.client_id

    def get_default_redirect_uri(self) -> str | None:
        # with several registered URIs the request must say which one (security BCP)
        uris = self.agency.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.agency.scopes)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # exact string comparison: no normalisation of case, trailing slash, port, query or fragment
        return redirect_uri in self.agency.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(self.agency, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.agency.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and GrantType.AUTHORIZATION_CODE in self.agency.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.agency.grant_types


class TokenView(TokenMixin):
    def __init__(self, row: Token, kind: str) -> None:
        self.row = row
        self.kind = kind

    def check_client(self, client: Client) -> bool:
        return self.row.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return int((self.row.access_expires_at - self.row.issued_at).total_seconds())

    def is_expired(self) -> bool:
        if self.kind == "refresh_token":
            return self.row.refresh_expires_at is None or self.row.refresh_expires_at <= utcnow()
        return self.row.access_expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None or (
            self.kind == "refresh_token" and self.row.refresh_used_at is not None
        )

    def get_user(self) -> Any:
        return self.row.owner_id

    def get_client(self) -> Any:
        return None


class PrivateKeyJwt(JWTBearerClientAssertion):
    """RFC 7523 client authentication: an assertion signed with a key the agency registered, used once."""

    CLIENT_AUTH_METHOD = AuthMethod.PRIVATE_KEY_JWT.value

    def __init__(self, audiences: list[str]) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._audiences = audiences

    def get_audiences(self) -> list[str]:
        return self._audiences

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        """Authlib's check, with the accepted algorithms pinned: asymmetric only, never HS* or none."""
        try:
            with warnings.catch_warnings():
                # "EdDSA" is the RFC 8037 name of what RFC 9864 calls Ed25519: same keys, same signatures
                warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
                token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as error:
            raise InvalidClientError(description=error.description) from error
        self.verify_claims(token.claims)
        check_lifetime(token.claims, int(utcnow().timestamp()), self.leeway)
        return token.claims

    def resolve_client_public_key(self, client: Client) -> KeySet:
        keys = (client.agency.jwks or {}).get("keys") or []
        if not keys:
            raise InvalidClientError(description="the client has no registered keys")
        if any(not isinstance(key, dict) or key.get("kty") not in ASSERTION_KEY_TYPES for key in keys):
            raise InvalidClientError(description="the client's keys must be OKP or EC public keys")
        try:
            return KeySet.import_key_set({"keys": keys})
        except (JoseError, ValueError) as error:
            raise InvalidClientError(description="the client's registered keys cannot be used") from error

    def validate_jti(self, claims: Any, jti: str) -> bool:
        session = current_session()
        expires = datetime.fromtimestamp(int(claims.get("exp", 0)), UTC) + timedelta(seconds=60)
        digest = hashlib.sha256(f"{claims['sub']}\x00{jti}".encode()).digest()
        if session.get(ClientAssertion, digest) is not None:
            return False
        try:
            with session.begin_nested():
                session.add(ClientAssertion(jti_hash=digest, client_id=str(claims["sub"]), expires_at=expires))
        except IntegrityError:
            return False
        return True


def check_lifetime(claims: Any, now: int, leeway: int) -> None:
    """Refuse an assertion valid for more than MAX_ASSERTION_LIFETIME from now, or issued longer ago than that."""
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or exp - now > MAX_ASSERTION_LIFETIME + leeway:
        raise InvalidClientError(description=f"the assertion must expire within {MAX_ASSERTION_LIFETIME} seconds")
    if iat is not None and (not isinstance(iat, int) or now - iat > MAX_ASSERTION_LIFETIME + leeway):
        raise InvalidClientError(description=f"the assertion must be issued within {MAX_ASSERTION_LIFETIME} seconds")
