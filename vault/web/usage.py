"""Who used my data: every access event about the data space's owner, newest first, and each event's inclusion proof.

A read under a legal mandate with a deferral stays hidden from the owner (list, filters and proof alike) until the
deferral has passed since the read, so that the owner cannot tip off the subject of an investigation in time.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault import clock
from vault.audit.errors import NotIntegrated
from vault.audit.events import Action
from vault.audit.models import AuditEvent
from vault.audit.services import InclusionProof
from vault.crypto.free_text import OwnerTexts
from vault.licences.errors import UnknownLicenceField, UnknownLicenceType
from vault.policy.catalogue import ServiceItem
from vault.policy.errors import UnknownMandate, UnknownServiceItem
from vault.web import i18n
from vault.web.dataspace import Space, space_of
from vault.web.errors import Forbidden
from vault.web.explain import explain, goes_out_masked
from vault.web.i18n import N_
from vault.web.rendering import clockface, current_lang, render
from vault.web.sessions import require_user, vault_of
from vault.web.timefmt import Clockface
from vault.wiring import Vault

PER_PAGE = 50
AGENCY = "agency:"
NO_SUCH_EVENT = N_("There is no such event in this data space.")
PROOF_PENDING = N_(
    "This event is recorded. It is being sealed into the log now: its proof is ready within seconds. Reload the page."
)
BAD_DATE = N_("Write dates as yyyy-mm-dd; the period was not applied.")
ACTIONS: dict[str, str] = {
    Action.CONSENT_APPROVED: N_("Consent given"),
    Action.CONSENT_DENIED: N_("Consent refused"),
    Action.CONSENT_EXPIRED: N_("Consent request expired unanswered"),
    Action.CONSENT_REQUESTED: N_("Asked for consent"),
    Action.FIELDS_DENIED: N_("Read refused"),
    Action.FIELDS_RELEASED: N_("Data read"),
    Action.GRANT_ACTIVATED: N_("Consent came into force"),
    Action.GRANT_EXHAUSTED: N_("Consent used up"),
    Action.GRANT_EXPIRED: N_("Consent ended"),
    Action.GRANT_REVOKED: N_("Consent revoked"),
    Action.LICENCE_ACTIVATED: N_("Licence came into force"),
    Action.LICENCE_EXPIRED: N_("Licence expired"),
    Action.LICENCE_ISSUED: N_("Licence issued"),
    Action.LICENCE_PRESENTED: N_("Licence presented"),
    Action.LICENCE_REINSTATED: N_("Licence reinstated"),
    Action.LICENCE_RENEWED: N_("Licence renewed"),
    Action.LICENCE_REVOKED: N_("Licence revoked"),
    Action.LICENCE_SUSPENDED: N_("Licence suspended"),
    Action.OWNER_CREATED: N_("Data space opened"),
    Action.OWNER_ERASED: N_("Data space erased"),
    Action.OWNER_ERASURE_REQUESTED: N_("Erasure requested"),
    Action.OWNER_LOOKED_UP: N_("Looked up by compliance staff"),
    Action.PREDICATE_ANSWERED: N_("Asked a question about your data"),
    Action.PREDICATE_DENIED: N_("Question refused"),
    Action.REPRESENTATIVE_ADDED: N_("Representative added"),
    Action.TOKEN_CODE_REPLAYED: N_("A used authorisation code was replayed and refused"),
    Action.TOKEN_ISSUED: N_("Access token issued"),
    Action.TOKEN_REFRESH_REPLAYED: N_("A used refresh token was replayed; its family was revoked"),
    Action.TOKEN_REVOKED: N_("Access token revoked"),
    Action.LICENCE_VIEWED: N_("Licence values opened in the web app"),
    Action.OWNER_ENROLLED: N_("Password set with an activation code"),
    Action.OWNER_ENROLMENT_ISSUED: N_("Activation code issued"),
    Action.REPRESENTATIVE_ENDED: N_("Representative ended"),
    Action.REPRESENTATIVE_LIMITED: N_("Representative's last day set"),
    Action.STAFF_EXPORTED: N_("Compliance staff exported records"),
    Action.STAFF_VIEWED: N_("Compliance staff looked at this data"),
    Action.AGENCY_SUSPENDED: N_("Agency suspended"),
    Action.AGENCY_REINSTATED: N_("Agency reinstated"),
}
OTHER_EVENT = N_("Other recorded event")  # an action this page does not know yet: never its internal name
MASKED = N_("masked")
YOU_FOR = N_("You, for %(enterprise)s")
ACTORS = {  # actor prefix -> who, for actors that are not an agency, an issuer or a person
    "system": N_("The vault, automatically"),
    "operator": N_("The vault's operator"),
    "staff": N_("Compliance staff"),
}
YOU = N_("You")
REPRESENTATIVE = N_("A representative")
THE_OWNER = N_("The owner")
OTHER_ACTOR = N_("Someone the vault does not name")
UNKNOWN_FIELD = N_("a field this vault no longer describes")
UNKNOWN_ITEM = N_("a service no longer in the catalogue")
UNKNOWN_LAW = N_("a law no longer in the catalogue")
UNKNOWN_QUESTION = N_("a question no longer in the catalogue")
QUESTIONS_GROUP = N_("Questions")
ANSWERED = {True: N_("Answered yes"), False: N_("Answered no")}
QUESTIONS = (Action.PREDICATE_ANSWERED, Action.PREDICATE_DENIED)


@dataclass(frozen=True)
class Text:
    """Something shown on the page: a msgid to translate, or data shown as it is."""

    value: str
    msgid: bool = False


@dataclass(frozen=True)
class EventRow:
    id: uuid.UUID
    at: datetime
    who: Text
    official: str | None
    action: Text
    item: str | None
    released: list[str]
    denied: list[str]
    grant_id: str | None
    mandate: str | None
    legal_basis: str | None
    case_reference: str | None
    decision: str | None  # allow, deny, or None when the event decided nothing
    reasons: tuple[str, ...]  # msgids: why, in words
    reason_typed: str | None  # a reason staff or an issuer wrote, shown as written
    policy_ids: tuple[str, ...]  # for staff only, in a details disclosure
    question: str | None = None  # a question asked instead of reading values, in the reader's language
    answer: str | None = None  # msgid: answered yes or no (None: refused, or the owner's key is gone)


@dataclass(frozen=True)
class Filters:
    agency: str = ""
    start: date | None = None
    end: date | None = None
    page: int = 1
    problem: str | None = None

    def query(self, **changes: Any) -> str:
        """This page's query string with `changes` applied, for the pager links."""
        values = {"agency": self.agency, "from": self.start, "to": self.end, "page": self.page, **changes}
        return urlencode({k: v for k, v in values.items() if v not in (None, "", 1)})


@dataclass(frozen=True)
class ActivityView:
    events: list[EventRow]
    agencies: list[tuple[str, str]]  # (client id, display name)
    total: int
    filters: Filters

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PER_PAGE))


EARLIEST, LATEST = date(1970, 1, 1), date(9998, 12, 31)  # a period's ends, with room to compute midnights


def _date(value: str) -> date | None:
    """An ISO date within EARLIEST..LATEST, None when empty; raises ValueError otherwise."""
    if not value:
        return None
    day = date.fromisoformat(value)
    if not EARLIEST <= day <= LATEST:
        raise ValueError("date out of range")
    return day


def filters_of(request: Request) -> Filters:
    """The filters in the query string; a malformed date drops the period and says so."""
    params = request.query_params
    agency = params.get("agency", "")[:100]
    page_text = params.get("page", "1")
    page = int(page_text) if page_text.isascii() and page_text.isdigit() and len(page_text) < 7 else 1
    try:
        start, end = _date(params.get("from", "")[:10]), _date(params.get("to", "")[:10])
    except ValueError:
        return Filters(agency, None, None, max(page, 1), BAD_DATE)
    return Filters(agency, start, end, max(page, 1))


def hidden_events(vault: Vault, db: Session, owner_id: uuid.UUID, now: datetime) -> set[int]:
    """Leaf indexes of the owner's events still under a mandate's deferral at `now`.

    Only agencies read under mandates, and only the last `longest deferral` days can still be deferred, so few
    entries are opened here however long the owner's history is.
    """
    deferrals = {m.id: m.deferral_days for m in vault.policy.catalogue.mandates.values() if m.deferral_days > 0}
    if not deferrals:
        return set()
    rows = db.execute(
        select(AuditEvent.seq, AuditEvent.created_at, AuditEvent.entry).where(
            AuditEvent.owner_id == owner_id,
            col(AuditEvent.actor).startswith(AGENCY),
            col(AuditEvent.created_at) > now - timedelta(days=max(deferrals.values())),
        )
    ).all()
    hidden = set()
    for index, at, entry in rows:
        days = deferrals.get(str(json.loads(entry).get("mandate")), 0)
        if days and at + timedelta(days=days) > now:
            hidden.add(int(index))
    return hidden


def _visible(query: Select[Any], owner_id: uuid.UUID, hidden: set[int]) -> Select[Any]:
    query = query.where(col(AuditEvent.owner_id) == owner_id)
    return query.where(col(AuditEvent.seq).not_in(sorted(hidden))) if hidden else query


class Describer:
    """Turns stored events into rows in one language, looking each agency name up once."""

    def __init__(self, vault: Vault, db: Session, space: Space, lang: str, *, staff: bool = False) -> None:
        self.vault, self.db, self.space, self.lang, self.staff = vault, db, space, lang, staff
        self._agencies: dict[str, str] = {}

    def _pick(self, zh: str, en: str) -> str:
        return en if self.lang == "en" else zh

    def agency(self, client_id: str) -> str:
        if client_id not in self._agencies:
            self._agencies[client_id] = self.vault.agencies.display_name(self.db, client_id, self.lang)
        return self._agencies[client_id]

    def who(self, actor: str) -> Text:
        kind, _, rest = actor.partition(":")
        if kind == "agency":
            return Text(self.agency(rest))
        if kind == "issuer":
            department = self.vault.catalogue.departments.get(rest)
            return Text(self._pick(department.name_zh, department.name_en) if department else rest)
        if kind == "owner" and self.staff:
            return Text(THE_OWNER if rest == str(self.space.owner_id) else REPRESENTATIVE, msgid=True)
        if kind == "owner":
            if rest != str(self.space.person_id):
                return Text(REPRESENTATIVE, msgid=True)
            if self.space.for_enterprise:
                enterprise = self.space.enterprise_name or self.gettext("(erased)")
                return Text(self.gettext(YOU_FOR) % {"enterprise": enterprise})
            return Text(YOU, msgid=True)
        return Text(ACTORS[kind], msgid=True) if kind in ACTORS else Text(OTHER_ACTOR, msgid=True)

    def gettext(self, msgid: str) -> str:
        return i18n.translations(self.lang).gettext(msgid)

    def field_labels(
        self, names: Iterable[str], licence_type: str | None, masked_for: ServiceItem | bool | None = False
    ) -> list[str]:
        """`<type>/<field>` ids (or bare field names of `licence_type`) as one "type: label, label" per type.

        With masked_for (the service item of a read under consent, or None for one under consent whose item is
        unknown), each field that leaves masked says so; a field this vault no longer knows is named as unknown.
        """
        colon, comma = (": ", ", ") if self.lang == "en" else ("：", "、")
        groups: dict[str, list[str]] = {}
        for name in names:
            if name.startswith("?"):  # a question consented to or asked, as the consent events name it
                predicate = self.vault.policy.catalogue.predicates.get(name[1:])
                text = predicate.question(self.lang, {}) if predicate else self.gettext(UNKNOWN_QUESTION)
                groups.setdefault(self.gettext(QUESTIONS_GROUP), []).append(text)
                continue
            type_code, _, field_name = name.rpartition("/")
            try:
                known = self.vault.catalogue.type(type_code or licence_type or "")
                field_def = known.field(field_name)
            except (UnknownLicenceType, UnknownLicenceField):
                groups.setdefault("", []).append(self.gettext(UNKNOWN_FIELD))
                continue
            label = self._pick(field_def.label_zh, field_def.label_en)
            if masked_for is not False and goes_out_masked(
                masked_for if isinstance(masked_for, ServiceItem) else None, known, field_name
            ):
                label += f" ({self.gettext(MASKED)})" if self.lang == "en" else f"（{self.gettext(MASKED)}）"
            groups.setdefault(self._pick(known.name_zh, known.name_en), []).append(label)
        return [(group + colon if group else "") + comma.join(labels) for group, labels in groups.items()]

    def case_reference(self, entry: dict[str, Any]) -> str | None:
        """The case text of a mandate event, sealed under the owner's key (the log holds its note id only)."""
        detail = entry.get("detail") or {}
        if "case_reference" in detail:  # events written before case references left the log
            return str(detail["case_reference"])
        try:
            note = uuid.UUID(str(detail["case_note"]))
        except (KeyError, ValueError):
            return None
        return OwnerTexts(self.vault.keys).open(self.db, note)

    def row(self, event: AuditEvent) -> EventRow:
        entry: dict[str, Any] = json.loads(event.entry)
        item = mandate = legal_basis = None
        known_item: ServiceItem | None = None
        if entry.get("service_item"):
            try:
                known_item = self.vault.policy.catalogue.item(entry["service_item"])
                item = self._pick(known_item.name_zh, known_item.name_en)
            except UnknownServiceItem:
                item = self.gettext(UNKNOWN_ITEM)
        if entry.get("mandate"):
            try:
                known_mandate = self.vault.policy.catalogue.mandate(entry["mandate"])
                mandate = self._pick(known_mandate.name_zh, known_mandate.name_en)
                legal_basis = known_mandate.legal_basis
            except UnknownMandate:
                mandate = self.gettext(UNKNOWN_LAW)
        action = ACTIONS.get(event.action, OTHER_EVENT)  # Action is a StrEnum: its members hash as their values
        detail = entry.get("detail") or {}
        case = self.case_reference(entry)
        typed = event.actor.split(":", 1)[0] in ("staff", "issuer", "operator")
        reason = entry.get("reason") or self.note(detail.get("reason_note"))
        why = explain(reason, entry.get("decision"), typed_by_person=typed)
        # a read under consent says which fields went out masked; under a law they go out as the law names them
        under_consent: ServiceItem | bool | None = (
            known_item if event.action == Action.FIELDS_RELEASED and entry.get("grant") else False
        )
        question = answer = None
        if event.action in QUESTIONS:
            question, answer = self.question(detail)
        return EventRow(
            id=event.id,
            at=event.created_at,
            who=self.who(event.actor),
            official=entry.get("official") or self.note(detail.get("official_note")),
            action=Text(action, msgid=True),
            item=item,
            released=self.field_labels(entry.get("fields") or [], entry.get("licence_type"), under_consent),
            denied=self.field_labels(entry.get("denied_fields") or [], entry.get("licence_type")),
            grant_id=entry.get("grant"),
            mandate=mandate,
            legal_basis=legal_basis,
            case_reference=str(case) if case else None,
            decision=entry.get("decision"),
            reasons=why.sentences,
            reason_typed=why.free_text,
            policy_ids=why.policy_ids,
            question=question,
            answer=answer,
        )

    def question(self, detail: dict[str, Any]) -> tuple[str, str | None]:
        """The question an agency asked (with its parameters) and the answer, opened from its sealed note."""
        predicate = self.vault.policy.catalogue.predicates.get(str(detail.get("predicate")))
        sealed: dict[str, Any] = {}
        opened = self.note(detail.get("answer_note"))
        if opened:
            try:
                sealed = json.loads(opened)
            except ValueError:
                sealed = {}
        parameters = sealed.get("parameters") if isinstance(sealed.get("parameters"), dict) else {}
        text = predicate.question(self.lang, parameters or {}) if predicate else self.gettext(UNKNOWN_QUESTION)
        answer = sealed.get("answer")
        return text, ANSWERED.get(answer) if isinstance(answer, bool) else None

    def note(self, note_id: object) -> str | None:
        """Free text kept under the owner's key (a reason, an official); None once erased or when there is none."""
        if not isinstance(note_id, str):
            return None
        try:
            return self.vault.licences.texts.open(self.db, uuid.UUID(note_id))
        except ValueError:
            return None


def activity_view(
    vault: Vault, db: Session, space: Space, filters: Filters, lang: str, face: Clockface
) -> ActivityView:
    hidden = hidden_events(vault, db, space.owner_id, clock.utcnow())
    describe = Describer(vault, db, space, lang)
    actors = db.scalars(
        _visible(select(AuditEvent.actor).distinct(), space.owner_id, hidden).where(
            col(AuditEvent.actor).startswith(AGENCY)
        )
    ).all()
    agencies = sorted(
        ((a.removeprefix(AGENCY), describe.agency(a.removeprefix(AGENCY))) for a in actors), key=lambda a: a[1]
    )
    query = _visible(select(AuditEvent), space.owner_id, hidden)
    if filters.agency:
        query = query.where(col(AuditEvent.actor) == AGENCY + filters.agency)
    if filters.start:
        query = query.where(col(AuditEvent.created_at) >= face.midnight(filters.start))
    if filters.end:
        query = query.where(col(AuditEvent.created_at) < face.midnight(filters.end + timedelta(days=1)))
    total = int(db.scalar(select(func.count()).select_from(query.subquery())) or 0)
    page = db.scalars(
        query.order_by(col(AuditEvent.seq).desc()).offset((filters.page - 1) * PER_PAGE).limit(PER_PAGE)
    ).all()
    return ActivityView([describe.row(e) for e in page], agencies, total, filters)


async def activity(request: Request) -> Response:
    """GET /activity?agency=&from=&to=&page=: the data space's access events, newest first, 50 a page."""
    user = await require_user(request)
    vault, lang, filters = vault_of(request), current_lang(request, user), filters_of(request)
    face = clockface(request, lang)

    def load() -> tuple[Space, ActivityView]:
        with vault.db.session() as db:
            space = space_of(vault, db, user)
            return space, activity_view(vault, db, space, filters, lang, face)

    space, view = await run_in_threadpool(load)
    return await render(request, "activity.html", {"space": space, "view": view})


def _event_id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["event_id"])
    except ValueError:
        raise Forbidden(NO_SUCH_EVENT) from None


async def _load_proof(request: Request) -> tuple[Space, EventRow, InclusionProof | None]:
    """The event named in the path and its inclusion proof, if the event is visible in this data space."""
    user = await require_user(request)
    vault, lang, event_id = vault_of(request), current_lang(request, user), _event_id(request)

    def load() -> tuple[Space, EventRow, InclusionProof | None]:
        with vault.db.session() as db:
            space = space_of(vault, db, user)
            event = db.scalars(select(AuditEvent).where(AuditEvent.id == event_id)).first()
            if (
                event is None
                or event.owner_id != space.owner_id
                or event.seq in hidden_events(vault, db, space.owner_id, clock.utcnow())
            ):
                raise Forbidden(NO_SUCH_EVENT)
            row = Describer(vault, db, space, lang).row(event)
            try:
                return space, row, vault.audit.prove(db, event_id)
            except NotIntegrated:  # committed, not yet sequenced: the page says so and the proof follows
                return space, row, None

    return await run_in_threadpool(load)


def proof_json(proof: InclusionProof) -> str:
    return json.dumps(proof.as_json(), ensure_ascii=False, indent=2)


async def proof_page(request: Request) -> Response:
    """GET /activity/{event_id}/proof: the event's inclusion proof against the latest signed checkpoint."""
    space, row, proof = await _load_proof(request)
    context = {"space": space, "event": row, "proof": proof, "proof_json": proof_json(proof) if proof else ""}
    return await render(request, "proof.html", context)


async def proof_download(request: Request) -> Response:
    """GET /activity/{event_id}/proof.json: the same proof as a file."""
    _space, _row, proof = await _load_proof(request)
    if proof is None:
        return Response(PROOF_PENDING, status_code=503, headers={"Retry-After": "1", "Cache-Control": "no-store"})
    headers = {"Content-Disposition": f'attachment; filename="inclusion-proof-{proof.event_id}.json"'}
    return Response(proof_json(proof), media_type="application/json", headers={**headers, "Cache-Control": "no-store"})


routes = [
    Route("/activity", activity, methods=["GET"]),
    Route("/activity/{event_id}/proof", proof_page, methods=["GET"]),
    Route("/activity/{event_id}/proof.json", proof_download, methods=["GET"]),
]
