"""OAuth-specific errors not in Authlib, with their RFC error codes."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import OAuth2Error


class InvalidAuthorizationDetailsError(OAuth2Error):
    """RFC 9396 §5: authorization_details malformed, of an unknown type, or asking beyond its service item."""

    error = "invalid_authorization_details"


class AuthorizationPendingError(OAuth2Error):
    error = "authorization_pending"


class SlowDownError(OAuth2Error):
    error = "slow_down"


class ExpiredTokenError(OAuth2Error):
    error = "expired_token"


class AgencyError(Exception):
    """An agency registration that cannot be made as asked."""
