"""The sample agency's pages. Everything it knows about the vault it learns through vault_sdk.

- /counter: the clerk types a person's ID number and starts a counter request (CIBA); the page polls until the
  person approves on their phone, then shows the fields that arrived.
- /apply: an online service form pre-filled from the vault after consent (the redirect flow); each pre-filled
  field says where its value came from, the rest are typed by the applicant ("一表填报", no second entry).
- /verify: shows a counter code the person types when making their QR code; paste what the QR code holds: verified
  offline, the code checked (a code made for another counter, or copied, does not verify).
- /check: the transport bureau's clerk asks questions instead of data ("可用不可见"): the ride-hailing driver check
  asks the person, by CIBA, to let it ask three questions; once approved it asks them (`check`) and shows each
  signed yes or no, verified offline, and never a value of the person.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html import escape
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from vault_sdk import (
    BackchannelRequest,
    ClientSecretBasic,
    Operations,
    Tokens,
    VaultClient,
    VaultError,
    VerificationError,
)

COUNTER = "traffic-police-counter"
OFFICE = "traffic-police-vehicle-office"
BUREAU = "transport-bureau"
CHECK_ITEM = "ride-hailing-driver-check"
# the questions the ride-hailing check asks; its service item fixes the licence class (C1)
QUESTIONS = ("driving-licence-class-valid", "name-and-id-number-match", "holder-age-at-least")
MIN_AGE = "18"
ITEMS = ("vehicle-registration", "vehicle-transfer-registration", "driving-licence-renewal")
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # a counter code: no 0/O or 1/I, read aloud or typed
AGENCY_URL = "http://127.0.0.1:8001"  # where it serves: the demo agencies' redirect URI is its /callback
# the application form of vehicle-registration: (label, licence type, field); None: typed by the applicant
FORM: tuple[tuple[str, str | None, str | None], ...] = (
    ("姓名 Name", "resident-id-card", "name"),
    ("性别 Sex", "resident-id-card", "sex"),
    ("出生日期 Date of birth", "resident-id-card", "birth_date"),
    ("公民身份号码 ID number", "resident-id-card", "id_number"),
    ("住址 Address", "resident-id-card", "address"),
    ("联系电话 Phone", None, None),
    ("车辆识别代号 VIN", None, None),
)
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}"
    "label{display:block;margin:.6rem 0 .2rem}input,select,textarea{width:100%;padding:.4rem}"
    ".src{font-size:.8rem;color:#555}.vault{background:#eef7ee}.ok{color:#060}.bad{color:#a00}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left}"
)


def page(title: str, body: str, refresh: int | None = None) -> HTMLResponse:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh is not None else ""
    return HTMLResponse(
        f'<!doctype html><html lang="zh"><head><meta charset="utf-8">{meta}<title>{escape(title)}</title>'
        f'<style>{STYLE}</style></head><body><p><a href="/">Sample agency</a></p><h1>{escape(title)}</h1>'
        f"{body}</body></html>",
        headers={"Cache-Control": "no-store"},
    )


def error_box(error: VaultError) -> str:
    return f'<p class="bad">The vault refused: <code>{escape(error.code)}</code> {escape(error.description)}</p>'


def fields_table(licences: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{escape(licence['type'])}</td><td>{escape(f['name'])}</td><td>{escape(str(f['value']))}</td></tr>"
        for licence in licences
        for f in licence["fields"]
    )
    return f"<table><tr><th>licence</th><th>field</th><th>value</th></tr>{rows}</table>"


def answers_table(answers: list[dict[str, Any]]) -> str:
    """Each verified answer: the question, yes or no, the licence's status and the time; no parameter, no value."""
    rows = "".join(
        f"<tr><td>{escape(a['predicate'])}</td><td data-answer='none'>not granted: not asked</td>"
        "<td>—</td><td>—</td><td>—</td></tr>"
        if a["answer"] is None
        else f"<tr><td>{escape(str(a['question']['zh']))}<br><span class='src'>{escape(str(a['question']['en']))}"
        f"</span></td><td class='{'ok' if a['answer'] else 'bad'}' data-answer='{str(a['answer']).lower()}'>"
        f"{'是 yes' if a['answer'] else '否 no'}</td><td>{escape(str(a.get('licence_status') or '—'))}</td>"
        f"<td>{escape(str(a['answered_at']))}</td><td class='ok'>verified offline</td></tr>"
        for a in answers
    )
    return (
        "<table><tr><th>question</th><th>answer</th><th>licence status</th><th>answered at</th><th>signature</th>"
        f"</tr>{rows}</table><p class='src'>Each answer is signed by the vault and was checked here with its "
        "published keys; no value of the person left the vault.</p>"
    )


@dataclass
class State:
    """In memory: a sample, not a product (a real agency keeps these server-side, in its own store)."""

    counter: VaultClient
    office: VaultClient
    bureau: VaultClient
    requests: dict[str, tuple[BackchannelRequest, str]] = field(default_factory=dict)
    results: dict[str, Tokens] = field(default_factory=dict)
    # the ride-hailing check: the request and what the clerk typed (kept only until the questions are asked)
    checks: dict[str, tuple[BackchannelRequest, str, dict[str, str]]] = field(default_factory=dict)
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def create_app(vault_url: str, agency_url: str = AGENCY_URL) -> Starlette:
    state = State(
        VaultClient(vault_url, ClientSecretBasic(COUNTER, f"demo-secret-{COUNTER}")),
        VaultClient(vault_url, ClientSecretBasic(OFFICE, f"demo-secret-{OFFICE}")),
        VaultClient(vault_url, ClientSecretBasic(BUREAU, f"demo-secret-{BUREAU}")),
    )

    async def index(request: Request) -> Response:
        return page(
            "Sample agency: Demo City Vehicle Office",
            "<ul><li><a href='/counter'>Counter: ask a person for consent (CIBA)</a></li>"
            "<li><a href='/apply'>Online service: a form pre-filled from the vault</a></li>"
            "<li><a href='/verify'>Verify a QR code a person shows</a></li>"
            "<li><a href='/check'>Transport bureau: ride-hailing driver check, answers instead of data</a></li></ul>"
            f"<p class='src'>Vault: {escape(vault_url)}. Built only on vault_sdk (sdk/python).</p>",
        )

    async def counter(request: Request) -> Response:
        if request.method == "POST":
            form = await request.form()
            id_number, item = str(form.get("id_number", "")).strip(), str(form.get("item", ITEMS[0]))
            ticket = "A-" + secrets.token_hex(2).upper()
            try:
                started = state.counter.start_backchannel(id_number, item, binding_message=f"窗口 3 · {ticket}")
            except VaultError as error:
                return page("Counter", error_box(error) + "<p><a href='/counter'>Back</a></p>")
            key = secrets.token_urlsafe(12)
            state.requests[key] = (started, ticket)
            return RedirectResponse(f"/counter/{key}", status_code=303)
        options = "".join(f"<option>{escape(i)}</option>" for i in ITEMS)
        return page(
            "Counter: start a request",
            "<form method='post'><label>Resident ID number<input name='id_number' required "
            "placeholder='110105198503121234'></label><label>Service item<select name='item'>"
            f"{options}</select></label><p><button>Ask for consent</button></p></form>",
        )

    async def counter_status(request: Request) -> Response:
        key = request.path_params["key"]
        if key in state.results:
            tokens = state.results[key]
            licences = Operations(state.counter, tokens).read_licences()
            receipt = tokens.receipt_claims or {}
            return page(
                "Counter: the fields arrived",
                fields_table(licences) + f"<p class='src'>Consent receipt {escape(str(receipt.get('jti')))}, "
                "signed by the vault and verified.</p>",
            )
        if key not in state.requests:
            return page("Counter", "<p>No such request.</p>")
        started, ticket = state.requests[key]
        try:
            polled = state.counter.poll(started)
        except VaultError as error:
            state.requests.pop(key, None)
            return page("Counter", error_box(error))
        if polled is None:
            return page(
                "Counter: waiting for the person",
                f"<p>Ticket <b>{escape(ticket)}</b>: the person approves it in their vault inbox, which shows "
                "the same ticket. This page checks again by itself.</p>",
                refresh=max(started.interval, 2),
            )
        state.requests.pop(key, None)
        state.results[key] = polled
        return RedirectResponse(f"/counter/{key}", status_code=303)

    async def apply(request: Request) -> Response:
        started = state.office.start_authorization(ITEMS[0], redirect_uri=f"{agency_url}/callback")
        return RedirectResponse(started.url, status_code=303)

    async def callback(request: Request) -> Response:
        try:
            tokens = state.office.finish_authorization(str(request.url))
            licences = Operations(state.office, tokens).read_licences()
        except VaultError as error:
            return page("Application", error_box(error) + "<p><a href='/apply'>Start again</a></p>")
        values = {(licence["type"], f["name"]): f["value"] for licence in licences for f in licence["fields"]}
        rows = []
        for label, licence_type, name in FORM:
            value = values.get((licence_type, name)) if licence_type and name else None
            if value is not None:
                source = f"from the vault: {licence_type} / {name}, with your consent"
                rows.append(
                    f"<label>{escape(label)}<input class='vault' value='{escape(str(value))}' readonly>"
                    f"<span class='src' data-source='vault'>{escape(source)}</span></label>"
                )
            else:
                why = "typed by you" if licence_type is None else "not granted: typed by you"
                rows.append(
                    f"<label>{escape(label)}<input value=''><span class='src' data-source='applicant'>"
                    f"{escape(why)}</span></label>"
                )
        return page("Application: vehicle registration", "<form>" + "".join(rows) + "</form>")

    async def verify(request: Request) -> Response:
        result = ""
        if request.method == "POST":
            form = await request.form()
            text, code = str(form.get("qr", "")).strip(), str(form.get("code", "")).strip().upper() or None
            checked = state.counter.verifier.verify_showing(text, nonce=code)
            if checked.reason == "not_a_showing":
                checked = state.counter.verifier.verify_presentation(text)
            if checked.ok:
                claims = "".join(
                    f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in checked.claims.items()
                )
                result = f"<p class='ok'>Genuine and in force.</p><table>{claims}</table>"
            else:
                result = f"<p class='bad'>Not accepted: <code>{escape(checked.reason)}</code></p>"
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))
        return page(
            "Verify a QR code",
            result + f"<p>Counter code for the person: <b id='counter-code'>{code}</b> (they type it when making "
            "their QR code, so that a code made for another counter, or copied, does not verify here)</p>"
            "<form method='post'><label>What the QR code holds<textarea name='qr' rows='6' required>"
            f"</textarea></label><label>Counter code (empty for a plain presentation)<input name='code' "
            f"value='{code}'></label><p><button>Verify</button></p></form>",
        )

    async def check(request: Request) -> Response:
        if request.method == "POST":
            form = await request.form()
            id_number, name = str(form.get("id_number", "")).strip(), str(form.get("name", "")).strip()
            ticket = "Q-" + secrets.token_hex(2).upper()
            try:
                started = state.bureau.start_backchannel(
                    id_number, CHECK_ITEM, questions=QUESTIONS, binding_message=f"窗口 5 · {ticket}"
                )
            except VaultError as error:
                return page("Ride-hailing driver check", error_box(error) + "<p><a href='/check'>Back</a></p>")
            key = secrets.token_urlsafe(12)
            parameters = {"name": name, "id_number": id_number}
            state.checks[key] = (started, ticket, parameters)
            return RedirectResponse(f"/check/{key}", status_code=303)
        return page(
            "Ride-hailing driver check",
            "<p>The transport bureau learns whether the applicant qualifies, not who they are or what their "
            "licence says: the person consents to three questions, the vault answers each yes or no, signed.</p>"
            "<form method='post'><label>Resident ID number<input name='id_number' required "
            "placeholder='110105198503121234'></label><label>Name, as the applicant gave it<input name='name' "
            "required></label><p><button>Ask the questions</button></p></form>",
        )

    async def check_status(request: Request) -> Response:
        key = request.path_params["key"]
        if key in state.answers:
            return page("Ride-hailing driver check: answered", answers_table(state.answers[key]))
        if key not in state.checks:
            return page("Ride-hailing driver check", "<p>No such request.</p>")
        started, ticket, parameters = state.checks[key]
        try:
            tokens = state.bureau.poll(started)
        except VaultError as error:
            state.checks.pop(key, None)
            return page("Ride-hailing driver check", error_box(error))
        if tokens is None:
            return page(
                "Ride-hailing driver check: waiting for the person",
                f"<p>Ticket <b>{escape(ticket)}</b>: the person approves the questions in their vault inbox, "
                "which shows the same ticket. This page checks again by itself.</p>",
                refresh=max(started.interval, 2),
            )
        state.checks.pop(key, None)  # what the clerk typed is forgotten once the questions are asked
        asked = Operations(state.bureau, tokens)
        given = {
            "driving-licence-class-valid": {},  # the class is fixed by the service item
            "name-and-id-number-match": parameters,
            "holder-age-at-least": {"years": MIN_AGE},
        }
        granted = {
            str(q.get("predicate"))
            for detail in tokens.authorization_details
            for q in detail.get("questions") or []
            if isinstance(q, dict)
        }
        answers: list[dict[str, Any]] = []
        for predicate in QUESTIONS:
            if predicate not in granted:  # the person may untick a question: it is not asked
                answers.append({"predicate": predicate, "answer": None})
                continue
            try:
                answer = asked.check(predicate, given[predicate])
                claims = state.bureau.verifier.verify_answer(answer["signed"], agency=BUREAU)
            except VerificationError as error:  # never shown as an answer: it may have been altered on the way
                return page(
                    "Ride-hailing driver check",
                    f"<p class='bad'>An answer did not verify: <code>{escape(error.code)}</code> "
                    f"{escape(error.description)}. Ask again.</p>",
                )
            except VaultError as error:
                return page("Ride-hailing driver check", error_box(error))
            answers.append(claims)
        state.answers[key] = answers
        return RedirectResponse(f"/check/{key}", status_code=303)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        state.counter.close()
        state.office.close()
        state.bureau.close()

    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/", index),
            Route("/counter", counter, methods=["GET", "POST"]),
            Route("/counter/{key}", counter_status),
            Route("/apply", apply),
            Route("/callback", callback),
            Route("/verify", verify, methods=["GET", "POST"]),
            Route("/check", check, methods=["GET", "POST"]),
            Route("/check/{key}", check_status),
        ],
    )
