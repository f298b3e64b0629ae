"""Every unhandled error becomes a 500 that names a correlation id, and the log line with its traceback names it too.

Pure ASGI and just inside the security headers, so it covers pages, OAuth, GraphQL and static files alike. API
clients get JSON; a browser asking for a page gets a plain page showing the id. Nothing that might be what failed
(database, templates, sessions) is touched on the way out.
"""

from __future__ import annotations

import html
import logging
import uuid

from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("vault.errors")
API_PREFIXES = ("/graphql", "/oauth/", "/.well-known/", "/healthz", "/readyz")
PAGE = (
    "<!doctype html><html lang='zh'><meta charset='utf-8'><title>出错了 · Something went wrong</title>"
    "<main><h1>出错了 · Something went wrong</h1><p>请稍后再试；如需报告，请提供此编号。"
    " Please try again later; if you report it, quote this number:</p><p><code>{id}</code></p></main></html>"
)


def correlation_id() -> str:
    return uuid.uuid4().hex


def internal_error_response(scope: Scope, error_id: str) -> Response:
    """The answer to a request that failed unexpectedly: JSON, or a page for a browser asking for a page."""
    headers = {"Cache-Control": "no-store", "X-Correlation-Id": error_id}
    accept = dict(scope.get("headers") or ()).get(b"accept", b"").decode("latin-1")
    path = str(scope.get("path", ""))
    if "text/html" in accept and not path.startswith(API_PREFIXES):
        return HTMLResponse(PAGE.format(id=html.escape(error_id)), status_code=500, headers=headers)
    body = {"error": "internal_error", "correlation_id": error_id}
    return JSONResponse(body, status_code=500, headers=headers)


def log_failure(scope: Scope, error_id: str, error: BaseException) -> None:
    # the path without its query string: a query may carry what must not be logged
    log.error(
        "internal_error correlation_id=%s %s %s", error_id, scope.get("method"), scope.get("path"), exc_info=error
    )


class ErrorBoundary:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as error:
            error_id = correlation_id()
            log_failure(scope, error_id, error)
            if not started:
                await internal_error_response(scope, error_id)(scope, receive, send)
            # once the response has started there is nothing to add: the server ends the connection
