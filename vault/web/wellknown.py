"""Public, unauthenticated documents: issuer metadata and status lists, so licences verify offline."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vault.licences.issuers import UnknownIssuer
from vault.wiring import Vault


def _vault(request: Request) -> Vault:
    vault: Vault = request.app.state.vault
    return vault


async def issuer_metadata(request: Request) -> Response:
    vault, code = _vault(request), request.path_params["code"]

    def load() -> dict[str, object]:
        with vault.db.session() as session:
            return vault.issuers.metadata(session, code)

    try:
        body = await run_in_threadpool(load)
    except UnknownIssuer as exc:
        return JSONResponse({"error": "not_found", "error_description": str(exc)}, status_code=404)
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=300"})


async def status_list(request: Request) -> Response:
    vault, code = _vault(request), request.path_params["code"]

    def load() -> str:
        with vault.db.session() as session:
            return vault.status_lists.token(session, code)

    try:
        token = await run_in_threadpool(load)
    except UnknownIssuer as exc:
        return JSONResponse({"error": "not_found", "error_description": str(exc)}, status_code=404)
    return Response(token, media_type="application/statuslist+jwt", headers={"Cache-Control": "no-cache"})


routes = [
    Route("/.well-known/jwt-vc-issuer/issuers/{code}", issuer_metadata),
    Route("/status-lists/{code}", status_list),
]
