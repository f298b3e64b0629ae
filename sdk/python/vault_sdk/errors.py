"""Exceptions carrying the vault's own error codes (OAuth `error`, GraphQL `extensions.code`)."""

from __future__ import annotations

from typing import Any


class VaultError(Exception):
    """Anything the vault refused. `code` is the vault's machine-readable code; `description` its explanation."""

    def __init__(self, code: str, description: str = "", status: int | None = None, **details: Any) -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description
        self.status = status
        self.details = details


class OAuthError(VaultError):
    """An OAuth endpoint's error response (RFC 6749 §5.2, RFC 9126, CIBA, RFC 9449): e.g. invalid_grant."""


class AuthorizationError(OAuthError):
    """The redirect back from the vault carried an error (access_denied), or failed the state or iss check."""


class AuthorizationPending(OAuthError):
    """CIBA: the owner has not decided yet (authorization_pending or slow_down); poll again after `interval`."""


class GraphQLError(VaultError):
    """A GraphQL error: `code` is extensions.code (UNAUTHENTICATED, FORBIDDEN, FIELD_FORBIDDEN, ...)."""


class VerificationError(VaultError):
    """A receipt or presentation that does not verify; `code` says why (bad_signature, expired, revoked, ...)."""
