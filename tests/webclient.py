"""Driving the web pages through HTTP as a browser would: forms with their CSRF token, Origin, cookies."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from tests import factories
from vault.clock import utcnow
from vault.owners.accounts import AccountService
from vault.owners.models import AccountRole, Owner, RepresentativeRole
from vault.web.app import create_app
from vault.wiring import Vault

PASSWORD = "correct horse battery"
STAFF_LOGIN = "auditor"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def browser(vault: Vault, *, address: str = "203.0.113.7") -> TestClient:
    """A client at the vault's public URL, not following redirects, from client `address`."""
    return TestClient(
        create_app(vault=vault), base_url=vault.settings.public_url, follow_redirects=False, client=(address, 50000)
    )


def origin(vault: Vault) -> str:
    return vault.settings.public_url


def token_in(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


def page_token(client: TestClient, path: str = "/login") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return token_in(response.text)


def post(
    client: TestClient, vault: Vault, path: str, data: dict[str, str], *, form_page: str = "/login", **headers: str
) -> httpx.Response:
    """POST a form the way our own page would: its CSRF token (from `form_page`) and our Origin."""
    form = {"csrf_token": page_token(client, form_page), **data}
    return client.post(path, data=form, headers={"Origin": origin(vault), **headers})


def sign_in(
    client: TestClient, vault: Vault, login: str, password: str = PASSWORD, *, form_page: str = "/login", **data: str
) -> httpx.Response:
    return post(client, vault, "/login", {"login": login, "password": password, **data}, form_page=form_page)


@dataclass
class Citizen:
    login: str
    owner: Owner
    enterprises: list[Owner] = field(default_factory=list)


def citizen(vault: Vault, *, name: str = "测试居民", enterprises: tuple[str, ...] = ()) -> Citizen:
    """A person with a web account (password PASSWORD), legal representative of a new enterprise per name given."""
    with vault.db.session() as session:
        person = factories.person(vault, session, name=name)
        details = vault.owners.details(session, person)
        AccountService(vault.keys).create(
            session, login=details.identifier, password=PASSWORD, role=AccountRole.CITIZEN, owner_id=person.id
        )
        made = []
        for enterprise_name in enterprises:
            enterprise = factories.enterprise(vault, session, name=enterprise_name)
            vault.owners.add_representative(
                session,
                enterprise_id=enterprise.id,
                person_id=person.id,
                role=RepresentativeRole.LEGAL_REPRESENTATIVE,
                valid_from=date(2024, 1, 1),
                valid_until=None,
                actor="test",
            )
            made.append(enterprise)
    return Citizen(details.identifier, person, made)


def staff(vault: Vault, login: str = STAFF_LOGIN) -> str:
    with vault.db.session() as session:
        AccountService(vault.keys).create(session, login=login, password=PASSWORD, role=AccountRole.STAFF)
    return login


def session_cookies(response: httpx.Response) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith(("vault_session=", "__Host-vault="))]


def cookie_attributes(set_cookie: str) -> tuple[str, str, set[str]]:
    """(name, value, lower-cased attributes) of one Set-Cookie header."""
    first, *rest = [part.strip() for part in set_cookie.split(";")]
    name, _, value = first.partition("=")
    return name, value, {a.lower() for a in rest}


class Clock:
    """vault.clock.utcnow, moved on by the tests."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now: datetime = utcnow()
        monkeypatch.setattr("vault.clock.utcnow", lambda: self.now)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
