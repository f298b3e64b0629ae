"""The GraphQL schema, assembled from each domain's queries and mutations, with its limits and error policy."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from vault.api.backchannel import BackchannelMutations
from vault.api.cases import CaseMutations
from vault.api.checks import CheckQueries
from vault.api.errors import internal_error, is_expected, without_suggestions
from vault.api.issuers import IssuerMutations
from vault.api.licences import LicenceQueries
from vault.api.limits import CACHED_DOCUMENTS, MAX_TOKENS, GuardedValidation
from vault.api.representatives import RepresentativeMutations
from vault.api.verification import VerificationQueries

log = logging.getLogger("vault.api")

Query = merge_types("Query", (LicenceQueries, VerificationQueries, CheckQueries))
Mutation = merge_types("Mutation", (IssuerMutations, RepresentativeMutations, BackchannelMutations, CaseMutations))


def correlation_id(execution_context: ExecutionContext | None) -> str:
    return str(getattr(getattr(execution_context, "context", None), "request_id", "unknown"))


class ErrorPolicy(SchemaExtension):
    """Expected errors go out as they are, minus "did you mean" hints; anything else as a correlation id only."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [self._policed(error) for error in result.errors]

    def _policed(self, error: GraphQLError) -> GraphQLError:
        if is_expected(error):
            error.message = without_suggestions(error.message)
            return error
        return internal_error(correlation_id(self.execution_context), error.path)


class VaultSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Log unexpected errors in full under the request's correlation id; expected ones are the client's."""
        for error in errors:
            if not is_expected(error):
                log.error(
                    "request %s: unexpected error at %s",
                    correlation_id(execution_context),
                    error.path,
                    exc_info=error.original_error,
                )


def build_schema(*, production: bool) -> VaultSchema:
    extensions: list[Any] = [
        partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
        partial(ParserCache, maxsize=CACHED_DOCUMENTS),
        GuardedValidation,
        ErrorPolicy,
    ]
    if production:
        extensions.append(DisableIntrospection)
    return VaultSchema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=True),
    )
