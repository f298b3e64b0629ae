"""The sample agency (make agency), built only on the SDK, driven against a live vault: counter, form, QR."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from sample_agency.app import create_app
from tests.sdk.conftest import Live
from vault.demo import PERSONS, SAMPLE_AGENCY_URL

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def agency(live: Live) -> Iterator[TestClient]:
    with TestClient(create_app(live.url), base_url=SAMPLE_AGENCY_URL) as client:
        yield client


def test_the_counter_asks_and_the_fields_arrive(live: Live, agency: TestClient) -> None:
    started = agency.post("/counter", data={"id_number": PERSONS[1].id_number, "item": "vehicle-registration"})
    assert started.status_code == 200 and "waiting for the person" in started.text
    live.approve_inbox(1)
    arrived = agency.get(str(started.url.path))
    assert "the fields arrived" in arrived.text and PERSONS[1].id_number in arrived.text


def test_a_refused_counter_request_says_why(agency: TestClient) -> None:
    refused = agency.post("/counter", data={"id_number": "not-an-id", "item": "vehicle-registration"})
    assert "invalid_request" in refused.text


def test_the_form_is_prefilled_with_each_fields_source(live: Live, agency: TestClient) -> None:
    to_vault = agency.get("/apply", follow_redirects=False)
    assert to_vault.status_code == 303
    with httpx2.Client() as browser:
        consent = browser.get(to_vault.headers["location"], follow_redirects=False).headers["location"]
    callback = live.approve(consent, drop=("address",))
    form = agency.get(callback.removeprefix(SAMPLE_AGENCY_URL)).text
    assert PERSONS[0].id_number in form
    assert form.count("data-source='vault'") == 4  # name, sex, birth date, ID number
    assert "not granted: typed by you" in form  # the address the person unticked
    assert form.count("data-source='applicant'") == 3


def test_the_qr_verifier(live: Live, agency: TestClient) -> None:
    from tests import factories

    with live.vault.db.session() as session:
        owner = factories.person(live.vault, session)
        licence = factories.driving_licence(live.vault, session, owner)
        shown, _ = live.vault.licences.show(session, licence.id, ["name", "class"], actor="test", nonce="ABC234")
    assert "Genuine and in force" in agency.post("/verify", data={"qr": shown, "code": "abc234"}).text
    assert "wrong_nonce" in agency.post("/verify", data={"qr": shown, "code": "XYZ789"}).text
    assert "malformed" in agency.post("/verify", data={"qr": "nonsense"}).text


def test_the_ride_hailing_check_shows_signed_answers_and_no_value(live: Live, agency: TestClient) -> None:
    person = PERSONS[0]  # the demo person with a C1 driving licence
    started = agency.post("/check", data={"id_number": person.id_number, "name": person.name})
    assert started.status_code == 200 and "waiting for the person" in started.text
    assert person.id_number not in started.text and person.name not in started.text
    live.approve_inbox(0)
    answered = agency.get(str(started.url.path)).text
    assert "answered" in answered
    assert answered.count("data-answer='true'") == 3 and answered.count("verified offline") == 3
    assert "C1" in answered and "18" in answered  # the questions asked, with the item's parameters
    for value in (person.id_number, person.name, "1985-03-12", "2032-08-20", "示例路"):
        assert value not in answered


def test_a_wrong_name_is_answered_no(live: Live, agency: TestClient) -> None:
    started = agency.post("/check", data={"id_number": PERSONS[0].id_number, "name": PERSONS[1].name})
    live.approve_inbox(0)
    answered = agency.get(str(started.url.path)).text
    assert answered.count("data-answer='true'") == 2 and answered.count("data-answer='false'") == 1


def test_an_answer_altered_on_the_way_is_not_shown(
    live: Live, agency: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone between the vault and the agency turns a no into a yes: the signature no longer verifies."""
    from vault_sdk import Operations

    asked = Operations.check

    def altered(self: Operations, predicate: str, parameters: dict[str, str] | None = None) -> dict[str, Any]:
        answer = asked(self, predicate, parameters)
        header, payload, signature = answer["signed"].split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["answer"] = True
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        return {**answer, "answer": True, "signed": f"{header}.{forged}.{signature}"}

    monkeypatch.setattr(Operations, "check", altered)
    started = agency.post("/check", data={"id_number": PERSONS[0].id_number, "name": PERSONS[1].name})
    live.approve_inbox(0)
    answered = agency.get(str(started.url.path)).text
    assert "did not verify" in answered and "bad_signature" in answered
    assert "verified offline" not in answered and "data-answer" not in answered
