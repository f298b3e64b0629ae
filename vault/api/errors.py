"""Errors the GraphQL API answers with, each carrying a machine-readable `extensions.code`.

Resolvers raise (or, for one item of a list, return) these; anything else that escapes a resolver is a bug and
reaches the client only as INTERNAL_SERVER_ERROR with a correlation id, its detail kept for the log.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from graphql import GraphQLError

INTERNAL = "INTERNAL_SERVER_ERROR"
INTERNAL_MESSAGE = "Internal server error. Quote the correlation id when reporting it."
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class ApiError(Exception):
    """An expected failure: its message and extensions are safe to show to the client."""

    code: ClassVar[str] = "BAD_REQUEST"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class Unauthenticated(ApiError):
    """No bearer token, or one that is unknown, expired or revoked, or whose grant is no longer in force."""

    code = "UNAUTHENTICATED"


class Forbidden(ApiError):
    """The token is valid but does not carry the scope or authority the operation needs."""

    code = "FORBIDDEN"


class FieldForbidden(ApiError):
    """Policy refused one field of one licence; `field` and `reason` say which and why."""

    code = "FIELD_FORBIDDEN"


class RateLimitedError(ApiError):
    """A mandate's per-case or per-client read limit is spent: HTTP 429, `retryAfter` in seconds."""

    code = "RATE_LIMITED"


class BadUserInput(ApiError):
    """An argument the operation cannot take (unknown licence type, malformed identifier, list too long)."""

    code = "BAD_USER_INPUT"


class AccessLogUnavailable(Exception):
    """The access events of a read could not be written: the read is rolled back and returns nothing."""


def is_expected(error: GraphQLError) -> bool:
    """Whether the client may see this error as it is: validation and parse errors, and our ApiErrors."""
    original = error.original_error
    return original is None or isinstance(original, ApiError | GraphQLError)


def without_suggestions(message: str) -> str:
    """The message without graphql-core's "Did you mean ...?" hints, which would describe the schema."""
    return _SUGGESTION.sub("", message)


def internal_error(correlation_id: str, path: Any = None) -> GraphQLError:
    return GraphQLError(INTERNAL_MESSAGE, path=path, extensions={"code": INTERNAL, "correlationId": correlation_id})


def error_result_body(message: str, code: str, **extensions: Any) -> dict[str, Any]:
    """A GraphQL response body with one error and no data, for failures outside execution."""
    return {"data": None, "errors": [{"message": message, "extensions": {"code": code, **extensions}}]}
