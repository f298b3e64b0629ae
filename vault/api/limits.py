"""Abuse limits of the GraphQL endpoint (OWASP GraphQL cheat sheet): body size, depth, aliases, tokens, lists.

Depth and aliases are counted in one memoised pass per document, so a document whose fragments spread each other
many times over costs time in proportion to its length, not to its expansion; recursive and unknown fragments
are left to graphql-core's own rules, which report them as validation errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import AddValidationRules

from vault.api.errors import BadUserInput

MAX_BODY_BYTES = 3 * 1024 * 1024  # room for a batch of 1,000 presentations sent as variables
MAX_DEPTH = 5
MAX_ALIASES = 15
MAX_TOKENS = 1_000
MAX_TYPES = 20
MAX_FIELD_NAMES = 100
MAX_PRESENTATIONS = 1_000
MAX_LICENCES_PER_OWNER = 200


def check_list(name: str, values: Sequence[Any] | None, limit: int) -> None:
    """Refuse (never silently cut) an argument list longer than `limit`."""
    if values is not None and len(values) > limit:
        raise BadUserInput(f"{name} takes at most {limit} entries, got {len(values)}", argument=name)


Shape = tuple[int, int]  # (depth, aliases)


class _Measure:
    def __init__(self, document: DocumentNode) -> None:
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.done: dict[str, Shape] = {}
        self.open: set[str] = set()

    def selection_set(self, selection_set: SelectionSetNode | None) -> Shape:
        depth = aliases = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                if selection.name.value.startswith("__"):
                    continue  # introspection is switched off in production, and shallow by construction
                inner_depth, inner_aliases = self.selection_set(selection.selection_set)
                if selection.selection_set:
                    depth = max(depth, 1 + inner_depth)
                aliases += inner_aliases + (1 if selection.alias else 0)
            elif isinstance(selection, InlineFragmentNode):
                inner_depth, inner_aliases = self.selection_set(selection.selection_set)
                depth, aliases = max(depth, inner_depth), aliases + inner_aliases
            elif isinstance(selection, FragmentSpreadNode):
                inner_depth, inner_aliases = self.fragment(selection.name.value)
                depth, aliases = max(depth, inner_depth), aliases + inner_aliases
        return depth, aliases

    def fragment(self, name: str) -> Shape:
        if name in self.done:
            return self.done[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.open:
            return 0, 0  # unknown or recursive: NoFragmentCyclesRule and KnownFragmentNamesRule report it
        self.open.add(name)
        shape = self.selection_set(fragment.selection_set)
        self.open.discard(name)
        self.done[name] = shape
        return shape


def document_shape(document: DocumentNode) -> dict[str, Shape]:
    """Depth and alias count of each operation, fragments expanded (by arithmetic, not by copying)."""
    measure = _Measure(document)
    return {
        (d.name.value if d.name else "anonymous"): measure.selection_set(d.selection_set)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    }


@cache  # one class per pair of limits: validation results are cached by the rules that made them
def shape_rule(max_depth: int, max_aliases: int) -> type[ValidationRule]:
    class ShapeRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            for name, (depth, aliases) in document_shape(context.document).items():
                if depth > max_depth:
                    context.report_error(GraphQLError(f"operation '{name}' is {depth} deep; the limit is {max_depth}"))
                if aliases > max_aliases:
                    message = f"operation '{name}' uses {aliases} aliases; the limit is {max_aliases}"
                    context.report_error(GraphQLError(message))

    return ShapeRule


class QueryShapeLimiter(AddValidationRules):
    """Depth and alias limits as one validation rule (Strawberry's own limiters walk fragments per use)."""

    def __init__(self, max_depth: int = MAX_DEPTH, max_aliases: int = MAX_ALIASES) -> None:
        super().__init__([shape_rule(max_depth, max_aliases)])


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse a request body over `max_bytes` with 413, by its Content-Length or while it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send, 413 if declared.isdigit() else 400)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if started:
                raise
            await self._refuse(send, 413)

    async def _refuse(self, send: Send, status: int) -> None:
        message = f"the request body is limited to {self.max_bytes} bytes" if status == 413 else "bad Content-Length"
        body = json.dumps({"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
