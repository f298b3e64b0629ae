"""My licences: a card per licence, one licence's fields masked until asked for, and presentations for a counter.

Values are decrypted only inside the data space they belong to, and only the ones a page shows: a masked view
leaves redacted fields sealed. A presentation is never stored: it is rendered (text and QR code) or downloaded
from the response to the POST that made it, and its making is recorded in the access log.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import segno
from markupsafe import Markup
from sqlalchemy.orm import Session
from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault.licences.lifecycle import LicenceState
from vault.licences.masking import REDACTED, MaskKind, parse_mask_rule
from vault.licences.models import Licence, LicenceField, LicenceVersion
from vault.licences.services import LicenceSummary, presentation_fields
from vault.licences.showing import normalise_nonce
from vault.licences.types import FieldDef, LicenceType, Sensitivity
from vault.web import i18n
from vault.web.csrf import field, require_post
from vault.web.dataspace import Space, space_of
from vault.web.errors import Forbidden
from vault.web.i18n import N_
from vault.web.rendering import current_lang, render
from vault.web.sessions import SignedIn, require_user, vault_of
from vault.wiring import Vault

ON_FILE = N_("On file with the issuer; not shown here")
NO_SUCH_LICENCE = N_("There is no such licence in this data space.")
NO_FIELD = N_("Tick at least one field to present.")
BAD_COUNTER_CODE = N_("The counter code is six letters and digits, as the counter's screen shows it.")
NOT_IN_FORCE = N_("Only a licence in force can be presented: a presentation of this one would not verify.")
MEDIA_TYPE = "application/dc+sd-jwt"
NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class LicenceCard:
    id: uuid.UUID
    type_code: str
    type_name: str
    issuer: str
    state: str
    valid_from: date | None
    valid_until: date | None


@dataclass(frozen=True)
class FieldRow:
    name: str
    label: str
    sensitivity: str
    value: str | None  # masked unless revealed; None when the licence has no such field


@dataclass(frozen=True)
class LicenceDetail:
    card: LicenceCard
    fields: list[FieldRow]
    revealed: bool

    @property
    def presentable(self) -> bool:
        return self.card.state == LicenceState.ACTIVE


@dataclass(frozen=True)
class Presentation:
    card: LicenceCard
    text: str
    labels: list[str]
    qr: Markup | None  # None when the text is too long for a QR code
    expires: int  # unix seconds: after this the showing no longer verifies
    expires_label: str  # the same, as local time for the page
    nonce: str | None  # the counter's code it was made for

    @property
    def data_url(self) -> str:
        return f"data:{MEDIA_TYPE};base64,{base64.b64encode(self.text.encode()).decode()}"

    @property
    def filename(self) -> str:
        return filename(self.card)


def filename(card: LicenceCard) -> str:
    return f"{card.type_code}-presentation.sd-jwt"


def _card(vault: Vault, summary: LicenceSummary, lang: str) -> LicenceCard:
    licence_type = vault.catalogue.type(summary.type_code)
    department = vault.catalogue.departments.get(summary.issuer_code)
    issuer = summary.issuer_code
    if department is not None:
        issuer = department.name_en if lang == "en" else department.name_zh
    return LicenceCard(
        id=summary.id,
        type_code=summary.type_code,
        type_name=licence_type.name_en if lang == "en" else licence_type.name_zh,
        issuer=issuer,
        state=summary.state,
        valid_from=summary.valid_from,
        valid_until=summary.valid_until,
    )


def _summary(licence: Licence, version: LicenceVersion) -> LicenceSummary:
    return LicenceSummary(
        licence.id,
        licence.owner_id,
        licence.type_code,
        licence.issuer_code,
        licence.state,
        licence.current_version,
        version.valid_from,
        licence.valid_until,
    )


def _label(field_def: FieldDef, lang: str) -> str:
    return field_def.label_en if lang == "en" else field_def.label_zh


def _licence_id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["licence_id"])
    except ValueError:
        raise Forbidden(NO_SUCH_LICENCE) from None


def _licence(vault: Vault, db: Session, space: Space, licence_id: uuid.UUID) -> Licence:
    """The licence if it belongs to this data space (validity applied), else Forbidden: nothing else is opened."""
    row = db.get(Licence, licence_id)
    if row is None or row.owner_id != space.owner_id:
        raise Forbidden(NO_SUCH_LICENCE)
    return vault.licences.get(db, licence_id)


def _present_names(db: Session, version: LicenceVersion) -> set[str]:
    """Which fields this version has, from the sealed rows' names alone."""
    return set(db.scalars(select(LicenceField.name).where(LicenceField.version_id == version.id)))


def _shown(licence_type: LicenceType, names: set[str], reveal: bool) -> list[str]:
    """The fields whose values the page needs: all when revealed, else those a mask does not hide whole."""
    return [
        f.name
        for f in licence_type.fields
        if f.name in names and (reveal or parse_mask_rule(f.mask).kind is not MaskKind.REDACT)
    ]


def _detail(vault: Vault, db: Session, space: Space, licence_id: uuid.UUID, lang: str, reveal: bool) -> LicenceDetail:
    licence = _licence(vault, db, space, licence_id)
    licence_type = vault.catalogue.type(licence.type_code)
    version = vault.licences.current_version(db, licence)
    names = _present_names(db, version)
    shown = _shown(licence_type, names, reveal)
    masked = [] if reveal else [n for n in shown if parse_mask_rule(licence_type.field(n).mask).kind != MaskKind.FULL]
    values = vault.licences.view(db, licence, shown, actor=space.actor, masked=masked, version=version)
    rows = []
    for f in licence_type.fields:
        if f.name not in names:
            value = None
        elif f.sensitivity is Sensitivity.BIOMETRIC:  # a photo's stored form means nothing to a person
            value = i18n.translations(lang).gettext(ON_FILE)
        elif f.name not in values:
            value = REDACTED  # wholly hidden by its mask: left sealed
        else:
            value = str(values[f.name]) if reveal else f.masked(values[f.name])
        rows.append(FieldRow(f.name, _label(f, lang), f.sensitivity.value, value))
    return LicenceDetail(_card(vault, _summary(licence, version), lang), rows, reveal)


async def licences(request: Request) -> Response:
    """GET /licences: the data space's licences as cards; no field value is opened."""
    user = await require_user(request)
    vault, lang = vault_of(request), current_lang(request, user)

    def load() -> tuple[Space, list[LicenceCard]]:
        with vault.db.session() as db:
            space = space_of(vault, db, user)
            return space, [_card(vault, s, lang) for s in vault.licences.list_for_owner(db, space.owner_id)]

    space, cards = await run_in_threadpool(load)
    return await render(request, "licences.html", {"space": space, "licences": cards})


async def _detail_page(
    request: Request, user: SignedIn, *, reveal: bool, problem: str | None = None, status_code: int = 200
) -> Response:
    vault, lang, licence_id = vault_of(request), current_lang(request, user), _licence_id(request)

    def load() -> tuple[Space, LicenceDetail]:
        with vault.db.session() as db:
            space = space_of(vault, db, user)
            return space, _detail(vault, db, space, licence_id, lang, reveal)

    space, detail = await run_in_threadpool(load)
    # `section` marks the navigation on a POST's answer too (its current_path is the home page)
    context = {"space": space, "licence": detail, "problem": problem, "section": f"/licences/{licence_id}"}
    return await render(request, "licence.html", context, status_code=status_code, headers=NO_STORE)


async def licence(request: Request) -> Response:
    """GET /licences/{id}: the fields by label, values masked."""
    return await _detail_page(request, await require_user(request), reveal=False)


async def reveal(request: Request) -> Response:
    """POST /licences/{id}/reveal: the same page with the full values, on this response only (no-store)."""
    return await _detail_page(request, await require_post(request), reveal=True)


def qr_code(text: str) -> Markup | None:
    """The text as an inline SVG QR code (error correction L, the most capacity); None if it does not fit."""
    try:
        code = segno.make(text, error="l", boost_error=False, micro=False)
    except segno.DataOverflowError:
        return None
    # segno writes only numbers and path data into the SVG, nothing from the text itself
    svg = code.svg_inline(scale=1, border=4, dark="#000", light="#fff", omitsize=True, svgclass="qr-code")
    return Markup(svg)  # noqa: S704


async def present(request: Request) -> Response:
    """POST /licences/{id}/present, ticked `field` names and `as` show|download: a presentation of those fields.

    `show` answers a page with the text, a download link and the QR code; `download` answers the file itself.
    """
    user = await require_post(request)
    form = await request.form()
    ticked = {v for v in form.getlist("field") if isinstance(v, str)}
    download = field(form, "as", 20) == "download"
    vault, lang, licence_id = vault_of(request), current_lang(request, user), _licence_id(request)
    typed = field(form, "nonce", 20).strip()
    nonce = normalise_nonce(typed) if typed else None
    if typed and nonce is None:
        return await _detail_page(request, user, reveal=False, problem=BAD_COUNTER_CODE, status_code=400)

    def make() -> tuple[LicenceCard, str, int] | None:
        with vault.db.session() as db:
            space = space_of(vault, db, user)
            row = _licence(vault, db, space, licence_id)
            names = [n for n in vault.catalogue.type(row.type_code).field_names if n in ticked]
            if not names:
                return None
            if row.state != LicenceState.ACTIVE:
                raise Forbidden(NOT_IN_FORCE)
            if download:  # a file handed over is a plain presentation, as before
                text, expires = vault.licences.present(db, row.id, names, actor=space.actor), 0
            else:
                text, expires = vault.licences.show(db, row.id, names, actor=space.actor, nonce=nonce)
            return _card(vault, _summary(row, vault.licences.current_version(db, row)), lang), text, expires

    made = await run_in_threadpool(make)
    if made is None:
        return await _detail_page(request, user, reveal=False, problem=NO_FIELD, status_code=400)
    card, text, expires = made
    if download:
        headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{filename(card)}"'}
        return Response(text, media_type=MEDIA_TYPE, headers=headers)
    licence_type = vault.catalogue.type(card.type_code)
    labels = [_label(licence_type.field(name), lang) for name in presentation_fields(text.rpartition("~")[0] + "~")]
    zone = vault.notifications.config.timezone
    label = datetime.fromtimestamp(expires, UTC).astimezone(zone).strftime("%H:%M:%S")
    qr = await run_in_threadpool(qr_code, text)
    presentation = Presentation(card, text, labels, qr, expires, f"{label} ({zone})", nonce)
    context = {"presentation": presentation, "section": f"/licences/{card.id}"}
    return await render(request, "presentation.html", context, headers=NO_STORE)


routes = [
    Route("/licences", licences, methods=["GET"]),
    Route("/licences/{licence_id}", licence, methods=["GET"]),
    Route("/licences/{licence_id}/reveal", reveal, methods=["POST"]),
    Route("/licences/{licence_id}/present", present, methods=["POST"]),
]
