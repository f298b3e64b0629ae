"""The Starlette application: health endpoints and the web pages; OAuth and GraphQL mount here as they arrive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from vault import maintenance
from vault.api import app as api
from vault.audit import publishing, sequencer
from vault.config import Settings, load_settings
from vault.db import SchemaError, check_schema
from vault.logs import configure
from vault.oauth import endpoints as oauth_endpoints
from vault.owners import accounts
from vault.web import consent as consent_pages
from vault.web import grants_pages, pages, tlog, wellknown
from vault.wiring import Vault, build_vault

log = logging.getLogger("vault.web")
SEQUENCE_INTERVAL = 0.5  # seconds: an event's proof is ready about this long after it commits


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def _readiness(vault: Vault) -> dict[str, object]:
    checks: dict[str, object] = {}
    try:
        checks["database"] = vault.db.ping()
    except Exception as exc:  # a readiness probe reports, it does not crash
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        checks["database"] = False
    try:
        check_schema(vault.db.read_engine)
        checks["migrations"] = True
    except (SchemaError, Exception) as exc:
        log.warning("readiness: schema not current: %s", exc)
        checks["migrations"] = False
    checks["keys"] = bool(vault.keyring.key_ids())
    return checks


async def readyz(request: Request) -> JSONResponse:
    vault: Vault = request.app.state.vault
    checks = await run_in_threadpool(_readiness, vault)
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


def create_app(settings: Settings | None = None, vault: Vault | None = None) -> Starlette:
    settings = settings or (vault.settings if vault else load_settings())
    configure(settings.log_level, settings.log_dir)
    the_vault = vault or build_vault(settings)
    accounts.unknown_login_hash()  # now, rather than during the first sign-in with an unknown login name

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        leadership = maintenance.leadership_for(the_vault)
        task = asyncio.create_task(maintenance.loop(the_vault, settings.checkpoint_interval_seconds, leadership))
        sequencing = asyncio.create_task(  # the leader's sequencer, more often than maintenance rounds
            sequencer.loop(
                lambda: publishing.sequence_step(the_vault.audit, the_vault.db),
                SEQUENCE_INTERVAL,
                leading=lambda: leadership.held,
            )
        )
        try:
            yield
        finally:
            for running in (task, sequencing):
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            if leadership.held:  # a last signed checkpoint on the way out, by the leader only
                await run_in_threadpool(maintenance.run_once, the_vault)
            leadership.release()
            if vault is None:
                the_vault.close()

    app = Starlette(
        debug=False,
        routes=[
            *api.routes,  # first: the router tries each route's pattern in turn, and agencies' reads are the most
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *wellknown.routes,
            *tlog.routes,
            *oauth_endpoints.routes,
            *consent_pages.routes,
            *grants_pages.routes,
            *pages.routes,
        ],
        middleware=pages.middleware(settings),
        exception_handlers=pages.exception_handlers,
        lifespan=lifespan,
    )
    app.state.vault = the_vault
    return app
