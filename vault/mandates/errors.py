"""Errors of legal mandates: a token request or a read the mandate does not allow."""

from __future__ import annotations


class MandateError(Exception):
    """Base class; every message is safe to show the agency (no identifier, no case text)."""


class MandateRefused(MandateError):
    """A token request or case registration that breaks a mandate's rules; `field` names the member at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class CaseNotRegistered(MandateError):
    """The mandate requires a registered case, and this one is not registered, or not in force, for the owner."""


class RateLimited(MandateError):
    """A read over the mandate's per-case or per-client limit; `retry_after` is in seconds."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(f"rate limit reached for this {scope} under the mandate: retry after {retry_after} seconds")
        self.scope = scope
        self.retry_after = retry_after
