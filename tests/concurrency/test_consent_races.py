"""Consent requests and OAuth credentials: of N parallel attempts at one transition, exactly one wins."""

from __future__ import annotations

from sqlmodel import func, select
from starlette.testclient import TestClient

from tests.concurrency.conftest import ONCE_ITEM, events, person_id
from tests.concurrency.race import PARALLEL, parallel, race
from tests.oauth_helpers import AgencyClient, consent_via_service, details, query_of
from vault.consent.errors import RequestNotFound
from vault.consent.models import ConsentRequest, Grant
from vault.consent.services import Decider
from vault.demo import PERSONS
from vault.oauth.adapter import unit_of_work
from vault.oauth.models import AuthorizationCode, Token
from vault.wiring import Vault

CIBA = "urn:openid:params:grant-type:ciba"


def _count(vault: Vault, model: type, *where: object) -> int:
    with vault.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_parallel_approvals_of_one_request_make_one_grant_one_code_one_receipt(
    vault: Vault, agency: AgencyClient
) -> None:
    request_id, person = agency.start(ONCE_ITEM), person_id(vault)
    with vault.db.session() as session:
        fields = vault.consent.pending_request(session, request_id).fields

    def approve(session: object, i: int) -> str:
        request = vault.consent.pending_request(session, request_id)  # type: ignore[arg-type]
        grant = vault.consent.approve(session, request_id, Decider(person, person), fields)  # type: ignore[arg-type]
        return vault.oauth.approved(request, grant)

    outcome = race(vault.db, approve, unit=lambda: unit_of_work(vault.db))
    assert len(outcome.won) == 1, outcome.lost
    assert len(outcome.lost) == PARALLEL - 1 and not outcome.errors_of(RequestNotFound)
    assert _count(vault, Grant, Grant.owner_id == person) == 1
    assert _count(vault, AuthorizationCode, AuthorizationCode.owner_id == person) == 1
    assert events(vault, "consent.approved", person) == 1
    with vault.db.session() as session:
        request = session.get(ConsentRequest, request_id)
        assert request is not None and request.state == "approved" and request.grant_id is not None


def test_approvals_racing_denials_leave_exactly_one_decision(vault: Vault, agency: AgencyClient) -> None:
    request_id, person = agency.start(ONCE_ITEM), person_id(vault)
    with vault.db.session() as session:
        fields = vault.consent.pending_request(session, request_id).fields

    def decide(session: object, i: int) -> str:
        if i % 2:
            vault.consent.deny(session, request_id, Decider(person, person))  # type: ignore[arg-type]
            return "denied"
        vault.consent.approve(session, request_id, Decider(person, person), fields)  # type: ignore[arg-type]
        return "approved"

    outcome = race(vault.db, decide)
    assert len(outcome.won) == 1 and not outcome.errors_of(RequestNotFound)
    decided = events(vault, "consent.approved", person) + events(vault, "consent.denied", person)
    assert decided == 1
    assert _count(vault, Grant, Grant.owner_id == person) == (1 if outcome.won == ["approved"] else 0)


def test_parallel_ciba_polls_after_approval_issue_one_token_set(
    vault: Vault, agency: AgencyClient, http: TestClient
) -> None:
    started = http.post(
        "/oauth/bc-authorize",
        auth=agency.auth,
        data={"login_hint": PERSONS[1].id_number, "authorization_details": details(ONCE_ITEM)},
    )
    assert started.status_code == 200, started.text
    auth_req_id, owner = started.json()["auth_req_id"], person_id(vault, 1)
    with vault.db.session() as session:
        [request] = vault.consent.inbox(session, owner)
        vault.consent.approve(session, request.id, Decider(owner, owner), request.fields)
        request.last_polled_at = None
    poll = {"grant_type": CIBA, "auth_req_id": auth_req_id}
    answers = parallel(lambda i: http.post("/oauth/token", auth=agency.auth, data=poll), n=16)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [400] * 15, [a.text for a in answers]
    assert {a.json()["error"] for a in answers if a.status_code == 400} == {"invalid_grant"}
    assert _count(vault, Token, Token.owner_id == owner) == 1
    assert events(vault, "token.issued", owner) == 1


def test_a_pushed_request_uri_opens_one_consent_request_however_often_it_is_opened(
    vault: Vault, agency: AgencyClient, http: TestClient
) -> None:
    pushed = agency.push(ONCE_ITEM)
    assert pushed.status_code == 201
    uri = pushed.json()["request_uri"]
    before = _count(vault, ConsentRequest)
    answers = parallel(lambda i: agency.authorize(uri))
    # the link opened again leads back to the one consent request it opened; never to a second one
    places = {a.headers["location"] for a in answers if a.status_code == 303}
    assert len(places) == 1 and places.pop().startswith("/consent/"), [a.status_code for a in answers]
    assert _count(vault, ConsentRequest) == before + 1


def test_parallel_code_redemptions_exactly_one_wins(vault: Vault, agency: AgencyClient) -> None:
    person = person_id(vault)
    code = query_of(consent_via_service(vault, agency.start(ONCE_ITEM), person))["code"]
    answers = parallel(lambda i: agency.redeem(code))
    assert sorted(a.status_code for a in answers) == [200] + [400] * (PARALLEL - 1)
    assert _count(vault, Token, Token.owner_id == person, Token.revoked_at.is_(None)) <= 1  # type: ignore[union-attr]


def test_parallel_refreshes_rotate_once(vault: Vault, http: TestClient) -> None:
    housing = AgencyClient(http, "housing-bureau", "demo-secret-housing-bureau")
    person = person_id(vault)
    request_id = housing.start("housing-purchase-qualification")
    tokens = housing.redeem(query_of(consent_via_service(vault, request_id, person))["code"]).json()
    assert "refresh_token" in tokens, tokens
    answers = parallel(lambda i: housing.refresh(tokens["refresh_token"]))
    assert sorted(a.status_code for a in answers) == [200] + [400] * (PARALLEL - 1), [a.text for a in answers]
    with vault.db.session() as session:
        family = session.scalars(select(Token).where(Token.owner_id == person)).all()
    assert len(family) == 2  # the original and exactly one rotation


def test_parallel_decisions_on_an_expired_request_expire_it_once(vault: Vault, agency: AgencyClient) -> None:
    request_id, person = agency.start(ONCE_ITEM), person_id(vault)
    with vault.db.session() as session:
        request = session.get(ConsentRequest, request_id)
        assert request is not None
        fields, request.expires_at = request.fields, request.created_at

    def decide_or_expire(session: object, i: int) -> int:
        if i % 2:
            return vault.consent.expire_stale_requests(session)  # type: ignore[arg-type]
        vault.consent.approve(session, request_id, Decider(person, person), fields)  # type: ignore[arg-type]
        return -1

    outcome = race(vault.db, decide_or_expire)
    # the app's maintenance leader, whose first round starts with the app, is one more contender: on a slow machine
    # it can expire the request before the threads do; either way it is expired exactly once
    assert sorted(outcome.won) in ([0, 0, 0, 1], [0, 0, 0, 0]) and not outcome.errors_of(RequestNotFound)
    assert events(vault, "consent.expired") == 1
    assert _count(vault, Grant, Grant.owner_id == person) == 0
