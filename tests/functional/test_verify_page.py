"""The counter's /verify page: a fresh showing is genuine and in force, and stops being so after five minutes,
at another counter, once suspended, or when altered; the verdict is in large type in the page's language."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from tests.functional.test_citizen_pages import licence_of, person, present, presentation_in, signed_in
from tests.webclient import Clock, browser, post
from vault.licences.lifecycle import Step
from vault.wiring import Vault


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    return demo_vault


def counter_code(page: str) -> str:
    found = re.search(r'<strong id="counter-code">([A-Z0-9]{6})</strong>', page)
    assert found, "no counter code on the page"
    return found.group(1)


def check(counter: TestClient, vault: Vault, text: str, code: str) -> tuple[int, str]:
    answer = post(counter, vault, "/verify", {"presentation": text, "nonce": code}, form_page="/verify")
    found = re.search(r'data-verdict="([a-z_]+)">([^<]+)<', answer.text)
    assert found or answer.status_code != 200, "no verdict on the page"
    return answer.status_code, found.group(1) if found else ""


def show(client: TestClient, vault: Vault, licence: object, code: str) -> str:
    page = client.get(f"/licences/{licence}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    shown = client.post(
        f"/licences/{licence}/present",
        data={"csrf_token": token.group(1), "field": ["name"], "as": "show", "nonce": code.lower()},
        headers={"Origin": vault.settings.public_url},
    )
    assert shown.status_code == 200 and f"代码为 {code}" in shown.text
    return presentation_in(shown.text)


def test_a_showing_is_in_force_at_its_counter_only_and_for_minutes_only(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    citizen = signed_in(vault)
    counter = browser(vault, address="198.51.100.9")
    page = counter.get("/verify")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    code = counter_code(page.text)
    card = licence_of(vault, person(vault), "driving-licence")
    text = show(citizen, vault, card, code)
    answer = post(counter, vault, "/verify", {"presentation": text, "nonce": code}, form_page="/verify")
    assert 'data-verdict="in_force">真实有效<' in answer.text and "演示居民甲" in answer.text
    assert check(counter, vault, text, "ZZZ222") == (200, "wrong_counter")
    tampered = text.replace(text.split("~")[1][:8], "AAAAAAAA", 1)
    assert check(counter, vault, tampered, code)[1] == "not_genuine"
    plain = present(citizen, vault, card, ["name"], how="download").text
    assert check(counter, vault, plain, code)[1] == "not_fresh"
    clock.advance(minutes=5, seconds=1)
    assert check(counter, vault, text, code)[1] == "presentation_expired"
    fresh = show(citizen, vault, card, code)
    with vault.db.session() as session:
        vault.licences.change(session, card, Step.SUSPEND, issuer_code="traffic-police", reason="test")
    assert check(counter, vault, fresh, code)[1] == "suspended"


def test_the_verdict_speaks_english_and_bad_input_is_a_clear_400(vault: Vault) -> None:
    counter = browser(vault)
    counter.cookies.set("lang", "en")
    page = counter.get("/verify")
    code = counter_code(page.text)
    assert check(counter, vault, "not a licence", code) == (200, "not_genuine")
    answer = post(counter, vault, "/verify", {"presentation": "not a licence", "nonce": code}, form_page="/verify")
    assert ">Not genuine<" in answer.text
    empty = post(counter, vault, "/verify", {"presentation": " ", "nonce": code}, form_page="/verify")
    assert empty.status_code == 400 and "Paste or scan" in empty.text
    citizen = signed_in(vault)
    card = licence_of(vault, person(vault), "driving-licence")
    page = citizen.get(f"/licences/{card}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    refused = citizen.post(
        f"/licences/{card}/present",
        data={"csrf_token": token.group(1), "field": ["name"], "as": "show", "nonce": "0O1I"},
        headers={"Origin": vault.settings.public_url},
    )
    assert refused.status_code == 400 and "柜台代码" in refused.text
