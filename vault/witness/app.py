"""The witness's HTTP interface: POST /add-checkpoint (tlog-witness) and GET /latest-checkpoint?origin=…, the latest
cosigned checkpoint of a log, for auditors (the protocol leaves monitor retrieval open)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from vault.witness.service import MAX_BODY, Answer, Witness


def _response(answer: Answer) -> Response:
    return PlainTextResponse(answer.body, status_code=answer.status, media_type=answer.content_type)


def create_witness_app(witness: Witness) -> Starlette:
    async def add_checkpoint(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse("the request is too large\n", status_code=413)
        return _response(await run_in_threadpool(witness.add_checkpoint, body))

    async def latest(request: Request) -> Response:
        origin = request.query_params.get("origin", "")
        if not origin:
            return PlainTextResponse("name the log: ?origin=<checkpoint origin>\n", status_code=400)
        return _response(await run_in_threadpool(witness.latest, origin))

    async def key(request: Request) -> Response:
        return PlainTextResponse(witness.verifier.vkey + "\n")

    return Starlette(
        routes=[
            Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route("/latest-checkpoint", latest, methods=["GET"]),
            Route("/key", key, methods=["GET"]),
        ]
    )
