"""Operators enrol a person (a one-time code the person redeems at /activate) and manage who may act for an
enterprise from the command line; every change is recorded and the company sees it."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from sqlmodel import col, select
from starlette.testclient import TestClient

from tests import factories
from tests.oauth_helpers import BASE
from tests.unit.api.support import client_token, gql, identifier, operation, register_client
from tests.webclient import browser, post, sign_in
from vault.audit.models import AuditEvent
from vault.cli import main
from vault.demo import CITIZEN_PASSWORD, ENTERPRISES, PERSONS, STAFF_LOGIN, STAFF_PASSWORD
from vault.licences.models import Licence
from vault.owners.models import ActivationCode, OwnerKind, Representative, RepresentativeRole
from vault.web.app import create_app
from vault.web.sessions import today
from vault.wiring import Vault

PASSWORD = "a long enough password"
SET_LEGAL = operation("issuer-set-legal-representative")
RENEW = operation("issuer-renew-licence")


@pytest.fixture
def cli_env(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> Vault:
    """`vault ...` run in-process against the test's own vault."""
    monkeypatch.setenv("VAULT_DATA_DIR", str(vault.settings.data_dir))
    monkeypatch.setenv("VAULT_DATABASE_URL", vault.settings.database_url)
    return vault


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def new_person(vault: Vault) -> tuple[uuid.UUID, str]:
    with vault.db.session() as session:
        person = factories.person(vault, session)
        return person.id, vault.owners.details(session, person).identifier


def activate(vault: Vault, login: str, code: str, password: str = PASSWORD, again: str | None = None) -> int:
    client = browser(vault)
    data = {"login": login, "code": code, "password": password, "password_again": again or password}
    return post(client, vault, "/activate", data, form_page="/activate").status_code


def test_an_enrolled_person_sets_a_password_once_and_signs_in(
    cli_env: Vault, capsys: pytest.CaptureFixture[str]
) -> None:
    # protection removed to see this fail: the guarded UPDATE (used_at IS NULL, expires_at > now) in redeem
    vault = cli_env
    person, login = new_person(vault)
    assert sign_in(browser(vault), vault, login, PASSWORD).status_code == 200  # nobody can sign in yet
    status, out, _ = run(capsys, "owners", "enrol", login)
    assert status == 0
    found = re.search(r"activation code for owner [0-9a-f-]+: ([A-Z0-9-]+)", out)
    assert found
    code = found.group(1)
    with vault.db.session() as session:
        stored = session.scalars(select(ActivationCode).where(ActivationCode.owner_id == person)).one()
        assert code.encode() not in stored.code_hash and len(stored.code_hash) == 32  # hashed only

    assert activate(vault, login, code, again="not the same") == 400
    assert activate(vault, login, code, password="short") == 400
    assert activate(vault, "110101199001011237", code) == 400  # someone else's login: refused, code kept
    assert activate(vault, login, code.lower()) == 303  # the code is case-insensitive
    assert activate(vault, login, code, password="another long password") == 400  # used once only
    assert sign_in(browser(vault), vault, login, PASSWORD).status_code == 303
    with vault.db.session() as session:
        actions = [e.action for e in session.scalars(select(AuditEvent).where(AuditEvent.owner_id == person))]
    assert "owner.enrolment_issued" in actions and "owner.enrolled" in actions


def test_an_expired_code_is_refused(cli_env: Vault, capsys: pytest.CaptureFixture[str]) -> None:
    vault = cli_env
    person, login = new_person(vault)
    code = re.findall(r": ([A-Z0-9-]{23})$", run(capsys, "owners", "enrol", str(person))[1], re.M)[0]
    with vault.db.session() as session:
        row = session.scalars(select(ActivationCode).where(ActivationCode.owner_id == person)).one()
        row.expires_at = row.created_at
    assert activate(vault, login, code) == 400


def test_operators_add_list_limit_and_end_representatives(cli_env: Vault, capsys: pytest.CaptureFixture[str]) -> None:
    vault = cli_env
    with vault.db.session() as session:
        company = factories.enterprise(vault, session)
        company_id = company.id
    first, first_login = new_person(vault)
    second, _ = new_person(vault)
    status, out, _ = run(
        capsys, "owners", "representatives", "set-legal", "--enterprise", str(company_id), "--person", first_login
    )
    assert status == 0
    first_link = uuid.UUID(out.strip())
    status, out, _ = run(
        capsys, "owners", "representatives", "set-legal", "--enterprise", str(company_id), "--person", str(second)
    )
    assert status == 0
    status, out, _ = run(capsys, "owners", "representatives", "list", str(company_id))
    assert status == 0 and str(first_link) in out and "ended" in out and first_login not in out  # masked only
    with vault.db.session() as session:
        ended = session.get(Representative, first_link)
        assert ended is not None and ended.ended_at is not None
    status, out, _ = run(
        capsys,
        "owners",
        "representatives",
        "add",
        "--enterprise",
        str(company_id),
        "--person",
        str(first),
        "--role",
        "authorised_agent",
    )
    agent = out.strip()
    assert run(capsys, "owners", "representatives", "limit", agent, "--until", "2099-01-01")[0] == 0
    assert run(capsys, "owners", "representatives", "end", agent)[0] == 0
    status, _, err = run(capsys, "owners", "representatives", "end", agent)
    assert status == 2 and "already ended" in err
    with vault.db.session() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.owner_id == company_id).order_by(col(AuditEvent.seq))
        ).all()
    changes = [e.action for e in events if e.action.startswith("representative.")]
    assert changes == [
        "representative.added",
        "representative.ended",
        "representative.added",
        "representative.added",
        "representative.limited",
        "representative.ended",
    ]
    assert all(json.loads(e.entry)["actor"] == "operator:cli" for e in events if e.action.startswith("repr"))


# the legal representative manages authorised agents in the web app


def acting_for(vault: Vault, key: str, enterprise: uuid.UUID) -> TestClient:
    client = browser(vault)
    assert sign_in(client, vault, identifier(key), CITIZEN_PASSWORD).status_code == 303
    assert post(client, vault, "/acting-for", {"owner": str(enterprise)}, form_page="/").status_code == 303
    return client


def owner_of(vault: Vault, kind: OwnerKind, ident: str) -> uuid.UUID:
    with vault.db.session() as session:
        found = vault.owners.find(session, kind, ident)
        assert found is not None
        return found.id


def test_a_legal_representative_appoints_limits_and_ends_an_agent(demo_vault: Vault) -> None:
    # protection removed to see this fail: legal_space's legal-representative check in web/representatives.py
    vault = demo_vault
    tech = owner_of(vault, OwnerKind.ENTERPRISE, ENTERPRISES[1].credit_code)
    person_a = owner_of(vault, OwnerKind.PERSON, identifier("a"))
    legal = acting_for(vault, "c", tech)
    page = legal.get("/representatives").text
    assert 'action="/representatives/appoint"' in page

    form = {"person": identifier("a"), "until": ""}
    appointed = post(legal, vault, "/representatives/appoint", form, form_page="/representatives")
    assert appointed.status_code == 303 and appointed.headers["location"] == "/representatives?done=1"
    with vault.db.session() as session:
        link = session.scalars(
            select(Representative).where(Representative.owner_id == tech, Representative.person_id == person_a)
        ).one()
        assert vault.owners.may_act_for(session, person_a, tech, today())
    limited = post(
        legal, vault, f"/representatives/{link.id}/limit", {"until": "2099-12-31"}, form_page="/representatives"
    )
    assert limited.status_code == 303

    agent = acting_for(vault, "b", tech)  # an authorised agent may see who acts, but changes nothing
    assert 'action="/representatives/appoint"' not in agent.get("/representatives").text
    assert post(agent, vault, "/representatives/appoint", form, form_page="/representatives").status_code == 403
    assert post(agent, vault, f"/representatives/{link.id}/end", {}, form_page="/representatives").status_code == 403

    ended = post(legal, vault, f"/representatives/{link.id}/end", {}, form_page="/representatives")
    assert ended.status_code == 303 and ended.headers["location"] == "/representatives?done=1"
    again = post(legal, vault, f"/representatives/{link.id}/end", {}, form_page="/representatives")
    assert again.headers["location"] != "/representatives?done=1"  # already ended: a problem, nothing changed
    with vault.db.session() as session:
        assert not vault.owners.may_act_for(session, person_a, tech, today())
        own = session.scalars(
            select(Representative).where(
                Representative.owner_id == tech, Representative.role == RepresentativeRole.LEGAL_REPRESENTATIVE
            )
        ).one()
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.owner_id == tech).order_by(col(AuditEvent.seq))
        ).all()
    not_agents = post(legal, vault, f"/representatives/{own.id}/end", {}, form_page="/representatives")
    assert not_agents.headers["location"] != "/representatives?done=1"  # a legal representative is not ended here
    changes = [e for e in events if e.action.startswith("representative.")][-3:]
    assert [e.action for e in changes] == ["representative.added", "representative.limited", "representative.ended"]
    assert {e.actor for e in changes} == {f"owner:{owner_of(vault, OwnerKind.PERSON, identifier('c'))}"}
    activity = legal.get("/activity").text
    assert all(str(e.id) in activity for e in changes)  # shown to the company


# the market-regulation issuer sets the legal representative a business licence names

MARKET = "market-regulation-licensing"


def test_the_business_licence_issuer_sets_the_legal_representative_it_names(demo_vault: Vault) -> None:
    # protection removed to see this fail: the name comparison with the licence's legal_representative field
    vault = demo_vault
    register_client(vault, MARKET, department="market-regulation", category="issuer", scopes=["licences:issue"])
    transport = owner_of(vault, OwnerKind.ENTERPRISE, ENTERPRISES[0].credit_code)
    person_a, person_b = (owner_of(vault, OwnerKind.PERSON, identifier(k)) for k in "ab")
    with vault.db.session() as session:
        licence = session.scalars(
            select(Licence.id).where(Licence.owner_id == transport, Licence.type_code == "business-licence")
        ).one()
    with TestClient(create_app(vault=vault), base_url=BASE) as http:
        token = client_token(http, MARKET, "licences:issue")
        variables = {"licence": str(licence), "person": identifier("b")}
        refused = gql(http, token, SET_LEGAL, variables).json()["data"]["setLegalRepresentative"]
        assert refused["__typename"] == "InvalidInput" and refused["problems"][0]["field"] == "person"

        changes = [{"name": "legal_representative", "value": PERSONS[1].name}]
        renewed = gql(http, token, RENEW, {"id": str(licence), "changes": changes}).json()["data"]["renewLicence"]
        assert renewed["__typename"] == "LicenceChanged", renewed
        result = gql(http, token, SET_LEGAL, variables).json()["data"]["setLegalRepresentative"]
        assert result["__typename"] == "LegalRepresentativeSet", result

        traffic = "traffic-police-licensing"
        register_client(vault, traffic, department="traffic-police", category="issuer", scopes=["licences:issue"])
        other = gql(http, client_token(http, traffic, "licences:issue"), SET_LEGAL, variables).json()
        assert other["data"] is None and other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    with vault.db.session() as session:
        assert vault.owners.may_act_for(session, person_b, transport, today())
        assert not vault.owners.may_act_for(session, person_a, transport, today())  # the earlier one ended
        changes_ = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.owner_id == transport, col(AuditEvent.action).startswith("representative."))
            .order_by(col(AuditEvent.seq))
        ).all()
    assert [(e.action, e.actor) for e in changes_][-2:] == [
        ("representative.ended", "issuer:market-regulation"),
        ("representative.added", "issuer:market-regulation"),
    ]


# staff in the console


def test_staff_look_up_set_and_end_representatives_in_the_console(demo_vault: Vault) -> None:
    # protection removed to see this fail: the STAFF_VIEWED append in console_representatives.links_view
    vault = demo_vault
    tech = owner_of(vault, OwnerKind.ENTERPRISE, ENTERPRISES[1].credit_code)
    person_a = owner_of(vault, OwnerKind.PERSON, identifier("a"))
    staff = browser(vault)
    assert sign_in(staff, vault, STAFF_LOGIN, STAFF_PASSWORD).status_code == 303
    page = staff.get("/console/representatives", params={"enterprise": ENTERPRISES[1].credit_code})
    assert page.status_code == 200 and PERSONS[2].id_number not in page.text and PERSONS[2].name not in page.text
    with vault.db.session() as session:
        viewed = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "staff.viewed", AuditEvent.owner_id == tech)
        ).all()
    assert len(viewed) == 1 and viewed[0].actor.startswith("staff:")
    form_page = f"/console/representatives?enterprise={ENTERPRISES[1].credit_code}"
    data = {"enterprise": ENTERPRISES[1].credit_code, "person": identifier("a")}
    done = post(staff, vault, "/console/representatives/set-legal", data, form_page=form_page)
    assert done.status_code == 303 and "done=1" in done.headers["location"]
    with vault.db.session() as session:
        assert vault.owners.may_act_for(session, person_a, tech, today())
        link = session.scalars(
            select(Representative).where(Representative.owner_id == tech, Representative.person_id == person_a)
        ).one()
    ended = post(staff, vault, f"/console/representatives/{link.id}/end", data, form_page=form_page)
    assert ended.status_code == 303 and "done=1" in ended.headers["location"]
    again = post(staff, vault, f"/console/representatives/{link.id}/end", data, form_page=form_page)
    assert "problem=" in again.headers["location"]
    citizen = browser(vault)
    assert sign_in(citizen, vault, identifier("a"), CITIZEN_PASSWORD).status_code == 303
    assert citizen.get("/console/representatives", params={"enterprise": ENTERPRISES[1].credit_code}).status_code == 403
