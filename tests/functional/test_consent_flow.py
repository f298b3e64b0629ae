"""End to end through HTTP only: an agency asks, the citizen approves on the consent page with a field unticked,
introspection shows exactly what was approved, the citizen revokes, and the token is dead at once. The same for
the backchannel (CIBA) flow, for an enterprise representative, and for a police mandate."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE, REDIRECT, AgencyClient, details, mandate_token, query_of, returning_to
from tests.webclient import browser, post, sign_in
from vault.audit.models import AuditEvent
from vault.demo import CITIZEN_PASSWORD, ENTERPRISES, PERSONS
from vault.wiring import Vault

TRAFFIC = "traffic-police-vehicle-office"


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    return demo_vault


@pytest.fixture
def agency(vault: Vault) -> Iterator[AgencyClient]:
    with TestClient(browser(vault).app, base_url=BASE) as http:
        yield AgencyClient(http, TRAFFIC, f"demo-secret-{TRAFFIC}")


def _actions(vault: Vault) -> list[str]:
    with vault.db.session() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def _verified(vault: Vault) -> bool:
    with vault.db.session() as session:
        return vault.audit.verify(session).ok


def _signed_in(vault: Vault, login: str) -> TestClient:
    client = browser(vault)
    assert sign_in(client, vault, login, CITIZEN_PASSWORD).status_code == 303
    return client


def test_redirect_flow_with_a_field_unticked_then_revoked(vault: Vault, agency: AgencyClient) -> None:
    request_id = agency.start("vehicle-registration")
    citizen = browser(vault)
    page = citizen.get(f"/consent/{request_id}")
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    assert (
        sign_in(citizen, vault, PERSONS[0].id_number, CITIZEN_PASSWORD, next=f"/consent/{request_id}").headers[
            "location"
        ]
        == f"/consent/{request_id}"
    )
    page = citizen.get(f"/consent/{request_id}")
    assert page.status_code == 200
    assert "Demo City Traffic Police" in page.text or "车辆管理所" in page.text
    assert "《机动车登记规定》第十条" in page.text  # the legal basis is shown
    boxes = re.findall(r'name="field" value="([^"]+)"', page.text)
    assert set(boxes) == {f"resident-id-card/{f}" for f in ("name", "sex", "birth_date", "id_number", "address")}
    assert "form-action 'self';" in page.headers["content-security-policy"]  # the confirmation page links onward
    kept = [b for b in boxes if b != "resident-id-card/address"]
    decision = citizen.post(
        f"/consent/{request_id}",
        data={
            "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1),  # type: ignore[union-attr]
            "decision": "approve",
            "field": kept,
        },
        headers={"Origin": vault.settings.public_url},
    )
    assert decision.status_code == 200  # the confirmation, with the receipt and the way back to the agency
    assert decision.headers["cache-control"] == "no-store"
    assert "已同意授权" in decision.text and "车辆管理所" in decision.text  # names the agency
    location = returning_to(decision)
    params = query_of(location)
    assert location.startswith(REDIRECT + "?") and params["state"] == agency.last["state"] and params["iss"] == BASE

    tokens = agency.redeem(params["code"]).json()
    introspection = agency.introspect(tokens["access_token"])
    assert introspection["active"] is True
    assert introspection["authorization_details"] == [
        {
            "type": "licence_access",
            "service_item": "vehicle-registration",
            "fields": {"resident-id-card": ["birth_date", "id_number", "name", "sex"]},
        }
    ]

    grants = citizen.get("/grants")
    assert grants.status_code == 200
    grant_id = introspection["grant_id"]
    assert f'href="/grants/{grant_id}/receipt"' in decision.text
    receipt = citizen.get(f"/grants/{grant_id}/receipt")
    assert receipt.status_code == 200 and receipt.headers["content-type"].startswith("application/jwt")
    revoked = post(citizen, vault, f"/grants/{grant_id}/revoke", {}, form_page="/grants")
    assert revoked.status_code == 303
    assert agency.introspect(tokens["access_token"]) == {"active": False}
    assert agency.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"

    tail = _actions(vault)
    tail = tail[tail.index("consent.requested") :]
    assert tail == ["consent.requested", "consent.approved", "token.issued", "grant.revoked"]
    assert _verified(vault)


def test_denying_sends_access_denied_to_the_agency(vault: Vault, agency: AgencyClient) -> None:
    request_id = agency.start("vehicle-registration")
    citizen = _signed_in(vault, PERSONS[0].id_number)
    denied = post(citizen, vault, f"/consent/{request_id}", {"decision": "deny"}, form_page=f"/consent/{request_id}")
    params = query_of(returning_to(denied))
    assert params["error"] == "access_denied" and params["state"] == agency.last["state"] and params["iss"] == BASE
    assert "consent.denied" in _actions(vault)


def test_approving_nothing_is_refused_and_nothing_is_granted(vault: Vault, agency: AgencyClient) -> None:
    request_id = agency.start("vehicle-registration")
    citizen = _signed_in(vault, PERSONS[0].id_number)
    response = post(
        citizen, vault, f"/consent/{request_id}", {"decision": "approve"}, form_page=f"/consent/{request_id}"
    )
    assert response.status_code == 400
    assert "consent.approved" not in _actions(vault)


@pytest.mark.parametrize("decision", [None, "", "yes", "APPROVE", "deny ", ["deny", "approve"]])
def test_only_approve_or_deny_decides(vault: Vault, agency: AgencyClient, decision: object) -> None:
    # without the DECISIONS check anything but "deny" approved the request
    request_id = agency.start("vehicle-registration", {"resident-id-card": ["name"]})
    citizen = _signed_in(vault, PERSONS[0].id_number)
    form: dict[str, object] = {"field": "resident-id-card/name"}
    if decision is not None:
        form["decision"] = decision
    before = _actions(vault)
    response = post(citizen, vault, f"/consent/{request_id}", form, form_page=f"/consent/{request_id}")  # type: ignore[arg-type]
    assert response.status_code == 400 and "请选择同意或拒绝此请求" in response.text
    assert _actions(vault) == before
    assert citizen.get(f"/consent/{request_id}").status_code == 200  # still waiting for a decision


def test_a_forged_field_cannot_widen_the_request(vault: Vault, agency: AgencyClient) -> None:
    request_id = agency.start("vehicle-registration", {"resident-id-card": ["name"]})
    citizen = _signed_in(vault, PERSONS[0].id_number)
    response = post(
        citizen,
        vault,
        f"/consent/{request_id}",
        {"decision": "approve", "field": "resident-id-card/address"},
        form_page=f"/consent/{request_id}",
    )
    assert response.status_code == 400 and "consent.approved" not in _actions(vault)


def test_the_consent_post_needs_csrf_and_origin(vault: Vault, agency: AgencyClient) -> None:
    request_id = agency.start("vehicle-registration")
    citizen = _signed_in(vault, PERSONS[0].id_number)
    no_token = citizen.post(
        f"/consent/{request_id}", data={"decision": "deny"}, headers={"Origin": vault.settings.public_url}
    )
    assert no_token.status_code == 403
    foreign = post(
        citizen,
        vault,
        f"/consent/{request_id}",
        {"decision": "deny"},
        form_page=f"/consent/{request_id}",
        Origin="https://evil.example",
    )
    assert foreign.status_code == 403
    assert "consent.denied" not in _actions(vault)


def test_backchannel_flow_through_the_inbox(vault: Vault, agency: AgencyClient) -> None:
    started = agency.http.post(
        "/oauth/bc-authorize",
        auth=agency.auth,
        data={
            "login_hint": PERSONS[1].id_number,
            "authorization_details": details("vehicle-registration"),
            "binding_message": "A-1024",
        },
    ).json()
    poll = {"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": started["auth_req_id"]}
    assert agency.http.post("/oauth/token", auth=agency.auth, data=poll).json()["error"] == "authorization_pending"
    other = _signed_in(vault, PERSONS[0].id_number)
    assert "A-1024" not in other.get("/inbox").text  # someone else's request is not in your inbox
    citizen = _signed_in(vault, PERSONS[1].id_number)
    inbox = citizen.get("/inbox")
    assert "A-1024" in inbox.text
    request_id = re.search(r'href="/consent/([0-9a-f-]{36})"', inbox.text).group(1)  # type: ignore[union-attr]
    assert other.get(f"/consent/{request_id}").status_code == 403
    page = citizen.get(f"/consent/{request_id}")
    kept = [b for b in re.findall(r'name="field" value="([^"]+)"', page.text) if not b.endswith("/address")]
    approved = post(
        citizen,
        vault,
        f"/consent/{request_id}",
        {"decision": "approve", "field": kept},  # type: ignore[dict-item]
        form_page=f"/consent/{request_id}",
    )
    assert approved.status_code == 303 and approved.headers["location"].startswith("/grants")
    with vault.db.session() as session:
        from vault.consent.models import ConsentRequest

        row = session.get(ConsentRequest, uuid.UUID(request_id))
        assert row is not None
        row.last_polled_at = None  # the agency waited its interval
    tokens = agency.http.post("/oauth/token", auth=agency.auth, data=poll)
    assert tokens.status_code == 200
    granted = agency.introspect(tokens.json()["access_token"])["authorization_details"][0]["fields"]
    assert granted == {"resident-id-card": ["birth_date", "id_number", "name", "sex"]}
    grant_id = agency.introspect(tokens.json()["access_token"])["grant_id"]
    assert post(citizen, vault, f"/grants/{grant_id}/revoke", {}, form_page="/grants").status_code == 303
    assert agency.introspect(tokens.json()["access_token"]) == {"active": False}
    assert _verified(vault)


def test_only_a_representative_approves_for_an_enterprise(vault: Vault, agency: AgencyClient) -> None:
    transport = AgencyClient(agency.http, "transport-bureau", "demo-secret-transport-bureau")
    started = transport.http.post(
        "/oauth/bc-authorize",
        auth=transport.auth,
        data={
            "login_hint": ENTERPRISES[0].credit_code,
            "authorization_details": details("road-transport-permit-renewal"),
        },
    )
    assert started.status_code == 200, started.text
    outsider = _signed_in(vault, PERSONS[1].id_number)  # represents the tech company, not the transport one
    with vault.db.session() as session:
        from vault.owners.models import OwnerKind

        company = vault.owners.find(session, OwnerKind.ENTERPRISE, ENTERPRISES[0].credit_code)
        assert company is not None
        [request] = vault.consent.inbox(session, company.id)
    refused = post(outsider, vault, "/acting-for", {"owner": str(company.id)}, form_page="/")
    assert refused.status_code == 403
    refused_page = outsider.get(f"/consent/{request.id}")
    assert refused_page.status_code == 403 and ENTERPRISES[0].name not in refused_page.text  # says no more than that

    representative = _signed_in(vault, PERSONS[0].id_number)  # legal representative of the transport company
    assert post(representative, vault, "/acting-for", {"owner": str(company.id)}, form_page="/").status_code == 303
    assert str(request.id) in representative.get("/inbox").text
    page = representative.get(f"/consent/{request.id}")
    boxes = re.findall(r'name="field" value="([^"]+)"', page.text)
    approved = post(
        representative,
        vault,
        f"/consent/{request.id}",
        {"decision": "approve", "field": boxes},  # type: ignore[dict-item]
        form_page=f"/consent/{request.id}",
    )
    assert approved.status_code == 303
    with vault.db.session() as session:
        [grant] = vault.consent.grants_of(session, company.id)
        assert grant.approved_by is not None and grant.owner_id == company.id


def test_police_mandate_by_client_credentials(vault: Vault, agency: AgencyClient) -> None:
    response = mandate_token(
        agency.http,
        "police-investigation",
        "demo-secret-police-investigation",
        "police-criminal-investigation",
        "XS-2026-000001",
        sensitive=[],
    )
    assert response.status_code == 200
    police = AgencyClient(agency.http, "police-investigation", "demo-secret-police-investigation")
    introspection = police.introspect(response.json()["access_token"])
    [granted] = introspection["authorization_details"]
    assert granted == response.json()["authorization_details"][0]  # what was granted, never the text sent
    assert granted["type"] == "legal_mandate" and granted["mandate"] == "police-criminal-investigation"
    assert len(granted["owners"]) == 2 and granted["official"] == "012345" and granted["sensitive_fields"] == []
    with vault.db.session() as session:
        newest = AuditEvent.seq.desc()  # type: ignore[union-attr]
        last = session.scalars(select(AuditEvent).order_by(newest).limit(1)).one()
    assert last.action == "token.issued" and b"police-criminal-investigation" in last.entry
    assert b'"official":"012345"' in last.entry and b"XS-2026-000001" not in last.entry  # the case text is not logged
    assert _verified(vault)
