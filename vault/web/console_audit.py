"""The console's audit page: verify the whole access log on demand, show the latest signed checkpoint, and export
the events of a period as CSV (names of fields and pseudonymous ids only: the log never holds a value)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from vault.audit import note
from vault.audit.errors import NoteError
from vault.audit.events import Action, Event
from vault.audit.models import AuditEvent
from vault.audit.services import VerifyReport
from vault.crypto import jws
from vault.crypto.errors import JwsError
from vault.web.console_grants import day_start, require_staff, require_staff_post, staff_actor
from vault.web.i18n import N_
from vault.web.rendering import render
from vault.web.sessions import today, vault_of
from vault.wiring import Vault

EXPORT_MAX_DAYS = 366
EXPORT_BATCH = 1000
BAD_PERIOD = N_("Give the first and the last day of the period, the first not after the last.")
LONG_PERIOD = N_("Export at most 366 days at a time.")
CSV_COLUMNS = (
    "index",
    "time",
    "action",
    "actor",
    "owner",
    "licence_type",
    "fields",
    "denied_fields",
    "purpose",
    "service_item",
    "grant",
    "mandate",
    "decision",
    "reason",
)
# what a spreadsheet would run as a formula if a cell began with it (OWASP, "CSV injection")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class CheckpointView:
    size: int
    root: str
    created_at: datetime
    signed: str
    key_id: str | None


@dataclass(frozen=True)
class Period:
    start: date
    end: date


def latest_checkpoint(vault: Vault) -> CheckpointView | None:
    with vault.db.session() as db:
        row = vault.audit.latest_checkpoint(db)
        if row is None:
            return None
        kid = _key_id(row.signed)
        return CheckpointView(
            size=row.tree_size,
            root=jws.b64url_encode(row.root),
            created_at=row.created_at.astimezone(),
            signed=row.signed,
            key_id=kid,
        )


def _key_id(signed: str) -> str | None:
    """The signing key's id: the JWS `kid` of an old checkpoint, the note key id (hex) of a current one."""
    if signed.startswith("ey"):
        try:
            kid = jws.decode_unverified(signed)[0].get("kid")
        except JwsError:
            return None
        return str(kid) if kid is not None else None
    try:
        return note.parse_note(signed).signatures[0].key_id.hex()
    except NoteError:
        return None


def verify(vault: Vault) -> VerifyReport:
    return vault.audit.verify(vault.db.engine, full=True)  # on demand: the whole log, from a snapshot


async def _page(
    request: Request,
    *,
    report: VerifyReport | None = None,
    period: Period | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    checkpoint = await run_in_threadpool(latest_checkpoint, vault_of(request))
    day = today()
    context = {
        "checkpoint": checkpoint,
        "report": report,
        "period": period or Period(day - timedelta(days=30), day),
        "problem": problem,
        "max_days": EXPORT_MAX_DAYS,
    }
    return await render(request, "console_audit.html", context, status_code=status_code)


async def audit_page(request: Request) -> Response:
    await require_staff(request)
    return await _page(request)


async def verify_log(request: Request) -> Response:
    """POST /console/audit/verify: recompute every leaf and checkpoint, and show where the log breaks, if it does."""
    await require_staff_post(request)
    report = await run_in_threadpool(verify, vault_of(request))
    return await _page(request, report=report)


def parse_period(first: str | None, last: str | None) -> Period | str:
    """The period the export form names, or the msgid of what is wrong with it."""
    try:
        period = Period(date.fromisoformat((first or "").strip()), date.fromisoformat((last or "").strip()))
    except ValueError:
        return BAD_PERIOD
    if period.start > period.end:
        return BAD_PERIOD
    if (period.end - period.start).days >= EXPORT_MAX_DAYS:
        return LONG_PERIOD
    return period


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(event: AuditEvent) -> list[str]:
    """One event as a CSV row: the indexed columns, then the entry's own parts (an unreadable entry leaves them out)."""
    try:
        entry = json.loads(event.entry)
    except ValueError:
        entry = {}
    if not isinstance(entry, dict):
        entry = {}
    head = [event.leaf_index, event.created_at.isoformat(timespec="microseconds"), event.action, event.actor]
    return [_cell(v) for v in [*head, event.owner_id, *(entry.get(c) for c in CSV_COLUMNS[5:])]]


def csv_chunks(vault: Vault, period: Period, upto: int | None = None) -> Iterator[bytes]:
    """The export, a batch of events at a time, each in its own short transaction; the log as it was before `upto`."""
    start, end = day_start(period.start), day_start(period.end + timedelta(days=1))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue().encode("utf-8-sig")  # the byte-order mark lets spreadsheets read the Chinese right
    after = -1
    while True:
        buffer.seek(0)
        buffer.truncate()
        with vault.db.session() as db:
            rows = db.scalars(
                select(AuditEvent)
                .where(
                    col(AuditEvent.created_at) >= start,
                    col(AuditEvent.created_at) < end,
                    col(AuditEvent.seq) > after,
                    col(AuditEvent.seq) < (upto if upto is not None else 2**62),
                )
                .order_by(col(AuditEvent.seq))
                .limit(EXPORT_BATCH)
            ).all()
            for row in rows:
                writer.writerow(csv_row(row))
            if not rows:
                return
            after = rows[-1].seq or after
        yield buffer.getvalue().encode("utf-8")


def record_export(vault: Vault, actor: str, period: Period) -> int:
    """Record the export, committed before the first byte leaves (a failed record sends nothing); its arrival number."""
    detail = {"export": "audit-events", "from": period.start.isoformat(), "to": period.end.isoformat()}
    with vault.db.session() as db:
        return int(vault.audit.append(db, Event(Action.STAFF_EXPORTED, actor, detail=detail)).seq or 0)


async def export_csv(request: Request) -> Response:
    """GET /console/audit/export.csv?from=YYYY-MM-DD&to=YYYY-MM-DD (both days included, the vault's local days)."""
    user = await require_staff(request)
    period = parse_period(request.query_params.get("from"), request.query_params.get("to"))
    if isinstance(period, str):
        return await _page(request, problem=period, status_code=400)
    upto = await run_in_threadpool(record_export, vault_of(request), staff_actor(user), period)
    name = f"audit-events-{period.start.isoformat()}-{period.end.isoformat()}.csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    return StreamingResponse(
        csv_chunks(vault_of(request), period, upto), media_type="text/csv; charset=utf-8", headers=headers
    )


routes = [
    Route("/console/audit", audit_page, methods=["GET"], name="console_audit"),
    Route("/console/audit/verify", verify_log, methods=["POST"]),
    Route("/console/audit/export.csv", export_csv, methods=["GET"]),
]
