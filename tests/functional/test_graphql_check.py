"""Answers instead of data over HTTP: consent to questions, `check` answers yes or no signed, releasing no value.

The transport bureau asks person a (and the transport company, which a represents) questions of its two
question items; every answer is checked for yes and no, for the absence of every value of the licence, against
the vault's published keys offline, and in the access log and on the owner's activity page.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import col, select
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE, AgencyClient, consent_via_service, query_of, returning_to
from tests.unit.api.support import demo_person, errors_by_code, gql, identifier, operation, secret
from tests.webclient import browser, origin, page_token, post, sign_in
from vault.answers.errors import AnswerInvalid
from vault.answers.verify import verify_answer
from vault.audit.models import AuditEvent
from vault.consent.models import Grant
from vault.demo import CITIZEN_PASSWORD, ENTERPRISES, PERSONS, demo_licences
from vault.licences.lifecycle import Step
from vault.oauth.adapter import unit_of_work
from vault.owners.models import OwnerKind
from vault.portability.verify import keys_from_jwks
from vault.web.app import create_app
from vault.wiring import Vault

CHECK = operation("agency-check")
TRANSPORT = "transport-bureau"
DRIVER_ITEM = "ride-hailing-driver-check"
OPERATOR_ITEM = "road-freight-operator-check"


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(create_app(vault=vault), base_url=BASE) as client:
        yield client


def grant_tokens(
    vault: Vault,
    http: TestClient,
    item: str,
    *,
    person: str = "a",
    owner_id: uuid.UUID | None = None,
    questions: list[str] | None = None,
    approve: list[str] | None = None,
) -> dict[str, Any]:
    agency = AgencyClient(http, TRANSPORT, secret(TRANSPORT))
    detail: dict[str, Any] = {"type": "licence_access", "service_item": item}
    if questions is not None:
        detail["questions"] = questions
    pushed = agency.push(item, authorization_details=json.dumps([detail]))
    assert pushed.status_code == 201, pushed.text
    response = agency.authorize(pushed.json()["request_uri"])
    assert response.status_code == 303, response.text
    request_id = uuid.UUID(response.headers["location"].rsplit("/", 1)[1])
    person_id = demo_person(vault, person)
    if approve is None:
        location = consent_via_service(vault, request_id, person_id, owner_id)
    else:
        from vault.consent.services import Decider

        with unit_of_work(vault.db) as session:
            request = vault.consent.pending_request(session, request_id)
            grant = vault.consent.approve(session, request_id, Decider(person_id, owner_id or person_id), {}, approve)
            location = vault.oauth.approved(request, grant)
    redeemed = agency.redeem(query_of(location)["code"])
    assert redeemed.status_code == 200, redeemed.text
    body: dict[str, Any] = redeemed.json()
    return body


def ask(http: TestClient, token: str, predicate: str, **parameters: str) -> Any:
    variables: dict[str, Any] = {"predicate": predicate}
    if parameters:
        variables["parameters"] = [{"name": k, "value": v} for k, v in parameters.items()]
    return gql(http, token, CHECK, variables)


def answer_of(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    answer: dict[str, Any] = body["data"]["check"]
    return answer


def licence_values(key: str) -> list[str]:
    """Every value of every demo licence of the owner, as text: none may appear in an answer."""
    return [str(v) for owner, _, values in demo_licences() if owner == key for v in values.values() if len(str(v)) > 3]


def assert_no_value(response: Any, key: str, *allowed: str) -> None:
    text = response.text
    for value in licence_values(key):
        if value not in allowed:
            assert value not in text, f"a licence value leaked into the answer: {value[:2]}…"


def jwks(http: TestClient) -> dict[str, Any]:
    response = http.get("/oauth/jwks")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def events(vault: Vault, *actions: str) -> list[dict[str, Any]]:
    with unit_of_work(vault.db) as session:
        rows = session.scalars(
            select(AuditEvent.entry).where(col(AuditEvent.action).in_(actions)).order_by(col(AuditEvent.created_at))
        ).all()
    return [json.loads(row) for row in rows]


def uses(vault: Vault, grant_id: str) -> int:
    with unit_of_work(vault.db) as session:
        grant = session.get(Grant, uuid.UUID(grant_id))
        assert grant is not None
        return grant.uses


def test_each_driver_question_answers_yes_and_no_without_a_value(vault: Vault, http: TestClient) -> None:
    token = grant_tokens(vault, http, DRIVER_ITEM)["access_token"]
    a = next(p for p in PERSONS if p.key == "a")
    b = next(p for p in PERSONS if p.key == "b")

    yes = ask(http, token, "driving-licence-class-valid")  # the item fixes class C1
    answer = answer_of(yes)
    assert (answer["answer"], answer["licenceStatus"], answer["parameters"]) == (
        True,
        "active",
        [{"name": "class", "value": "C1"}],
    )
    assert answer["questionZh"] == "是否持有有效的C1驾驶证"
    assert_no_value(yes, "a", "C1")

    assert answer_of(ask(http, token, "name-and-id-number-match", name=a.name, id_number=a.id_number))["answer"]
    mismatch = ask(http, token, "name-and-id-number-match", name=b.name, id_number=a.id_number)
    assert answer_of(mismatch)["answer"] is False
    assert_no_value(mismatch, "a", a.id_number, b.name)  # only what the agency itself sent comes back

    adult = ask(http, token, "holder-age-at-least", years="18")
    assert answer_of(adult)["answer"] is True
    assert_no_value(adult, "a")
    assert answer_of(ask(http, token, "holder-age-at-least", years="100"))["answer"] is False


def test_a_suspended_licence_answers_no_with_its_status(vault: Vault, http: TestClient) -> None:
    token = grant_tokens(vault, http, DRIVER_ITEM)["access_token"]
    with unit_of_work(vault.db) as session:
        owner = vault.owners.find(session, OwnerKind.PERSON, identifier("a"))
        assert owner is not None
        [licence] = [
            lic for lic in vault.licences.list_for_owner(session, owner.id) if lic.type_code == "driving-licence"
        ]
        vault.licences.change(session, licence.id, Step.SUSPEND, issuer_code="traffic-police", reason="test")

    answer = answer_of(ask(http, token, "driving-licence-class-valid", **{"class": "C1"}))

    assert (answer["answer"], answer["licenceStatus"]) == (False, "suspended")


def test_the_business_licence_question_for_an_enterprise(vault: Vault, http: TestClient) -> None:
    transport = next(e for e in ENTERPRISES if e.key == "transport")
    with unit_of_work(vault.db) as session:
        company = vault.owners.find(session, OwnerKind.ENTERPRISE, transport.credit_code)
        assert company is not None
        company_id = company.id
    token = grant_tokens(vault, http, OPERATOR_ITEM, owner_id=company_id)["access_token"]

    yes = ask(http, token, "business-licence-in-force")
    assert (answer_of(yes)["answer"], answer_of(yes)["licenceStatus"]) == (True, "active")
    assert transport.credit_code not in yes.text and transport.name not in yes.text

    # once: the one use is spent, the next question is refused as unauthenticated
    again = ask(http, token, "business-licence-in-force")
    assert errors_by_code(again.json()).keys() == {"UNAUTHENTICATED"}


def test_a_no_for_the_enterprise_whose_licence_is_revoked(vault: Vault, http: TestClient) -> None:
    transport = next(e for e in ENTERPRISES if e.key == "transport")
    with unit_of_work(vault.db) as session:
        company = vault.owners.find(session, OwnerKind.ENTERPRISE, transport.credit_code)
        assert company is not None
        company_id = company.id
        [licence] = [
            lic for lic in vault.licences.list_for_owner(session, company_id) if lic.type_code == "business-licence"
        ]
        vault.licences.change(session, licence.id, Step.REVOKE, issuer_code="market-regulation", reason="test")
    token = grant_tokens(vault, http, OPERATOR_ITEM, owner_id=company_id)["access_token"]

    answer = answer_of(ask(http, token, "business-licence-in-force"))

    assert (answer["answer"], answer["licenceStatus"]) == (False, "revoked")


def test_the_signed_answer_verifies_offline_and_fails_when_tampered(vault: Vault, http: TestClient) -> None:
    token = grant_tokens(vault, http, DRIVER_ITEM)["access_token"]
    answer = answer_of(ask(http, token, "holder-age-at-least", years="18"))
    keys = keys_from_jwks(jwks(http))

    verified = verify_answer(answer["signed"], keys, issuer=vault.consent.issuer)

    assert verified.answer is True
    assert verified.claims["predicate"] == "holder-age-at-least"
    assert verified.claims["parameters"] == {"years": 18}
    assert verified.claims["grant"] == answer["grantId"]
    assert verified.claims["licence_status"] == "active"
    header, payload, signature = answer["signed"].split(".")
    claims = json.loads(__import__("base64").urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["answer"] = False
    forged_payload = __import__("base64").urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(AnswerInvalid) as caught:
        verify_answer(f"{header}.{forged_payload}.{signature}", keys)
    assert caught.value.reason == "bad_signature"


def test_each_answer_is_an_access_event_and_a_use_readable_by_the_owner(vault: Vault, http: TestClient) -> None:
    issued = grant_tokens(vault, http, DRIVER_ITEM)
    token = issued["access_token"]
    answer_of(ask(http, token, "holder-age-at-least", years="18"))
    answer_of(ask(http, token, "driving-licence-class-valid"))

    [first, second] = events(vault, "predicate.answered")
    assert first["detail"]["predicate"] == "holder-age-at-least" and first["decision"] == "allow"
    assert "answer_note" in first["detail"]  # the answer itself is sealed under the owner's key
    assert set(first["detail"]) == {"predicate", "answer_note", "answer_id"}  # no answer, no parameter in the clear
    assert "answer" not in {k for k in first if k != "detail"}
    grant_id = first["grant"]
    assert second["grant"] == grant_id
    assert uses(vault, grant_id) == 2

    citizen = browser(vault)
    sign_in(citizen, vault, identifier("a"), CITIZEN_PASSWORD)
    page = citizen.get("/activity")
    assert page.status_code == 200
    assert "是否年满18周岁" in page.text and "是否持有有效的C1驾驶证" in page.text
    assert "回答：是" in page.text and "就您的数据提出问题" in page.text
    assert post(citizen, vault, "/lang", {"lang": "en", "next": "/activity"}, form_page="/activity").status_code == 303
    english = citizen.get("/activity")
    assert "Is the holder at least 18 years old?" in english.text
    assert "Does the holder have a driving licence of class C1, valid today?" in english.text
    assert "Answered yes" in english.text and "Asked a question about your data" in english.text
    assert "a field this vault no longer describes" not in english.text  # the consent event names its questions


def test_a_question_not_consented_to_is_refused_and_recorded(vault: Vault, http: TestClient) -> None:
    token = grant_tokens(vault, http, DRIVER_ITEM, approve=["holder-age-at-least"])["access_token"]

    refused = ask(http, token, "driving-licence-class-valid")

    [error] = errors_by_code(refused.json())["FORBIDDEN"]
    assert "default deny" in error["message"]
    [event] = events(vault, "predicate.denied")
    assert event["detail"] == {"predicate": "driving-licence-class-valid"} and event["decision"] == "deny"
    # the one the owner left ticked is answered
    assert answer_of(ask(http, token, "holder-age-at-least", years="18"))["answer"] is True


def test_questions_are_refused_without_a_grant_and_after_revocation(vault: Vault, http: TestClient) -> None:
    issued = grant_tokens(vault, http, DRIVER_ITEM)
    assert issued["authorization_details"][0]["questions"][0] == {
        "predicate": "driving-licence-class-valid",
        "parameters": {"class": "C1"},
    }
    with unit_of_work(vault.db) as session:
        grant_id = next(iter(session.scalars(select(Grant.id).where(Grant.service_item == DRIVER_ITEM))))
        vault.consent.revoke(session, grant_id, actor="owner:test", owner_id=None, reason="revoked by owner")

    after = ask(http, issued["access_token"], "holder-age-at-least", years="18")
    assert errors_by_code(after.json()).keys() == {"UNAUTHENTICATED"}
    assert not events(vault, "predicate.answered")

    anonymous = ask(http, "not-a-token", "holder-age-at-least", years="18")
    assert errors_by_code(anonymous.json()).keys() == {"UNAUTHENTICATED"}

    from tests.unit.api.support import police_token

    under_a_law = ask(http, police_token(http), "holder-age-at-least", years="18")  # a mandate is not consent
    [error] = errors_by_code(under_a_law.json())["FORBIDDEN"]
    assert error["message"].startswith("a question is answered under the owner's consent only")


def test_a_field_grant_cannot_ask_a_question(vault: Vault, http: TestClient) -> None:
    from tests.unit.api.support import HOUSING, REPEATED_ITEM

    agency = AgencyClient(http, HOUSING, secret(HOUSING))
    request_id = agency.start(REPEATED_ITEM)
    location = consent_via_service(vault, request_id, demo_person(vault))
    token = agency.redeem(query_of(location)["code"]).json()["access_token"]

    refused = ask(http, token, "holder-age-at-least", years="18")

    assert errors_by_code(refused.json()).keys() == {"FORBIDDEN"}
    [event] = events(vault, "predicate.denied")
    assert "grant-question-not-asked-by-item" in event["reason"]


@pytest.mark.parametrize(
    ("predicate", "parameters", "message"),
    [
        ("holder-age-at-least", {}, "holder-age-at-least needs the parameter 'years'"),
        ("holder-age-at-least", {"years": "eighteen"}, "parameter 'years' must be an integer"),
        ("holder-age-at-least", {"years": "500"}, "parameter 'years' must be between 1 and 120"),
        (
            "holder-age-at-least",
            {"months": "3"},
            "holder-age-at-least has no parameter 'months' (its parameters: years)",
        ),
        ("driving-licence-class-valid", {"class": "Z9"}, "parameter 'class': not one of the allowed values"),
        (
            "driving-licence-class-valid",
            {"class": "A1"},
            "parameter 'class' is fixed by the service item consented to: it must be 'C1' or left out",
        ),
        ("no-such-question", {}, "no predicate 'no-such-question'"),
    ],
)
def test_bad_parameters_get_a_clear_error_and_ask_nothing(
    vault: Vault, http: TestClient, predicate: str, parameters: dict[str, str], message: str
) -> None:
    token = grant_tokens(vault, http, DRIVER_ITEM)["access_token"]

    response = ask(http, token, predicate, **parameters)

    [error] = errors_by_code(response.json())["BAD_USER_INPUT"]
    assert error["message"] == message
    assert not events(vault, "predicate.answered")


def test_a_request_may_ask_questions_only_and_the_consent_page_shows_them(vault: Vault, http: TestClient) -> None:
    agency = AgencyClient(http, TRANSPORT, secret(TRANSPORT))
    detail = [{"type": "licence_access", "service_item": DRIVER_ITEM, "questions": ["driving-licence-class-valid"]}]
    pushed = agency.push(DRIVER_ITEM, authorization_details=json.dumps(detail))
    request_id = agency.authorize(pushed.json()["request_uri"]).headers["location"].rsplit("/", 1)[1]
    citizen = browser(vault)
    sign_in(citizen, vault, identifier("a"), CITIZEN_PASSWORD)

    page = citizen.get(f"/consent/{request_id}")

    assert page.status_code == 200
    assert "是否持有有效的C1驾驶证" in page.text
    assert 'name="question" value="driving-licence-class-valid"' in page.text
    assert 'name="field"' not in page.text
    path = f"/consent/{request_id}"
    form = {"csrf_token": page_token(citizen, path), "decision": "approve", "question": ["driving-licence-class-valid"]}
    decided = citizen.post(path, data=form, headers={"Origin": origin(vault)})
    assert "是否持有有效的C1驾驶证" in decided.text  # the confirmation names the question it granted
    code = query_of(returning_to(decided))["code"]  # the confirmation page continues to the agency
    granted = agency.redeem(code).json()
    assert granted["authorization_details"][0]["fields"] == {}
    grants = citizen.get("/grants").text
    assert "是否持有有效的C1驾驶证" in grants
    assert answer_of(ask(http, granted["access_token"], "driving-licence-class-valid"))["answer"] is True

    unknown = [{"type": "licence_access", "service_item": DRIVER_ITEM, "questions": ["blood-type"]}]
    refused = agency.push(DRIVER_ITEM, authorization_details=json.dumps(unknown))
    assert refused.status_code == 400
    assert "does not ask the question 'blood-type'" in refused.json()["error_description"]


def test_request_consent_carries_questions_over_ciba_and_the_answer_follows(vault: Vault, http: TestClient) -> None:
    from tests.unit.api.support import client_token, register_client

    ciba = "urn:openid:params:grant-type:ciba"
    register_client(
        vault,
        "transport-counter",
        department="transport",
        category="transport",
        scopes=["consent:request", "licences:read"],
        service_items=[DRIVER_ITEM],
        grant_types=["client_credentials", ciba],
    )
    token = client_token(http, "transport-counter", "consent:request")
    variables = {"owner": identifier("a"), "serviceItem": DRIVER_ITEM, "questions": ["holder-age-at-least"]}
    started = gql(http, token, operation("agency-request-consent"), variables).json()["data"]["requestConsent"]
    assert started["__typename"] == "ConsentRequestStarted"
    from vault.consent.services import Decider

    person = demo_person(vault)
    with unit_of_work(vault.db) as session:
        [request] = vault.consent.inbox(session, person)
        assert (request.fields, request.questions) == ({}, {"holder-age-at-least": {}})
        vault.consent.approve(session, request.id, Decider(person, person), {})
    poll = {"grant_type": ciba, "auth_req_id": started["authReqId"]}
    granted = http.post("/oauth/token", auth=("transport-counter", secret("transport-counter")), data=poll)
    assert granted.status_code == 200, granted.text

    answer = answer_of(ask(http, granted.json()["access_token"], "holder-age-at-least", years="18"))
    assert answer["answer"] is True

    unknown = dict(variables, questions=["blood-type"])
    refused = gql(http, token, operation("agency-request-consent"), unknown).json()["data"]["requestConsent"]
    assert refused["__typename"] == "ConsentRequestRefused"
    assert refused["error"] == "invalid_authorization_details"


def test_the_cli_verifies_an_answer_offline_and_refuses_a_tampered_one(
    vault: Vault, http: TestClient, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from vault import cli

    token = grant_tokens(vault, http, DRIVER_ITEM)["access_token"]
    signed = answer_of(ask(http, token, "driving-licence-class-valid"))["signed"]
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(jwks(http)), encoding="utf-8")
    good = tmp_path / "answer.jwt"
    good.write_text(signed, encoding="utf-8")

    assert cli.main(["verify-answer", str(good), "--keys", str(keys), "--issuer", vault.consent.issuer]) == 0
    out = capsys.readouterr().out
    assert "answer: yes; licence status: active" in out and "the answer verifies" in out

    header, payload, signature = signed.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    bad = tmp_path / "tampered.jwt"
    bad.write_text(f"{header}.{payload}.{flipped}", encoding="utf-8")
    assert cli.main(["verify-answer", str(bad), "--keys", str(keys)]) == 1
    assert "does NOT verify (bad_signature)" in capsys.readouterr().out
    assert cli.main(["verify-answer", str(good), "--keys", str(keys), "--issuer", "https://elsewhere.example"]) == 1
