"""POST /graphql: Strawberry's ASGI view, run the vault's way.

- Only POST with Content-Type application/json, one operation per request (no batching, no GET); the body is
  capped before it is read. In development mode a browser's GET shows GraphiQL; production has neither the IDE
  nor introspection.
- Every request is authenticated by introspecting its bearer token in-process. A missing or dead token is
  answered with HTTP 401 and a GraphQL error whose extensions.code is UNAUTHENTICATED.
- The operation executes synchronously in one worker thread (decision 0001). A query reads in a read-only unit
  of work, then commits its access events and its use of the grant in a short write that re-checks, in the
  database, that the grant is still live; the short writes of concurrent queries are committed together, each
  in its own savepoint, and none answers before that commit (vault.group_commit). A mutation is one write unit
  of work. If the access events cannot be
  written the request answers HTTP 500 with no data; if the grant ended meanwhile, HTTP 401 with no data.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException, parse_content_type
from graphql import GraphQLError, get_operation_ast, parse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from vault import jsonbounds
from vault.api.context import Context, RequestInfo, access_token, get_context
from vault.api.errors import (
    AccessLogUnavailable,
    RateLimitedError,
    Unauthenticated,
    error_result_body,
    internal_error,
)
from vault.api.limits import BodyLimit
from vault.api.schema import build_schema
from vault.clock import utcnow
from vault.consent.errors import GrantNotLive
from vault.consent.models import Grant
from vault.consent.services import ConsentService
from vault.mandates.errors import RateLimited
from vault.oauth import dpop
from vault.oauth.adapter import unit_of_work
from vault.oauth.tokens import SUSPENDED, TokenRevoked
from vault.wiring import Vault

log = logging.getLogger("vault.api")
PATH = "/graphql"
ALLOWED_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})
IDE_CSP = (
    "default-src 'none'; script-src 'nonce-{nonce}' https://unpkg.com; style-src 'unsafe-inline' https://unpkg.com; "
    "font-src https://unpkg.com; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'; form-action 'none'"
)


@dataclass
class Outcome:
    result: ExecutionResult
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _failure(message: str, extensions: dict[str, Any], status: int, **headers: str) -> Outcome:
    return Outcome(ExecutionResult(data=None, errors=[GraphQLError(message, extensions=extensions)]), status, headers)


def _unauthenticated(error: Unauthenticated, *, token_given: bool, dpop_scheme: bool = False) -> Outcome:
    if dpop_scheme:  # RFC 9449 §7.1: a DPoP challenge names the algorithms a proof may use
        challenge = f'DPoP algs="{" ".join(dpop.ALGORITHMS)}"' + (', error="invalid_token"' if token_given else "")
    else:
        challenge = 'Bearer realm="vault", error="invalid_token"' if token_given else 'Bearer realm="vault"'
    return _failure(error.message, error.extensions, 401, **{"WWW-Authenticate": challenge})


def _proven(request: RequestInfo) -> RequestInfo | Outcome:
    """Verify the request's DPoP proof and spend its jti in a short write of its own (so a replay is refused by
    every worker, and a proof is spent even if the request then fails); the request with the proof's key."""
    if request.dpop is None and request.scheme != "dpop":
        return request
    now = utcnow()
    try:
        url = request.vault.settings.public_url + PATH
        proof = dpop.verify(request.dpop, method="POST", url=url, now=now, access_token=request.bearer or "")
        with request.vault.db.session() as session:
            dpop.claim(session, proof, now)
    except dpop.InvalidProof as error:
        challenge = f'DPoP algs="{" ".join(dpop.ALGORITHMS)}", error="invalid_dpop_proof"'
        failure = Unauthenticated(error.description, reason="invalid_dpop_proof")
        return _failure(failure.message, failure.extensions, 401, **{"WWW-Authenticate": challenge})
    return dataclasses.replace(request, proof_jkt=proof.jkt)


def operation_type(data: GraphQLRequestData) -> OperationType | None:
    """The type of the operation the request will run; None when the document does not say (it will fail)."""
    if data.query is None:
        return None
    if len(data.query) + len(data.operation_name or "") > CACHED_DOCUMENT_CHARS:  # parsed each time, never held
        return _operation_type.__wrapped__(data.query, data.operation_name)
    return _operation_type(data.query, data.operation_name)


CACHED_DOCUMENT_CHARS = 8_192


@functools.lru_cache(maxsize=128)  # agencies send the same few documents again and again: parse each once (<= 1 MB)
def _operation_type(query: str, operation_name: str | None) -> OperationType | None:
    try:
        operation = get_operation_ast(parse(query), operation_name)
    except GraphQLError:
        return None
    return None if operation is None else OperationType(operation.operation.value)


def execute(view: GraphQLView, request: RequestInfo, data: GraphQLRequestData) -> Outcome:
    """Authenticate, execute and record the request, in the calling (worker) thread.

    A query runs in a read-only unit of work (on SQLite beside the writer, never queued behind it); its access
    events and its use of the grant are then committed in a short write, which claims the use in the database.
    If the grant stopped being live in between, or the events cannot be written, nothing is returned. Mutations
    run in one write unit of work from authentication to their events.
    """
    try:
        proven = _proven(request)
        if isinstance(proven, Outcome):
            return proven
        request = proven
        if operation_type(data) is OperationType.QUERY:
            return _execute_query(view, request, data)
        return _execute_in_one_unit(view, request, data)
    except MissingQueryError:
        raise HTTPException(400, "no GraphQL query in the request") from None
    except (CannotGetOperationTypeError, InvalidOperationTypeError) as error:
        raise HTTPException(400, str(error) or "the operation cannot be run") from None
    except TokenRevoked as error:  # revoked while a mutation ran: it was rolled back
        return _unauthenticated(Unauthenticated(str(error)), token_given=True)
    except Exception as error:
        # nothing of the request was committed: no data leaves without its access event
        log.error("request %s failed and was rolled back", request.request_id, exc_info=error)
        return Outcome(ExecutionResult(data=None, errors=[internal_error(request.request_id)]), 500)


def _run(view: GraphQLView, data: GraphQLRequestData, context: Context) -> ExecutionResult:
    return view.schema.execute_sync(
        data.query,
        variable_values=data.variables,
        context_value=context,
        operation_name=data.operation_name,
        allowed_operation_types=ALLOWED_OPERATIONS,
        operation_extensions=data.extensions,
    )


def _record(session: Session, request: RequestInfo, context: Context) -> None:
    try:
        context.reads.flush(
            session,
            request.vault,
            client_id=context.token.client_id,
            authority=context.read_authority,
            request_id=request.request_id,
            token_id=context.token.token_id,
        )
    except (GrantNotLive, TokenRevoked):
        raise
    except Exception as error:
        raise AccessLogUnavailable from error


def _execute_query(view: GraphQLView, request: RequestInfo, data: GraphQLRequestData) -> Outcome:
    vault = request.vault
    with vault.db.read_session() as session:
        try:
            context = get_context(request, session, write=False)
        except Unauthenticated as error:
            _expire_token_grant(vault, request.bearer)
            return _unauthenticated(error, token_given=True, dpop_scheme=_dpop_scheme(request))
        result = _run(view, data, context)
        # nothing of anyone's was read (verification, metadata): nothing to record, and so no write to check the
        # agency's suspension in (it may have come from memory): checked here
        if not context.reads.touched and vault.agencies.info(session, context.token.client_id).suspended:
            return _unauthenticated(Unauthenticated(SUSPENDED), token_given=True, dpop_scheme=_dpop_scheme(request))
    if not context.reads.touched:
        return Outcome(result)
    # the events made here, in this request's thread: the group commit's one writer thread only inserts them
    context.reads.stamp(
        client_id=context.token.client_id, authority=context.read_authority, request_id=request.request_id
    )
    try:  # with the writes of concurrent reads, in one transaction: one fsync (vault.group_commit)
        savepoint = context.reads.writes_itself(context.read_authority)
        vault.db.group.run(lambda session: _record(session, request, context), savepoint=savepoint)
    except GrantNotLive as error:  # revoked, expired or used up while the query ran: it releases nothing
        return _unauthenticated(
            Unauthenticated(f"the consent behind this access token is no longer in force: {error}"), token_given=True
        )
    except TokenRevoked as error:  # revoked since it was authenticated (perhaps from memory): nothing released
        return _unauthenticated(Unauthenticated(str(error)), token_given=True)
    if context.reads.limited is not None:  # over a mandate's limit: the denial is recorded, nothing is returned
        return _rate_limited(context.reads.limited)
    return Outcome(result)


def _dpop_scheme(request: RequestInfo) -> bool:
    return request.scheme == "dpop" or request.vault.settings.is_production


def _rate_limited(error: RateLimited) -> Outcome:
    limited = RateLimitedError(str(error), retryAfter=error.retry_after, limit=error.scope)
    return _failure(limited.message, limited.extensions, 429, **{"Retry-After": str(error.retry_after)})


def _expire_token_grant(vault: Vault, bearer: str | None) -> None:
    """A grant found past its validity is expired now, so its tokens die with it (a write, apart from the read)."""
    with vault.db.read_session() as session:
        info = vault.tokens.introspect(session, bearer or "")
        grant = session.get(Grant, info.grant_id) if info and info.grant_id else None
        due = grant is not None and ConsentService.effective_state(grant, utcnow()) != grant.state
    if due and grant is not None:
        with vault.db.session() as session:
            vault.consent.grant(session, grant.id)


def _execute_in_one_unit(view: GraphQLView, request: RequestInfo, data: GraphQLRequestData) -> Outcome:
    with unit_of_work(request.vault.db) as session:  # Database queues SQLite writers itself
        try:
            context = get_context(request, session)
        except Unauthenticated as error:
            # committing what it found (a grant expired)
            return _unauthenticated(error, token_given=True, dpop_scheme=_dpop_scheme(request))
        result = _run(view, data, context)
        _record(session, request, context)
        if context.reads.limited is not None:
            return _rate_limited(context.reads.limited)
        return Outcome(result)


class GraphQLView(GraphQL[RequestInfo, None]):
    def __init__(self, *, production: bool) -> None:
        super().__init__(
            build_schema(production=production),
            graphql_ide=None if production else "graphiql",
            allow_queries_via_get=False,
            subscription_protocols=(),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        ide = self.graphql_ide is not None and self.should_render_graphql_ide(self.request_adapter_class(request))
        response: Response
        if request.method != "POST" and not ide:
            body = error_result_body("GraphQL operations are sent with POST", "METHOD_NOT_ALLOWED")
            response = JSONResponse(body, status_code=405, headers={"Allow": "POST"})
        else:
            try:
                response = await self.run(request)
            except HTTPException as error:
                response = JSONResponse(error_result_body(error.reason, "BAD_REQUEST"), status_code=error.status_code)
        response.headers.setdefault("Cache-Control", "no-store")
        await response(scope, receive, send)

    async def get_context(self, request: Request | Any, response: Response | Any) -> RequestInfo:
        vault: Vault = request.app.state.vault
        scheme, token = access_token(request.headers.get("authorization"))
        proofs = request.headers.getlist("dpop")
        proof = proofs[0] if len(proofs) == 1 else ("several DPoP headers" if proofs else None)
        return RequestInfo(vault, token, uuid.uuid4().hex, scheme=scheme, dpop=proof)

    async def render_graphql_ide(self, request: Request) -> Response:
        nonce = secrets.token_urlsafe(18)
        html = self.graphql_ide_html.replace("<script>", f'<script nonce="{nonce}">')
        html = html.replace("<script\n", f'<script nonce="{nonce}"\n')
        return HTMLResponse(html, headers={"Content-Security-Policy": IDE_CSP.format(nonce=nonce)})

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData:
        content_type, _ = parse_content_type(request.content_type or "")
        if content_type != "application/json":
            raise HTTPException(415, "GraphQL operations are sent as application/json")
        try:
            data = jsonbounds.loads(await request.get_body())
        except jsonbounds.TooDeep as error:
            raise HTTPException(400, str(error)) from None
        except ValueError:
            raise HTTPException(400, "the body is not JSON") from None
        if isinstance(data, list):
            raise HTTPException(400, "batching is not supported: send one operation per request")
        if not isinstance(data, dict):
            raise HTTPException(400, "the body must be a JSON object")
        query, variables, extensions = data.get("query"), data.get("variables"), data.get("extensions")
        operation = data.get("operationName")
        if (
            not isinstance(query, str)
            or not isinstance(variables, dict | None)
            or not isinstance(operation, str | None)
        ):
            raise HTTPException(400, "query must be a string, variables an object, operationName a string")
        return GraphQLRequestData(
            query=query,
            variables=variables,
            operation_name=operation,
            extensions=extensions if isinstance(extensions, dict) else None,
        )

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: RequestInfo,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        if context.bearer is None:
            outcome = _unauthenticated(
                Unauthenticated("an access token is required (Authorization: Bearer, or DPoP with a proof)"),
                token_given=False,
                dpop_scheme=context.vault.settings.is_production,
            )
        else:
            outcome = await run_in_threadpool(execute, self, context, request_data)
        if outcome.status is not None:
            sub_response.status_code = outcome.status
        for name, value in outcome.headers.items():
            sub_response.headers[name] = value
        return outcome.result

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        response.headers["Cache-Control"] = "no-store"
        return response


class GraphQLEndpoint:
    """The /graphql ASGI app: one view per mode, built on first use, behind the request body limit."""

    def __init__(self) -> None:
        self._apps: dict[bool, ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        vault: Vault = scope["app"].state.vault
        production = vault.settings.is_production
        if production not in self._apps:
            self._apps[production] = BodyLimit(GraphQLView(production=production))
        await self._apps[production](scope, receive, send)


routes = [Route(PATH, GraphQLEndpoint())]
