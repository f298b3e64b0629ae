"""The console's charts: reads per agency per day, consent approvals and denials per service item, and submissions
saved. The numbers are counted from the access log, embedded in the page as JSON (drawn by the vendored Chart.js
from /static, with the same numbers in plain tables) and served as JSON at /console/charts/data."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vault.audit.events import Action
from vault.audit.models import AuditEvent
from vault.web import i18n
from vault.web.console_grants import ACCESS_ACTIONS, AGENCY_ACTOR, agency_of, day_start, local_day, require_staff
from vault.web.i18n import N_
from vault.web.rendering import current_lang, render
from vault.web.sessions import today, vault_of
from vault.wiring import Vault

CHART_DAYS = 30
CONSENT_ACTIONS = (Action.CONSENT_APPROVED.value, Action.CONSENT_DENIED.value)
# the words the chart script draws with; the page's own text is in the template
CHART_TEXT = {
    "accesses": N_("Reads per agency per day"),
    "consent": N_("Approvals and denials per service item"),
    "saved": N_("Submissions saved per day"),
    "approved": N_("Approved"),
    "denied": N_("Denied"),
    "reads": N_("Reads"),
    "decisions": N_("Decisions"),
    "submissions": N_("Submissions saved"),
}


@dataclass(frozen=True)
class AgencySeries:
    client_id: str
    label: str
    counts: list[int]

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class ItemDecisions:
    code: str
    label: str
    approved: int
    denied: int


@dataclass(frozen=True)
class Charts:
    days: list[date]
    accesses: list[AgencySeries]
    consent: list[ItemDecisions]
    saved: list[int]

    @property
    def saved_total(self) -> int:
        return sum(self.saved)

    def as_json(self, lang: str) -> dict[str, Any]:
        text = i18n.translations(lang)
        return {
            "days": [d.isoformat() for d in self.days],
            "accesses": [{"agency": s.client_id, "label": s.label, "counts": s.counts} for s in self.accesses],
            "consent": [
                {"item": i.code, "label": i.label, "approved": i.approved, "denied": i.denied} for i in self.consent
            ],
            "submissions_saved": {"counts": self.saved, "total": self.saved_total},
            "text": {key: text.gettext(msgid) for key, msgid in CHART_TEXT.items()},
        }


def charts(vault: Vault, last_day: date, lang: str) -> Charts:
    """The CHART_DAYS days up to and including `last_day`, counted from the access log."""
    days = [last_day - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
    position = {d: n for n, d in enumerate(days)}
    start, end = day_start(days[0]), day_start(last_day + timedelta(days=1))
    reads: dict[str, list[int]] = {}
    saved = [0] * CHART_DAYS
    decisions: dict[str, Counter[str]] = {}
    with vault.db.session() as db:
        in_period = (col(AuditEvent.created_at) >= start, col(AuditEvent.created_at) < end)
        for actor, action, created_at in db.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.created_at).where(
                col(AuditEvent.action).in_(ACCESS_ACTIONS), col(AuditEvent.actor).startswith(AGENCY_ACTOR), *in_period
            )
        ):
            n = position.get(local_day(created_at))
            client_id = agency_of(actor)
            if n is None or client_id is None:
                continue
            reads.setdefault(client_id, [0] * CHART_DAYS)[n] += 1
            if action == Action.FIELDS_RELEASED:
                saved[n] += 1
        for action, entry in db.execute(
            select(AuditEvent.action, AuditEvent.entry).where(col(AuditEvent.action).in_(CONSENT_ACTIONS), *in_period)
        ):
            try:
                item = json.loads(entry).get("service_item")
            except ValueError:  # a damaged entry is the audit page's business; it is not counted here
                continue
            if isinstance(item, str):
                decisions.setdefault(item, Counter())[action] += 1
        names = {a.client_id: (a.name_en if lang == "en" else a.name_zh) for a in vault.agencies.all(db)}
    items = vault.policy.catalogue.items
    return Charts(
        days=days,
        accesses=[AgencySeries(c, names.get(c, c), counts) for c, counts in sorted(reads.items())],
        consent=[
            ItemDecisions(
                code,
                (items[code].name_en if lang == "en" else items[code].name_zh) if code in items else code,
                counted[Action.CONSENT_APPROVED.value],
                counted[Action.CONSENT_DENIED.value],
            )
            for code, counted in sorted(decisions.items())
        ],
        saved=saved,
    )


async def _charts(request: Request) -> tuple[Charts, str]:
    user = await require_staff(request)
    lang = current_lang(request, user)
    return await run_in_threadpool(charts, vault_of(request), today(), lang), lang


async def charts_page(request: Request) -> Response:
    data, lang = await _charts(request)
    return await render(request, "console_charts.html", {"charts": data, "chart_json": data.as_json(lang)})


async def charts_data(request: Request) -> Response:
    """GET /console/charts/data: the page's numbers as JSON (days oldest first, one count per day)."""
    data, lang = await _charts(request)
    return JSONResponse(data.as_json(lang), headers={"Cache-Control": "no-store"})


routes = [
    Route("/console/charts", charts_page, methods=["GET"], name="console_charts"),
    Route("/console/charts/data", charts_data, methods=["GET"]),
]
