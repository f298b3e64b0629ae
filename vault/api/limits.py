"""Abuse limits of the GraphQL endpoint (OWASP GraphQL cheat sheet): body size, depth, aliases, tokens, lists.

Depth, aliases, fields and cost are counted in one pass per document, memoised per fragment, so a document whose
fragments spread each other many times over (a fragment bomb) costs time in proportion to its length, not to its
expansion, and is refused before graphql-core's rules or the executor expand it. Recursive and unknown fragments
are reported by the same pass. The body's JSON nesting is bounded before it is parsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from vault.api.errors import BadUserInput

MAX_BODY_BYTES = 3 * 1024 * 1024  # room for a batch of 1,000 presentations sent as variables
MAX_DEPTH = 5
MAX_ALIASES = 15
MAX_TOKENS = 1_000
MAX_FIELDS = 1_000  # as many as a document of MAX_TOKENS can name without fragments
MAX_COST = 20_000  # a batch of 1,000 presentations with every Verification field
CACHED_DOCUMENTS = 256  # validated documents kept: agencies send the same few operations
MAX_TYPES = 20
MAX_FIELD_NAMES = 100
MAX_PRESENTATIONS = 1_000
MAX_LICENCES_PER_OWNER = 200
MAX_BULK_ROWS = 1_000  # rows of one issueLicences request: about 1 MB of input, one transaction of a few seconds


def check_list(name: str, values: Sequence[Any] | None, limit: int) -> None:
    """Refuse (never silently cut) an argument list longer than `limit`."""
    if values is not None and len(values) > limit:
        raise BadUserInput(f"{name} takes at most {limit} entries, got {len(values)}", argument=name)


@dataclass(frozen=True)
class Shape:
    """An operation or fragment with every fragment spread expanded (by arithmetic, never by copying)."""

    depth: int = 0
    aliases: int = 0
    fields: int = 0  # field selections after expansion
    cost: int = 0  # fields, each list field's selections counted once per entry its size arguments ask for


class _Measure:
    """One pass over a document, memoised per fragment; reports unknown and recursive fragments itself."""

    def __init__(self, document: DocumentNode, variables: Mapping[str, Any] | None) -> None:
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.variables = variables or {}
        self.done: dict[str, Shape] = {}
        self.open: set[str] = set()
        self.problems: list[str] = []

    def selection_set(self, selection_set: SelectionSetNode | None) -> Shape:
        depth = aliases = fields = cost = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                inner = self.selection_set(selection.selection_set)
                if selection.selection_set and not selection.name.value.startswith("__"):
                    depth = max(depth, 1 + inner.depth)  # introspection is off in production, shallow by design
                aliases += inner.aliases + (1 if selection.alias else 0)
                fields += 1 + inner.fields
                cost += 1 + self.list_size(selection) * inner.cost
            else:
                if isinstance(selection, FragmentSpreadNode):
                    inner = self.fragment(selection.name.value)
                else:
                    inner = self.selection_set(cast(InlineFragmentNode, selection).selection_set)
                depth, aliases = max(depth, inner.depth), aliases + inner.aliases
                fields, cost = fields + inner.fields, cost + inner.cost
        return Shape(depth, aliases, fields, cost)

    def list_size(self, field: FieldNode) -> int:
        """The longest list argument of a field (a literal or a variable's value): the entries it may return."""
        size = 1
        for argument in field.arguments or ():
            value: Any = argument.value
            if isinstance(value, VariableNode):
                value = self.variables.get(value.name.value)
                size = max(size, len(value) if isinstance(value, list) else 1)
            elif isinstance(value, ListValueNode):
                size = max(size, len(value.values))
        return size

    def fragment(self, name: str) -> Shape:
        if name in self.open:
            return Shape()  # a cycle, already reported
        if name not in self.done:
            self._measure_fragments_under(name)
        return self.done[name]

    def _measure_fragments_under(self, root: str) -> None:
        """Depth-first with an explicit stack, dependencies first: a chain of any length needs no recursion."""
        stack: list[tuple[str, list[str]]] = [(root, self._spreads(root))]
        self.open.add(root)
        while stack:
            name, pending = stack[-1]
            while pending and pending[-1] in self.done:
                pending.pop()
            if not pending:
                stack.pop()
                fragment = self.fragments.get(name)
                if fragment is None:
                    self.problems.append(f"Unknown fragment '{name}'.")
                    self.done[name] = Shape()
                else:
                    self.done[name] = self.selection_set(fragment.selection_set)  # its spreads are all done
                self.open.discard(name)
                continue
            spread = pending.pop()
            if spread in self.open:
                cycle = " -> ".join([*[n for n, _ in stack][[n for n, _ in stack].index(spread) :], spread])
                self.problems.append(f"Cannot spread fragment '{spread}' within itself ({cycle}).")
                continue
            self.open.add(spread)
            stack.append((spread, self._spreads(spread)))

    def _spreads(self, name: str) -> list[str]:
        fragment = self.fragments.get(name)
        found: list[str] = []
        sets = [fragment.selection_set] if fragment is not None else []
        while sets:
            for selection in sets.pop().selections:
                if isinstance(selection, FragmentSpreadNode):
                    found.append(selection.name.value)
                elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                    sets.append(selection.selection_set)
        return found


def document_shape(document: DocumentNode, variables: Mapping[str, Any] | None = None) -> dict[str, Shape]:
    """The shape of each operation, fragments expanded; time in proportion to the document's length."""
    return measure_document(document, variables)[0]


def measure_document(
    document: DocumentNode, variables: Mapping[str, Any] | None = None
) -> tuple[dict[str, Shape], list[str]]:
    measure = _Measure(document, variables)
    shapes = {
        (d.name.value if d.name else "anonymous"): measure.selection_set(d.selection_set)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    }
    return shapes, measure.problems


@dataclass(frozen=True)
class Limits:
    depth: int = MAX_DEPTH
    aliases: int = MAX_ALIASES
    fields: int = MAX_FIELDS
    cost: int = MAX_COST


def refusals(
    document: DocumentNode, variables: Mapping[str, Any] | None, operation_name: str | None, limits: Limits
) -> list[str]:
    """Why this document may not run, before any other validation or execution looks at it (empty: it may)."""
    shapes, problems = measure_document(document, variables)
    if operation_name is None and len(shapes) > 1:
        problems.append(f"the document has {len(shapes)} operations: name the one to run in operationName")
    for name, shape in shapes.items():
        for what, value, limit, unit in (
            ("is", shape.depth, limits.depth, " deep"),
            ("uses", shape.aliases, limits.aliases, " aliases"),
            ("selects", shape.fields, limits.fields, " fields once its fragments are expanded"),
            ("costs", shape.cost, limits.cost, " (fields times the list sizes its arguments ask for)"),
        ):
            if value > limit:
                problems.append(f"operation '{name}' {what} {value}{unit}; the limit is {limit}")
    return problems


@lru_cache(maxsize=CACHED_DOCUMENTS)
def _validate(schema: GraphQLSchema, document: DocumentNode, rules: tuple[Any, ...]) -> list[GraphQLError]:
    return validate_document(schema, document, rules)


class GuardedValidation(SchemaExtension):
    """Shape and cost limits first, then graphql-core's validation (cached) only for documents that pass them.

    A document over a limit is refused before any rule or resolver walks it, so its cost is its length.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__()
        self.limits = limits or Limits()

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None
        # operation_name falls back to the first operation's: only the provided one says whether a name was sent
        provided = getattr(context, "_provided_operation_name", None)
        refused = refusals(context.graphql_document, context.variables, provided, self.limits)
        if refused:
            context.pre_execution_errors = [GraphQLError(message) for message in refused]
        else:
            rules = tuple(context.validation_rules)
            context.pre_execution_errors = _validate(context.schema._schema, context.graphql_document, rules)
        yield


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
