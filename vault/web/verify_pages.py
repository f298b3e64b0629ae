"""The counter's verifier (/verify): paste or scan a presentation and see, in large type, whether it is genuine and
in force, expired, suspended or revoked; and check an exported data bundle. Nobody signs in; nothing is stored.

A fresh counter code (nonce) is shown with every page; a showing made for that code verifies here only.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault.licences.errors import UnknownLicenceType
from vault.licences.showing import new_nonce, normalise_nonce
from vault.web.csrf import check_form_post, field
from vault.web.i18n import N_
from vault.web.rendering import current_lang, render
from vault.web.sessions import current_user, vault_of

MAX_TEXT = 60_000  # a presentation of every field of the longest licence fits
NO_STORE = {"Cache-Control": "no-store"}
VERDICT_TEXT = {
    "in_force": N_("Genuine and in force"),
    "not_fresh": N_("Genuine, but not a fresh code: ask for a new one"),
    "presentation_expired": N_("This code has expired: ask for a new one"),
    "wrong_counter": N_("This code was made for another counter"),
    "expired": N_("Expired"),
    "suspended": N_("Suspended by its issuer"),
    "revoked": N_("Revoked or replaced by its issuer"),
    "unknown": N_("Its status could not be checked"),
    "not_genuine": N_("Not genuine"),
}
GOOD = frozenset({"in_force"})
EMPTY = N_("Paste or scan the presentation's text first.")


@dataclass(frozen=True)
class DisclosedField:
    label: str
    value: str


@dataclass(frozen=True)
class Outcome:
    verdict: str
    text: str
    good: bool
    licence: str | None
    fields: list[DisclosedField]


async def verify_page(request: Request) -> Response:
    """GET /verify: the form, with a fresh counter code."""
    return await render(request, "verify.html", {"nonce": new_nonce(), "outcome": None}, headers=NO_STORE)


async def verify(request: Request) -> Response:
    """POST /verify, fields `presentation` and `nonce`: the verdict in large type and the disclosed fields."""
    await check_form_post(request)
    form = await request.form()
    text = field(form, "presentation", MAX_TEXT).strip()
    nonce = normalise_nonce(field(form, "nonce", 20))
    lang = current_lang(request, await current_user(request))
    if not text:
        context = {"nonce": new_nonce(), "outcome": None, "problem": EMPTY}
        return await render(request, "verify.html", context, status_code=400, headers=NO_STORE)
    vault = vault_of(request)

    def run() -> Outcome:
        with vault.db.session() as db:
            verdict, result = vault.licences.check_showing(db, text, nonce=nonce)
        licence, fields = None, []
        if result is not None and result.ok and result.vct:
            try:
                licence_type = vault.catalogue.by_vct(result.vct)
            except UnknownLicenceType:
                licence_type = None
            if licence_type is not None:
                licence = licence_type.name_en if lang == "en" else licence_type.name_zh
                for f in licence_type.fields:
                    if f.name in result.claims:
                        label = f.label_en if lang == "en" else f.label_zh
                        fields.append(DisclosedField(label, str(result.claims[f.name])))
        return Outcome(verdict, VERDICT_TEXT[verdict], verdict in GOOD, licence, fields)

    outcome = await run_in_threadpool(run)
    return await render(request, "verify.html", {"nonce": new_nonce(), "outcome": outcome}, headers=NO_STORE)


routes = [
    Route("/verify", verify_page, methods=["GET"]),
    Route("/verify", verify, methods=["POST"]),
]
