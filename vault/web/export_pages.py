"""My data, exported (PIPL art. 45): one POST downloads the data space's signed bundle; /verify/export checks one."""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault import clock
from vault.crypto.services import VAULT_SIGNING
from vault.licences.showing import new_nonce
from vault.portability.errors import ExportError
from vault.portability.verify import ExportReport, verify_export
from vault.web.csrf import check_form_post, require_post
from vault.web.dataspace import space_of
from vault.web.i18n import N_
from vault.web.licences_pages import NO_STORE
from vault.web.rendering import render
from vault.web.sessions import vault_of

MAX_EXPORT_BYTES = 16 * 1024 * 1024
NO_FILE = N_("Choose the exported file first.")
NOT_AN_EXPORT = N_("This file is not an export of this vault.")


async def download(request: Request) -> Response:
    """POST /export: the data space's export as a signed JSON file (recorded in the access log)."""
    user = await require_post(request)
    vault = vault_of(request)

    def run() -> bytes:
        with vault.db.session() as db:
            space = space_of(vault, db, user)
            document = vault.exports.export(db, space.owner_id, actor=space.actor)
        return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")

    body = await run_in_threadpool(run)
    name = f"my-data-{clock.utcnow().strftime('%Y%m%d')}.json"
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(body, media_type="application/json", headers=headers)


async def check(request: Request) -> Response:
    """POST /verify/export, a file `export`: checked against this vault's own keys; nothing is kept."""
    # parsed here first with room for one file; the CSRF check then reads the same, cached, form
    async with request.form(max_files=1, max_fields=5, max_part_size=MAX_EXPORT_BYTES) as form:
        await check_form_post(request)
        upload = form.get("export")
        data = await upload.read(MAX_EXPORT_BYTES + 1) if isinstance(upload, UploadFile) else b""
    context: dict[str, object] = {"nonce": new_nonce(), "outcome": None}
    if not data or len(data) > MAX_EXPORT_BYTES:
        context["problem"] = NO_FILE
        return await render(request, "verify.html", context, status_code=400, headers=NO_STORE)
    vault = vault_of(request)

    def run() -> ExportReport:
        with vault.db.session() as db:
            keys = vault.keys.trusted_public_keys(db, VAULT_SIGNING)
        return verify_export(data, trusted_keys=keys)

    try:
        report = await run_in_threadpool(run)
    except ExportError:
        context["problem"] = NOT_AN_EXPORT
        return await render(request, "verify.html", context, status_code=400, headers=NO_STORE)
    context["export_report"] = report
    return await render(request, "verify.html", context, headers=NO_STORE)


routes = [
    Route("/export", download, methods=["POST"]),
    Route("/verify/export", check, methods=["POST"]),
]
