"""OAuth-specific errors not in Authlib, with their RFC error codes."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error


def ascii_description(text: str) -> str:
    """`text` as an RFC 6749 error_description may carry it (%x20-21 / %x23-5B / %x5D-7E): others as U+XXXX."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else f"U+{ord(c):04X}" for c in text)


class InvalidAuthorizationDetailsError(OAuth2Error):
    """RFC 9396 §5: authorization_details malformed, of an unknown type, or asking beyond its service item."""

    error = "invalid_authorization_details"

    def __init__(self, description: str | None = None, **kwargs: Any) -> None:
        super().__init__(ascii_description(description) if description else description, **kwargs)


class AuthorizationPendingError(OAuth2Error):
    error = "authorization_pending"


class SlowDownError(OAuth2Error):
    error = "slow_down"


class ExpiredTokenError(OAuth2Error):
    error = "expired_token"


class InvalidDpopProofError(OAuth2Error):
    """RFC 9449 §5: the DPoP proof is missing (where required), malformed, stale, replayed or for another key."""

    error = "invalid_dpop_proof"


class AgencyError(Exception):
    """An agency registration that cannot be made as asked."""


def safe_description(text: str) -> str:
    """RFC 6749 §5.2 allows only printable ASCII less `"` and `\\` in error_description: replace the rest with ?."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)
