"""The compliance console, for staff accounts only: grant review (console_grants), charts (console_charts) and the
audit log (console_audit). Every page answers 403 to anyone signed in without the staff role."""

from __future__ import annotations

from starlette.routing import BaseRoute

from vault.web import console_audit, console_charts, console_grants, console_owners, console_representatives

routes: list[BaseRoute] = [
    *console_owners.routes,
    *console_grants.routes,
    *console_charts.routes,
    *console_audit.routes,
    *console_representatives.routes,
]
