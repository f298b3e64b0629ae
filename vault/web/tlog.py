"""The access log as static resources (C2SP tlog-tiles): /log/checkpoint, /log/tile/<L>/<N>[.p/<W>], and the
log's verifier key at /log/key, so anyone can mirror the tree and check proofs without asking the vault."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from vault.audit import sequencer, tiles
from vault.web.sessions import vault_of
from vault.wiring import Vault

IMMUTABLE = "public, max-age=31536000, immutable"


def _checkpoint(vault: Vault) -> str | None:
    with vault.db.read_session() as session:
        row = vault.audit.latest_checkpoint(session)
        return vault.audit.cosigned_note(session, row) if row and row.signed.endswith("\n") else None


async def checkpoint(request: Request) -> Response:
    signed = await run_in_threadpool(_checkpoint, vault_of(request))
    if signed is None:
        return PlainTextResponse("the log has no checkpoint yet\n", status_code=404)
    return PlainTextResponse(signed, headers={"Cache-Control": "no-cache, max-age=1"})


def _tile(vault: Vault, level: int, idx: int, width: int) -> bytes | None:
    with vault.db.read_session() as session:
        data = sequencer.tile_getter(session)(level, idx)
    return data[: width * tiles.HASH_SIZE] if len(data) >= width * tiles.HASH_SIZE else None


async def tile(request: Request) -> Response:
    try:
        level, idx, width = tiles.parse_tile_path(request.path_params["path"])
    except ValueError as error:
        return PlainTextResponse(f"{error}\n", status_code=400)
    data = await run_in_threadpool(_tile, vault_of(request), level, idx, width)
    if data is None:
        return PlainTextResponse("no such tile\n", status_code=404)
    return Response(data, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE})


def _key(vault: Vault) -> str:
    with vault.db.read_session() as session:
        return vault.audit.log_key(session)


async def key(request: Request) -> Response:
    return PlainTextResponse(await run_in_threadpool(_key, vault_of(request)) + "\n")


routes = [
    Route("/log/checkpoint", checkpoint, methods=["GET"]),
    Route("/log/key", key, methods=["GET"]),
    Route("/log/tile/{path:path}", tile, methods=["GET"]),
]
