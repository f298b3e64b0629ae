"""Security headers on every response, and a fresh CSP nonce per request (request.state.csp_nonce).

Pure ASGI, so it also covers responses built by mounted apps and by Starlette itself (404, 405). A response that
already carries one of these headers keeps its own value: a page that needs a different policy says so itself.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), browsing-topics=()"


def content_security_policy(nonce: str) -> str:
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )


def security_headers(nonce: str, *, https: bool) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": content_security_policy(nonce),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": PERMISSIONS_POLICY,
    }
    if https:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


class SecurityHeadersMiddleware:
    """Adds the headers above to every HTTP response; HTML (and anything setting a cookie) also gets no-store."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(18)
        scope.setdefault("state", {})["csp_nonce"] = nonce

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in security_headers(nonce, https=self.https).items():
                    if name not in headers:
                        headers[name] = value
                html = headers.get("content-type", "").startswith("text/html")
                if "cache-control" not in headers and (html or "set-cookie" in headers):
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


TOKEN_PARAMETERS = frozenset({"access_token", "refresh_token"})
TOKEN_IN_URL = {
    "error": "invalid_request",
    "error_description": "tokens are sent in the Authorization header or a POST body, never in the URL",
}


class RefuseTokensInUrl:
    """RFC 9700 §4.3.2 / RFC 6750 §5.3: a URL ends up in logs and histories, so a token in a query is refused."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        names = {name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)} if query else set()
        if names & TOKEN_PARAMETERS:
            await JSONResponse(TOKEN_IN_URL, status_code=400, headers={"Cache-Control": "no-store"})(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)
