"""What the fault and load harnesses send: the population they act on, and each kind of request over HTTP as a
real agency, issuer or citizen's browser would (PAR, the consent page with its CSRF token, CIBA, GraphQL)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx

from vault import demo
from vault.owners.accounts import AccountService
from vault.owners.identifiers import synthetic_resident_id
from vault.owners.models import AccountRole
from vault.wiring import Vault

OPERATIONS = Path(__file__).resolve().parent.parent / "graphql" / "operations"
READ = (OPERATIONS / "agency-read-licences.graphql").read_text(encoding="utf-8")
ISSUE = (OPERATIONS / "issuer-issue-licence.graphql").read_text(encoding="utf-8")
SUSPEND = (OPERATIONS / "issuer-suspend-licence.graphql").read_text(encoding="utf-8")
REINSTATE = (OPERATIONS / "issuer-reinstate-licence.graphql").read_text(encoding="utf-8")
VERIFY = (OPERATIONS / "agency-verify-licences.graphql").read_text(encoding="utf-8")
CIBA = "urn:openid:params:grant-type:ciba"
TRAFFIC, HOUSING, ISSUER, HALL = (
    "traffic-police-vehicle-office",
    "housing-bureau",
    "traffic-police-issuing",
    "approval-hall",
)
ONCE_ITEM, REPEATED_ITEM = "vehicle-registration", "housing-provident-fund-withdrawal"
ITEM_AGENCY = {ONCE_ITEM: TRAFFIC, REPEATED_ITEM: HOUSING}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_FIELD = re.compile(r'name="field" value="([^"]+)"')
_CONSENT_LINK = re.compile(r'href="/consent/([0-9a-f-]{36})"')
_CONTINUE = re.compile(r'id="continue" href="([^"]+)"')


@dataclass
class Population:
    citizens: list[str]  # logins with a web account, an ID card and a household register
    erasable: list[uuid.UUID]  # owners with an ID card and no account, erased while the server runs
    presentations: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # login -> the name on the citizen's ID card


def populate(vault: Vault, citizens: int = 12, erasable: int = 40, presentations: int = 0) -> Population:
    """The demo population, plus `citizens` citizens and `erasable` owners of our own (synthetic, like the demo's)."""
    demo.create_demo(vault)
    accounts = AccountService(vault.keys)
    logins: list[str] = []
    erase: list[uuid.UUID] = []
    presented: list[str] = []
    names: dict[str, str] = {}
    with vault.db.session() as session:
        for i in range(citizens + erasable):
            region = "110101" if i < citizens else "110102"
            person = demo.DemoPerson(f"p{i}", f"压测居民{i}", synthetic_resident_id(region, date(1990, 1, 1), i))
            owner = vault.owners.add_person(session, id_number=person.id_number, name=person.name, actor="bench")
            # the demo's own licence values, for a person of ours
            for type_code, values in demo._person_licences(person, "女", "1990-01-01", f"演示市压测路{i}号"):
                licence = vault.licences.issue(
                    session,
                    issuer_code=vault.catalogue.type(type_code).issuer,
                    owner_id=owner.id,
                    type_code=type_code,
                    values=values,
                )
                if len(presented) < presentations and type_code == "resident-id-card":
                    presented.append(vault.licences.present(session, licence.id, ["name"], actor="bench"))
            if i < citizens:
                accounts.create(
                    session,
                    login=person.id_number,
                    password=demo.CITIZEN_PASSWORD,
                    role=AccountRole.CITIZEN,
                    owner_id=owner.id,
                )
                logins.append(person.id_number)
                names[person.id_number] = person.name
            else:
                erase.append(owner.id)
        vault.audit.checkpoint(session)
    return Population(logins, erase, presented, names)


class Stats:
    """Latency and outcome of every request, by kind (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def record(self, kind: str, status: str, seconds: float | None) -> None:
        """One outcome; `seconds` None for a request never sent (it has no latency)."""
        with self.lock:
            if seconds is not None:
                self.latencies[kind].append(seconds)
            self.statuses[kind][status] += 1


class Unexpected(Exception):
    """The server answered something a correct server would not have (a flow cannot go on)."""


class Client:
    """One user agent: its own connections and cookies; every request timed into `stats` under its kind."""

    def __init__(self, base: str, stats: Stats, timeout: float = 30.0) -> None:
        self.base = base
        self.stats = stats
        self.http = httpx.Client(base_url=base, timeout=timeout, follow_redirects=False)
        self.signed_in = False

    def close(self) -> None:
        self.http.close()

    def request(self, kind: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        start = time.perf_counter()
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.TransportError:
            self.stats.record(kind, "transport", time.perf_counter() - start)
            raise
        self.stats.record(kind, str(response.status_code), time.perf_counter() - start)
        return response

    def expect(self, response: httpx.Response, *statuses: int) -> httpx.Response:
        if response.status_code not in statuses:
            raise Unexpected(f"{response.request.method} {response.request.url.path}: {response.status_code}")
        return response

    # citizen's browser

    def form(self, kind: str, path: str, form_page: str, data: dict[str, Any]) -> httpx.Response:
        page = self.expect(self.request(kind + " page", "GET", form_page), 200)
        token = _CSRF.search(page.text)
        if token is None:
            raise Unexpected(f"no CSRF token on {form_page}")
        return self.request(kind, "POST", path, data={"csrf_token": token.group(1), **data}, headers=self.origin)

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": self.base}

    def sign_in(self, login: str) -> None:
        if not self.signed_in:
            response = self.form("login", "/login", "/login", {"login": login, "password": demo.CITIZEN_PASSWORD})
            self.expect(response, 303)
            self.signed_in = True

    def approve(self, request_id: str) -> httpx.Response:
        """Approve on the consent page with every field ticked: a redirect request's answer is the confirmation page
        (200, see `returning_to`), a backchannel request's a 303 to /grants."""
        page = self.request("consent page", "GET", f"/consent/{request_id}")
        if page.status_code == 303 and "/login" in page.headers.get("location", ""):
            self.signed_in = False
            raise Unexpected("signed out")
        self.expect(page, 200)
        token = _CSRF.search(page.text)
        data = {
            "csrf_token": token.group(1) if token else "",
            "decision": "approve",
            "field": _FIELD.findall(page.text),
        }
        return self.request("consent approve", "POST", f"/consent/{request_id}", data=data, headers=self.origin)

    def inbox(self) -> list[str]:
        return _CONSENT_LINK.findall(self.expect(self.request("citizen page", "GET", "/inbox"), 200).text)

    def revoke(self, grant_id: str) -> httpx.Response:
        return self.form("revoke", f"/grants/{grant_id}/revoke", "/grants", {})

    # agency and issuer

    def par(self, client_id: str, item: str) -> tuple[str, str]:
        """PAR then the authorization endpoint: (consent request id, PKCE verifier)."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        data = {
            "response_type": "code",
            "redirect_uri": demo.AGENCY_REDIRECT,
            "state": secrets.token_hex(4),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "authorization_details": details(item),
        }
        pushed = self.expect(self.request("par", "POST", "/oauth/par", auth=agency(client_id), data=data), 201)
        params = {"client_id": client_id, "request_uri": pushed.json()["request_uri"]}
        location = self.expect(self.request("authorize", "GET", "/oauth/authorize", params=params), 303)
        return location.headers["location"].rsplit("/", 1)[1], verifier

    def redeem(self, client_id: str, code: str, verifier: str) -> httpx.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": demo.AGENCY_REDIRECT,
            "code_verifier": verifier,
        }
        return self.request("token", "POST", "/oauth/token", auth=agency(client_id), data=data)

    def grant_of(self, client_id: str, access_token: str) -> str:
        response = self.request(
            "introspect", "POST", "/oauth/introspect", auth=agency(client_id), data={"token": access_token}
        )
        return str(self.expect(response, 200).json().get("grant_id", ""))

    def ciba_start(self, client_id: str, login: str, item: str) -> httpx.Response:
        data = {"login_hint": login, "authorization_details": details(item), "binding_message": secrets.token_hex(3)}
        return self.request("ciba start", "POST", "/oauth/bc-authorize", auth=agency(client_id), data=data)

    def ciba_poll(self, client_id: str, auth_req_id: str) -> httpx.Response:
        data = {"grant_type": CIBA, "auth_req_id": auth_req_id}
        return self.request("ciba poll", "POST", "/oauth/token", auth=agency(client_id), data=data)

    def client_token(self, client_id: str, scope: str) -> str:
        data = {"grant_type": "client_credentials", "scope": scope}
        response = self.request("token", "POST", "/oauth/token", auth=agency(client_id), data=data)
        return str(self.expect(response, 200).json()["access_token"])

    def graphql(self, kind: str, token: str, query: str, variables: dict[str, Any]) -> httpx.Response:
        body = json.dumps({"query": query, "variables": variables})
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        return self.request(kind, "POST", "/graphql", content=body, headers=headers)

    def read(self, token: str) -> tuple[httpx.Response, bool]:
        """An agency's read under its grant; True when fields came back (a read the access log must show)."""
        response = self.graphql("agency read", token, READ, {})
        if response.status_code != 200:
            return response, False
        licences = (response.json().get("data") or {}).get("licences") or []
        return response, any(f.get("value") is not None for lic in licences for f in lic.get("fields") or [])

    def issue(self, token: str, owner: str, name: str) -> httpx.Response:
        variables = {"owner": owner, "type": "vehicle-licence", "values": vehicle(name)}
        return self.graphql("issuer mutation", token, ISSUE, variables)

    def change(self, token: str, licence_id: str, suspend: bool) -> httpx.Response:
        query, variables = (
            (SUSPEND, {"id": licence_id, "reason": "bench"})
            if suspend
            else (REINSTATE, {"id": licence_id, "reason": "bench"})
        )
        return self.graphql("issuer mutation", token, query, variables)


def agency(client_id: str) -> tuple[str, str]:
    return (client_id, f"demo-secret-{client_id}")


def details(item: str) -> str:
    return json.dumps([{"type": "licence_access", "service_item": item}])


def returning_to(confirmation: httpx.Response) -> str:
    """Where a redirect request's confirmation page sends the browser back to: the agency, with code or error."""
    found = _CONTINUE.search(confirmation.text)
    if found is None:
        raise Unexpected("a confirmation page without the way back to the agency")
    return html.unescape(found.group(1))


def code_of(location: str) -> str | None:
    found = parse_qs(urlsplit(location).query).get("code")
    return found[0] if found else None


def vehicle(name: str) -> list[dict[str, str]]:
    serial = secrets.randbelow(10**9)
    values = {
        "plate_number": f"演B·{serial % 1_000_000:06d}",
        "vehicle_type": "K33",
        "owner_name": name,
        "address": "演示市压测路1号",
        "use_character": "非营运",
        "brand_model": "演示牌DEMO7150",
        "vin": f"LBENCH{serial:011d}",
        "engine_number": f"E{serial % 10**8:08d}",
        "registration_date": "2021-06-01",
        "issue_date": "2021-06-01",
        "file_number": f"F{serial:09d}",
        "approved_passengers": "5",
    }
    return [{"name": k, "value": v} for k, v in values.items()]
