"""HTTP endpoints of the authorization server. Each reads the request, then runs one unit of work off the loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from vault.oauth import dpop, rar
from vault.oauth.adapter import VaultOAuth2Request, current_session, from_starlette, in_unit_of_work
from vault.oauth.clients import ASSERTION_ALGORITHMS
from vault.oauth.grants import AUTH_METHODS
from vault.oauth.scopes import GrantType, Scope
from vault.oauth.server import OAuthService, Redirect
from vault.wiring import Vault


def _vault(request: Request) -> Vault:
    vault: Vault = request.app.state.vault
    return vault


def _as_response(result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
    status, body, headers = result
    kept = {k: v for k, v in headers if k.lower() != "content-type"}
    return JSONResponse(body if body != "" else {}, status_code=status, headers=kept)


def metadata(vault: Vault) -> dict[str, Any]:
    """RFC 8414 authorization server metadata."""
    base = vault.settings.public_url
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "pushed_authorization_request_endpoint": f"{base}/oauth/par",
        "require_pushed_authorization_requests": True,
        "backchannel_authentication_endpoint": f"{base}/oauth/bc-authorize",
        "backchannel_token_delivery_modes_supported": ["poll"],
        "backchannel_user_code_parameter_supported": False,
        "introspection_endpoint": f"{base}/oauth/introspect",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "grant_endpoint": f"{base}/oauth/grant",  # the vault's own: a grant's state and its consent receipt
        "jwks_uri": f"{base}/oauth/jwks",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [g.value for g in GrantType],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "authorization_details_types_supported": list(rar.TYPES),
        "scopes_supported": [s.value for s in Scope],
        "authorization_response_iss_parameter_supported": True,
        "dpop_signing_alg_values_supported": dpop.ALGORITHMS,
    }


async def server_metadata(request: Request) -> Response:
    return JSONResponse(metadata(_vault(request)), headers={"Cache-Control": "public, max-age=300"})


async def jwks(request: Request) -> Response:
    """The vault's own signing keys: consent receipts and access-log checkpoints verify against them."""
    from vault.crypto import jws
    from vault.crypto.services import VAULT_SIGNING

    vault = _vault(request)

    def load() -> dict[str, Any]:
        keys = vault.keys.trusted_public_keys(current_session(), VAULT_SIGNING)
        return {"keys": [jws.public_jwk(key, kid) for kid, key in sorted(keys.items())]}

    return JSONResponse(await in_unit_of_work(vault.db, load), headers={"Cache-Control": "public, max-age=300"})


UNSAFE_DESCRIPTION = "Error description contains forbidden characters"  # Authlib's ValueError for non-ASCII


def _endpoint(step: Callable[[OAuthService, VaultOAuth2Request], Any]) -> Callable[[Request], Any]:
    async def handle(request: Request) -> Response:
        vault = _vault(request)
        oauth_request = await from_starlette(request, vault.settings.public_url)
        oauth_request.dpop_required = vault.settings.is_production  # FAPI 2.0: sender-constrained tokens
        try:
            return _as_response(await in_unit_of_work(vault.db, step, vault.oauth, oauth_request))
        except ValueError as error:
            if not str(error).startswith(UNSAFE_DESCRIPTION):
                raise
            # an error message that echoed the client's non-ASCII input: nothing was done (rolled back)
            body = {"error": "invalid_request", "error_description": "a parameter holds characters it may not"}
            return JSONResponse(body, status_code=400, headers={"Cache-Control": "no-store"})

    return handle


async def authorize(request: Request) -> Response:
    vault = _vault(request)
    oauth_request = await from_starlette(request, vault.settings.public_url)
    outcome = await in_unit_of_work(vault.db, vault.oauth.authorize, oauth_request)
    if isinstance(outcome, Redirect):
        return RedirectResponse(outcome.location, status_code=303)
    from vault.web.rendering import render  # the person's language and the site's look; web builds on oauth

    headers = {"Cache-Control": "no-store"}
    return await render(request, "authorize_error.html", {"error": outcome}, status_code=400, headers=headers)


routes = [
    Route("/.well-known/oauth-authorization-server", server_metadata),
    Route("/oauth/jwks", jwks),
    Route("/oauth/authorize", authorize, methods=["GET"]),
    Route("/oauth/par", _endpoint(OAuthService.push), methods=["POST"]),
    Route("/oauth/token", _endpoint(OAuthService.token), methods=["POST"]),
    Route("/oauth/introspect", _endpoint(OAuthService.introspect), methods=["POST"]),
    Route("/oauth/revoke", _endpoint(OAuthService.revoke), methods=["POST"]),
    Route("/oauth/bc-authorize", _endpoint(OAuthService.backchannel), methods=["POST"]),
    Route("/oauth/grant", _endpoint(OAuthService.grant_receipt), methods=["POST"]),
]
