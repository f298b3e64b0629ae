"""The authorization server against every OAuth line of the security checklist, over HTTP."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.oauth_helpers import (
    BASE,
    REDIRECT,
    AgencyClient,
    consent_via_service,
    consented_tokens,
    details,
    mandate_token,
    pkce,
    query_of,
)
from vault import clock
from vault.demo import PERSONS
from vault.oauth.adapter import unit_of_work
from vault.oauth.server import binding_message
from vault.owners.models import OwnerKind
from vault.web.app import create_app
from vault.wiring import Vault

TRAFFIC = "traffic-police-vehicle-office"
ITEM = "vehicle-registration"


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=vault), base_url=BASE) as client:
        yield client


@pytest.fixture
def agency(http: TestClient) -> AgencyClient:
    return AgencyClient(http, TRAFFIC, f"demo-secret-{TRAFFIC}")


@pytest.fixture
def person(vault: Vault, http: TestClient) -> uuid.UUID:
    with unit_of_work(vault.db) as session:
        owner = vault.owners.find(session, OwnerKind.PERSON, PERSONS[0].id_number)
        assert owner is not None
        return owner.id


def _register(vault: Vault, client_id: str, **overrides: Any) -> str:
    values: dict[str, Any] = {
        "client_id": client_id,
        "name_zh": "测试机构",
        "name_en": "Test agency",
        "category": "traffic",
        "department": "traffic-police",
        "service_items": [ITEM],
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "scopes": ["licences:read", "consent:request"],
        "auth_method": "client_secret_basic",
        "actor": "test",
    }
    values.update(overrides)
    with unit_of_work(vault.db) as session:
        _, secret = vault.agencies.register(session, **values)
    return secret or ""


# metadata


def test_metadata_advertises_s256_only_and_our_endpoints(http: TestClient) -> None:
    meta = http.get("/.well-known/oauth-authorization-server").json()
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["issuer"] == BASE and meta["authorization_response_iss_parameter_supported"] is True
    assert meta["authorization_details_types_supported"] == ["licence_access", "legal_mandate"]
    for key in ("pushed_authorization_request_endpoint", "backchannel_authentication_endpoint"):
        assert meta[key].startswith(BASE)
    assert meta["require_pushed_authorization_requests"] is True
    assert set(meta["grant_types_supported"]) >= {"authorization_code", "urn:openid:params:grant-type:ciba"}
    assert "password" not in meta["grant_types_supported"] and "implicit" not in meta["grant_types_supported"]


# redirect URIs


@pytest.mark.parametrize(
    "uri",
    [
        REDIRECT + "/",
        REDIRECT.upper(),
        REDIRECT.replace("/callback", "/CALLBACK"),
        REDIRECT + "?x=1",
        REDIRECT + "#frag",
        REDIRECT.replace("http://", "https://"),
        REDIRECT.replace("http://", "http://user@"),
        REDIRECT.replace("8001", "8002"),
        REDIRECT.replace("127.0.0.1", "localhost"),
    ],
)
def test_redirect_uri_must_match_exactly(agency: AgencyClient, uri: str) -> None:
    response = agency.push(ITEM, redirect_uri=uri)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert "location" not in response.headers


def test_unknown_client_gets_an_error_page_and_no_redirect(http: TestClient) -> None:
    response = http.get("/oauth/authorize", params={"client_id": "nobody", "request_uri": "x"}, follow_redirects=False)
    assert response.status_code == 400 and "location" not in response.headers
    assert "invalid_client" in response.text


def test_authorization_without_a_pushed_request_is_refused_without_redirect(agency: AgencyClient) -> None:
    response = agency.http.get(
        "/oauth/authorize",
        params={"client_id": TRAFFIC, "response_type": "code", "redirect_uri": REDIRECT, "state": "s"},
        follow_redirects=False,
    )
    assert response.status_code == 400 and "location" not in response.headers and "PAR" in response.text


def test_a_client_with_several_redirect_uris_must_name_one(vault: Vault, http: TestClient) -> None:
    secret = _register(vault, "two-uris", redirect_uris=[REDIRECT, "http://127.0.0.1:8001/other"])
    agency = AgencyClient(http, "two-uris", secret)
    assert agency.push(ITEM, redirect_uri=None).json()["error"] == "invalid_request"
    assert agency.push(ITEM).status_code == 201


def test_token_redirect_uri_must_equal_the_authorization_one(
    vault: Vault, agency: AgencyClient, person: uuid.UUID
) -> None:
    location = consent_via_service(vault, agency.start(ITEM), person)
    response = agency.redeem(query_of(location)["code"], redirect_uri=REDIRECT + "/")
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


# PKCE


@pytest.mark.parametrize(
    ("challenge", "method"),
    [(None, None), ("x" * 43, "plain"), ("x" * 43, None), ("short", "S256"), (None, "S256")],
    ids=["missing", "plain", "no-method", "too-short", "method-only"],
)
def test_pkce_s256_is_required(agency: AgencyClient, challenge: str | None, method: str | None) -> None:
    response = agency.push(ITEM, code_challenge=challenge, code_challenge_method=method)  # type: ignore[arg-type]
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("verifier", [None, "a" * 42, "a" * 129, "a" * 42 + "!", "b" * 50])
def test_code_verifier_is_checked(vault: Vault, agency: AgencyClient, person: uuid.UUID, verifier: str | None) -> None:
    location = consent_via_service(vault, agency.start(ITEM), person)
    response = agency.redeem(query_of(location)["code"], code_verifier=verifier)  # type: ignore[arg-type]
    assert response.status_code == 400 and response.json()["error"] in ("invalid_request", "invalid_grant")


# codes


def test_a_code_is_single_use_and_a_replay_revokes_the_first_tokens(
    vault: Vault, agency: AgencyClient, person: uuid.UUID
) -> None:
    location = consent_via_service(vault, agency.start(ITEM), person)
    code = query_of(location)["code"]
    first = agency.redeem(code)
    assert first.status_code == 200
    tokens = first.json()
    assert agency.introspect(tokens["access_token"])["active"] is True
    second = agency.redeem(code)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert agency.introspect(tokens["access_token"]) == {"active": False}
    assert agency.refresh(tokens["refresh_token"]).status_code == 400


def test_parallel_redemptions_exactly_one_wins(vault: Vault, agency: AgencyClient, person: uuid.UUID) -> None:
    location = consent_via_service(vault, agency.start(ITEM), person)
    code, results = query_of(location)["code"], []

    def redeem() -> None:
        results.append(agency.redeem(code).status_code)

    threads = [threading.Thread(target=redeem) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 400, 400, 400]


def test_an_expired_code_is_refused(
    vault: Vault, agency: AgencyClient, person: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = consent_via_service(vault, agency.start(ITEM), person)
    later = clock.utcnow() + timedelta(seconds=61)
    monkeypatch.setattr("vault.oauth.grants.utcnow", lambda: later)
    response = agency.redeem(query_of(location)["code"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_another_clients_code_is_refused_without_revoking_the_owners_tokens(
    vault: Vault, http: TestClient, agency: AgencyClient, person: uuid.UUID
) -> None:
    other = AgencyClient(http, "thief", _register(vault, "thief"))
    location = consent_via_service(vault, agency.start(ITEM), person)
    code = query_of(location)["code"]
    other.verifier = agency.verifier
    stolen = other.redeem(code)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert agency.redeem(code).status_code == 200  # the rightful client still gets its tokens


# client authentication


@pytest.mark.parametrize(
    "auth",
    [None, (TRAFFIC, "wrong"), ("nobody", "x"), (TRAFFIC, "")],
    ids=["none", "wrong-secret", "unknown-client", "empty-secret"],
)
def test_client_authentication_failures_are_401_invalid_client(http: TestClient, auth: tuple[str, str] | None) -> None:
    response = http.post("/oauth/token", auth=auth, data={"grant_type": "client_credentials", "client_id": TRAFFIC})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert response.headers["cache-control"] == "no-store"


def test_an_unregistered_auth_method_is_401(http: TestClient) -> None:
    response = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": TRAFFIC, "client_secret": f"demo-secret-{TRAFFIC}"},
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


# grants a client may use


@pytest.mark.parametrize(
    "data",
    [
        {"grant_type": "password", "username": PERSONS[0].id_number, "password": "demo-citizen"},
        {"grant_type": "implicit"},
        {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "x"},
    ],
    ids=["password", "implicit", "device"],
)
def test_password_implicit_and_unknown_grants_are_refused(agency: AgencyClient, data: dict[str, str]) -> None:
    response = agency.http.post("/oauth/token", auth=agency.auth, data=data)
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("response_type", ["token", "code id_token", "code token"])
def test_implicit_and_hybrid_response_types_are_refused(agency: AgencyClient, response_type: str) -> None:
    response = agency.push(ITEM, response_type=response_type)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_a_client_gets_only_its_registered_grants_and_scopes(http: TestClient, agency: AgencyClient) -> None:
    response = http.post("/oauth/token", auth=agency.auth, data={"grant_type": "client_credentials", "scope": "x"})
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    police = ("police-investigation", "demo-secret-police-investigation")
    response = http.post(
        "/oauth/token", auth=police, data={"grant_type": "client_credentials", "scope": "licences:issue"}
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"
    pushed = agency.push(ITEM, scope="licences:issue")
    assert pushed.status_code == 400


# refresh tokens


def test_refresh_rotates_and_a_replay_revokes_the_family(vault: Vault, agency: AgencyClient, person: uuid.UUID) -> None:
    tokens = consented_tokens(vault, agency, person, ITEM)
    rotated = agency.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200
    fresh = rotated.json()
    assert fresh["refresh_token"] != tokens["refresh_token"] and fresh["access_token"] != tokens["access_token"]
    replay = agency.refresh(tokens["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert agency.introspect(fresh["access_token"]) == {"active": False}
    assert agency.refresh(fresh["refresh_token"]).status_code == 400


def test_refresh_is_bound_to_its_client_and_cannot_widen_scope(
    vault: Vault, http: TestClient, agency: AgencyClient, person: uuid.UUID
) -> None:
    tokens = consented_tokens(vault, agency, person, ITEM)
    other = AgencyClient(http, "other", _register(vault, "other"))
    assert other.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    widened = agency.refresh(tokens["refresh_token"], scope="licences:read consent:request")
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_scope"


def test_refresh_has_absolute_and_idle_expiry(
    vault: Vault, agency: AgencyClient, person: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = consented_tokens(vault, agency, person, ITEM)
    idle = clock.utcnow() + timedelta(days=8)
    monkeypatch.setattr("vault.oauth.tokens.utcnow", lambda: idle)
    assert agency.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    monkeypatch.undo()
    tokens = consented_tokens(vault, agency, person, ITEM)
    beyond = clock.utcnow() + timedelta(days=31)  # vehicle registration grants last at most 30 days
    monkeypatch.setattr("vault.oauth.tokens.utcnow", lambda: beyond)
    assert agency.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


# revocation


def test_revoking_a_grant_revokes_every_token_from_it_at_once(
    vault: Vault, agency: AgencyClient, person: uuid.UUID
) -> None:
    tokens = consented_tokens(vault, agency, person, ITEM)
    rotated = agency.refresh(tokens["refresh_token"]).json()
    grant_id = uuid.UUID(agency.introspect(rotated["access_token"])["grant_id"])
    with unit_of_work(vault.db) as session:
        vault.consent.revoke(session, grant_id, actor=f"owner:{person}", owner_id=person, reason="test")
    assert agency.introspect(rotated["access_token"]) == {"active": False}
    assert agency.refresh(rotated["refresh_token"]).json()["error"] == "invalid_grant"


def test_rfc7009_revocation_of_a_refresh_token_kills_its_family(
    vault: Vault, agency: AgencyClient, person: uuid.UUID
) -> None:
    tokens = consented_tokens(vault, agency, person, ITEM)
    response = agency.http.post("/oauth/revoke", auth=agency.auth, data={"token": tokens["refresh_token"]})
    assert response.status_code == 200
    assert agency.introspect(tokens["access_token"]) == {"active": False}


def test_an_agency_cannot_introspect_or_revoke_another_agencys_token(
    vault: Vault, http: TestClient, agency: AgencyClient, person: uuid.UUID
) -> None:
    tokens = consented_tokens(vault, agency, person, ITEM)
    other = AgencyClient(http, "nosy", _register(vault, "nosy"))
    assert other.introspect(tokens["access_token"]) == {"active": False}
    assert http.post("/oauth/revoke", auth=other.auth, data={"token": tokens["access_token"]}).status_code == 400
    assert agency.introspect(tokens["access_token"])["active"] is True


# responses


def test_every_authorization_response_carries_state_and_iss(
    vault: Vault, agency: AgencyClient, person: uuid.UUID
) -> None:
    location = consent_via_service(vault, agency.start(ITEM), person)
    params = query_of(location)
    assert location.startswith(REDIRECT + "?")
    assert params["state"] == agency.last["state"] and params["iss"] == BASE


def test_access_denied_goes_only_to_the_registered_uri_with_state_and_iss(
    vault: Vault, agency: AgencyClient, person: uuid.UUID
) -> None:
    from vault.consent.services import Decider

    request_id = agency.start(ITEM)
    with unit_of_work(vault.db) as session:
        request = vault.consent.deny(session, request_id, Decider(person, person))
        location = vault.oauth.denied(request)
    params = query_of(location)
    assert location.startswith(REDIRECT + "?") and params["error"] == "access_denied"
    assert params["state"] == agency.last["state"] and params["iss"] == BASE


@pytest.mark.parametrize("endpoint", ["/oauth/par", "/oauth/token"])
def test_duplicated_parameters_are_refused(agency: AgencyClient, endpoint: str) -> None:
    _, challenge = pkce()
    body = (
        "response_type=code&grant_type=authorization_code&state=a&state=b&redirect_uri="
        f"{REDIRECT}&code_challenge={challenge}&code_challenge_method=S256"
    )
    response = agency.http.post(
        endpoint, auth=agency.auth, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert "more than once" in response.json()["error_description"]


def test_duplicated_parameters_at_the_authorization_endpoint(agency: AgencyClient) -> None:
    pushed = agency.push(ITEM).json()["request_uri"]
    response = agency.http.get(
        f"/oauth/authorize?client_id={TRAFFIC}&client_id={TRAFFIC}&request_uri={pushed}", follow_redirects=False
    )
    assert response.status_code == 400 and "location" not in response.headers


def test_token_responses_are_not_cached(vault: Vault, agency: AgencyClient, person: uuid.UUID) -> None:
    location = consent_via_service(vault, agency.start(ITEM), person)
    response = agency.redeem(query_of(location)["code"])
    assert response.headers["cache-control"] == "no-store" and response.headers["pragma"] == "no-cache"
    failed = agency.redeem("nonsense")
    assert failed.headers["cache-control"] == "no-store"


def test_a_request_uri_is_single_use_and_short_lived(agency: AgencyClient, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = agency.push(ITEM).json()["request_uri"]
    first = agency.authorize(uri)
    assert first.status_code == 303 and first.headers["location"].startswith("/consent/")
    # opened again, it opens nothing new: the browser goes back to the consent request the first opening made
    again = agency.authorize(uri)
    assert again.status_code == 303 and again.headers["location"] == first.headers["location"]
    stale = agency.push(ITEM).json()["request_uri"]
    later = clock.utcnow() + timedelta(seconds=61)
    monkeypatch.setattr("vault.oauth.server.utcnow", lambda: later)
    assert agency.authorize(stale).status_code == 400


# rich authorization requests


@pytest.mark.parametrize(
    ("detail", "error"),
    [
        (details(ITEM, {"resident-id-card": ["name", "photo"]}), "invalid_authorization_details"),
        (details(ITEM, {"driving-licence": ["name"]}), "invalid_authorization_details"),
        (details("business-licence-change"), "invalid_authorization_details"),
        (details("no-such-item"), "invalid_authorization_details"),
        ('[{"type": "something_else"}]', "invalid_authorization_details"),
        ("not json", "invalid_authorization_details"),
        (None, "invalid_authorization_details"),
    ],
    ids=["extra-field", "unneeded-type", "other-departments-item", "unknown-item", "unknown-type", "bad-json", "none"],
)
def test_rar_beyond_the_service_item_is_refused(agency: AgencyClient, detail: str | None, error: str) -> None:
    response = agency.push(ITEM, authorization_details=detail)  # type: ignore[arg-type]
    assert response.status_code == 400 and response.json()["error"] == error


def test_a_narrower_request_is_granted_exactly(vault: Vault, agency: AgencyClient, person: uuid.UUID) -> None:
    request_id = agency.start(ITEM, {"resident-id-card": ["name", "id_number"]})
    location = consent_via_service(vault, request_id, person, drop=("id_number",))
    tokens = agency.redeem(query_of(location)["code"]).json()
    granted = agency.introspect(tokens["access_token"])["authorization_details"]
    assert granted == [{"type": "licence_access", "service_item": ITEM, "fields": {"resident-id-card": ["name"]}}]


# backchannel and mandates


def test_ciba_poll_mode(vault: Vault, agency: AgencyClient, http: TestClient) -> None:
    start = http.post(
        "/oauth/bc-authorize",
        auth=agency.auth,
        data={"login_hint": PERSONS[1].id_number, "authorization_details": details(ITEM), "binding_message": "窗口3"},
    )
    assert start.status_code == 200
    auth_req_id = start.json()["auth_req_id"]
    poll = {"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": auth_req_id}
    assert http.post("/oauth/token", auth=agency.auth, data=poll).json()["error"] == "authorization_pending"
    assert http.post("/oauth/token", auth=agency.auth, data=poll).json()["error"] == "slow_down"
    with unit_of_work(vault.db) as session:
        owner = vault.owners.find(session, OwnerKind.PERSON, PERSONS[1].id_number)
        assert owner is not None
        [request] = vault.consent.inbox(session, owner.id)
        assert request.binding_message is None  # kept only under the owner's key
        assert binding_message(vault.keys, session, request) == "窗口3"
    _approve_backchannel(vault, request.id, owner.id)
    _wait_interval(vault, request.id)
    tokens = http.post("/oauth/token", auth=agency.auth, data=poll)
    assert tokens.status_code == 200 and agency.introspect(tokens.json()["access_token"])["active"] is True
    again = http.post("/oauth/token", auth=agency.auth, data=poll)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def _approve_backchannel(vault: Vault, request_id: uuid.UUID, owner_id: uuid.UUID) -> None:
    from vault.consent.services import Decider

    with unit_of_work(vault.db) as session:
        request = vault.consent.pending_request(session, request_id)
        vault.consent.approve(session, request_id, Decider(owner_id, owner_id), request.fields)


def _wait_interval(vault: Vault, request_id: uuid.UUID) -> None:
    from vault.consent.models import ConsentRequest

    with unit_of_work(vault.db) as session:
        request = session.get(ConsentRequest, request_id)
        assert request is not None
        request.last_polled_at = None


def test_ciba_denied_and_expired(
    vault: Vault, agency: AgencyClient, http: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vault.consent.services import Decider

    def start() -> tuple[str, uuid.UUID]:
        body = {"login_hint": PERSONS[0].id_number, "authorization_details": details(ITEM)}
        auth_req_id = http.post("/oauth/bc-authorize", auth=agency.auth, data=body).json()["auth_req_id"]
        with unit_of_work(vault.db) as session:
            owner = vault.owners.find(session, OwnerKind.PERSON, PERSONS[0].id_number)
            assert owner is not None
            return auth_req_id, owner.id

    denied, owner = start()
    with unit_of_work(vault.db) as session:
        [request] = vault.consent.inbox(session, owner)
        vault.consent.deny(session, request.id, Decider(owner, owner))
    poll = {"grant_type": "urn:openid:params:grant-type:ciba"}
    assert http.post("/oauth/token", auth=agency.auth, data={**poll, "auth_req_id": denied}).json()["error"] == (
        "access_denied"
    )
    stale, _ = start()
    later = clock.utcnow() + timedelta(minutes=11)
    monkeypatch.setattr("vault.oauth.grants.utcnow", lambda: later)
    monkeypatch.setattr("vault.consent.services.utcnow", lambda: later)
    assert http.post("/oauth/token", auth=agency.auth, data={**poll, "auth_req_id": stale}).json()["error"] == (
        "expired_token"
    )


def test_ciba_for_an_unknown_owner_answers_like_for_a_known_one(
    vault: Vault, agency: AgencyClient, http: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No oracle for "is this ID number in the vault": same answer, and the unknown one only ever expires."""
    poll = {"grant_type": "urn:openid:params:grant-type:ciba"}

    def start(hint: str, authorization_details: str) -> Any:
        body = {"login_hint": hint, "authorization_details": authorization_details}
        return http.post("/oauth/bc-authorize", auth=agency.auth, data=body)

    nobody, known = "11010519491231002X", PERSONS[0].id_number
    unknown, existing = start(nobody, details(ITEM)), start(known, details(ITEM))
    assert unknown.status_code == existing.status_code == 200
    assert set(unknown.json()) == set(existing.json()) and unknown.json()["interval"] == existing.json()["interval"]
    bad_details = details(ITEM, {"resident-id-card": ["photo"]})
    refused_unknown, refused_known = start(nobody, bad_details), start(known, bad_details)
    assert refused_unknown.status_code == refused_known.status_code == 400
    assert refused_unknown.json() == refused_known.json()  # details are checked before anyone is looked up
    auth_req_id = unknown.json()["auth_req_id"]
    assert http.post("/oauth/token", auth=agency.auth, data={**poll, "auth_req_id": auth_req_id}).json()["error"] == (
        "authorization_pending"
    )
    later = clock.utcnow() + timedelta(minutes=11)
    monkeypatch.setattr("vault.oauth.grants.utcnow", lambda: later)
    monkeypatch.setattr("vault.consent.services.utcnow", lambda: later)
    assert http.post("/oauth/token", auth=agency.auth, data={**poll, "auth_req_id": auth_req_id}).json()["error"] == (
        "expired_token"
    )


def test_a_malformed_login_hint_never_gives_the_check_character(agency: AgencyClient, http: TestClient) -> None:
    wrong = PERSONS[0].id_number[:-1] + ("0" if PERSONS[0].id_number[-1] != "0" else "1")
    body = {"login_hint": wrong, "authorization_details": details(ITEM)}
    response = http.post("/oauth/bc-authorize", auth=agency.auth, data=body)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    description = response.json()["error_description"]
    assert "check character" in description and "expected" not in description
    assert repr(PERSONS[0].id_number[-1]) not in description


@pytest.mark.parametrize("message", ["窗口\u202e3", "a\x1b[31m", "x" * 61, "\u200b"])
def test_a_binding_message_is_bounded_and_clean(agency: AgencyClient, http: TestClient, message: str) -> None:
    body = {"login_hint": PERSONS[0].id_number, "authorization_details": details(ITEM), "binding_message": message}
    response = http.post("/oauth/bc-authorize", auth=agency.auth, data=body)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert response.json()["error_description"].startswith("binding_message ")


def test_a_binding_message_is_not_stored_in_plaintext_and_dies_with_erasure(
    vault: Vault, agency: AgencyClient, http: TestClient
) -> None:
    canary = "CANARY7Q"
    body = {"login_hint": PERSONS[2].id_number, "authorization_details": details(ITEM), "binding_message": canary}
    assert http.post("/oauth/bc-authorize", auth=agency.auth, data=body).status_code == 200
    with unit_of_work(vault.db) as session:
        owner = vault.owners.find(session, OwnerKind.PERSON, PERSONS[2].id_number)
        assert owner is not None
        [request] = vault.consent.inbox(session, owner.id)
        dump = "\n".join(str(row) for row in session.connection().exec_driver_sql("SELECT * FROM consent_requests"))
        dump += "\n".join(str(row) for row in session.connection().exec_driver_sql("SELECT * FROM audit_events"))
        assert canary not in dump
        vault.keys.destroy_owner_key(session, owner.id)  # what erasure does to the owner's key
        assert binding_message(vault.keys, session, request) is None


def test_mandate_token_needs_a_police_agency_and_a_case_reference(http: TestClient, vault: Vault) -> None:
    police = ("police-investigation", "demo-secret-police-investigation")
    ok = mandate_token(http, *police, "police-criminal-investigation", "XS-2026-000042")
    assert ok.status_code == 200
    [granted] = ok.json()["authorization_details"]
    assert granted["mandate"] == "police-criminal-investigation" and granted["official"] == "012345"
    assert len(granted["case"]) == 64 and "XS-2026-000042" not in ok.text  # the case as a keyed hash only
    missing = mandate_token(http, *police, "police-criminal-investigation", " ")
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_authorization_details"
    secret = _register(
        vault,
        "housing-reader",
        category="housing",
        department="housing",
        service_items=[],
        redirect_uris=[],
        grant_types=["client_credentials"],
        scopes=["licences:read"],
    )
    refused = mandate_token(http, "housing-reader", secret, "police-criminal-investigation", "XS-2026-000001")
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"


def test_a_suspended_agency_cannot_authenticate(vault: Vault, agency: AgencyClient) -> None:
    with unit_of_work(vault.db) as session:
        vault.agencies.suspend(session, TRAFFIC, actor="staff:test", reason="test")
    assert agency.push(ITEM).status_code == 401


def test_every_step_is_in_the_access_log_and_it_verifies(vault: Vault, agency: AgencyClient, person: uuid.UUID) -> None:
    from sqlalchemy import select

    from vault.audit.models import AuditEvent

    tokens = consented_tokens(vault, agency, person, ITEM)
    grant_id = uuid.UUID(agency.introspect(tokens["access_token"])["grant_id"])
    with unit_of_work(vault.db) as session:
        vault.consent.revoke(session, grant_id, actor=f"owner:{person}", owner_id=person, reason="test")
    with unit_of_work(vault.db) as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))
        assert vault.audit.verify(session).ok
    tail = actions[actions.index("consent.requested") :]
    assert tail == ["consent.requested", "consent.approved", "token.issued", "grant.revoked"]
