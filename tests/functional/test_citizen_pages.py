"""The citizen's data space through HTTP: licences masked until asked for, presentations that verify, who used the
data (this owner's events only, filtered, deferred mandate reads hidden until the deferral ends) with inclusion
proofs, and the same pages for an enterprise acted for, closed to everyone who does not represent it."""

from __future__ import annotations

import base64
import html
import json
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE, AgencyClient, consented_tokens
from tests.unit.api.support import (
    HOUSING,
    REPEATED_ITEM,
    gql,
    identifier,
    operation,
    police_token,
    secret,
)
from tests.webclient import Clock, browser, citizen, post, sign_in, staff
from vault import clock
from vault.audit import merkle, note, publishing
from vault.audit.models import AuditEvent
from vault.crypto.services import VAULT_SIGNING
from vault.demo import CITIZEN_PASSWORD, ENTERPRISES, PERSONS
from vault.licences.lifecycle import Step
from vault.licences.models import Licence
from vault.owners.models import OwnerKind, Representative
from vault.web.sessions import today
from vault.wiring import Vault

PAGES = ("/licences", "/inbox", "/grants", "/activity")
READ = operation("agency-read-licences")
MANDATE_READ = operation("agency-read-under-mandate")
PERSON_A = PERSONS[0]
TRANSPORT = ENTERPRISES[0]
# values of person a's resident ID card that must never reach a page unasked
CANARIES = (PERSON_A.id_number, "演示市演示区示例路1号", "1985-03-12", PERSON_A.name)


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    """The agencies' side: OAuth and GraphQL."""
    with TestClient(browser(vault).app, base_url=BASE) as client:
        yield client


def owner_id(vault: Vault, kind: OwnerKind, ident: str) -> uuid.UUID:
    with vault.db.session() as session:
        owner = vault.owners.find(session, kind, ident)
        assert owner is not None
        return owner.id


def person(vault: Vault, key: str = "a") -> uuid.UUID:
    return owner_id(vault, OwnerKind.PERSON, identifier(key))


def transport(vault: Vault) -> uuid.UUID:
    return owner_id(vault, OwnerKind.ENTERPRISE, TRANSPORT.credit_code)


def signed_in(vault: Vault, key: str = "a") -> TestClient:
    client = browser(vault)
    assert sign_in(client, vault, identifier(key), CITIZEN_PASSWORD).status_code == 303
    return client


def act_for(client: TestClient, vault: Vault, enterprise: uuid.UUID) -> int:
    return post(client, vault, "/acting-for", {"owner": str(enterprise)}, form_page="/").status_code


def licence_of(vault: Vault, owner: uuid.UUID, type_code: str) -> uuid.UUID:
    with vault.db.session() as session:
        return session.scalars(
            select(Licence.id).where(Licence.owner_id == owner, Licence.type_code == type_code)
        ).one()


def event_ids(page: str) -> list[uuid.UUID]:
    return [uuid.UUID(i) for i in re.findall(r'id="event-([0-9a-f-]{36})"', page)]


def events_of(vault: Vault, owner: uuid.UUID) -> list[AuditEvent]:
    with vault.db.session() as session:
        return list(
            session.scalars(select(AuditEvent).where(AuditEvent.owner_id == owner).order_by(col(AuditEvent.seq).desc()))
        )


def presentation_in(page: str) -> str:
    found = re.search(r'<textarea id="presentation-text"[^>]*>([^<]+)</textarea>', page)
    assert found, "no presentation on the page"
    return html.unescape(found.group(1))


def present(client: TestClient, vault: Vault, licence: uuid.UUID, fields: list[str], how: str = "show") -> TestClient:
    page = client.get(f"/licences/{licence}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    return client.post(  # type: ignore[no-any-return]
        f"/licences/{licence}/present",
        data={"csrf_token": token.group(1), "field": fields, "as": how},
        headers={"Origin": vault.settings.public_url},
    )


def housing_read(vault: Vault, http: TestClient) -> None:
    """The housing bureau reads person a's licences under a consent grant: a fields.released event."""
    agency = AgencyClient(http, HOUSING, secret(HOUSING))
    tokens = consented_tokens(vault, agency, person(vault), REPEATED_ITEM)
    body = gql(http, tokens["access_token"], READ, {"types": ["resident-id-card"], "names": ["name"]}).json()
    assert body["data"]["licences"], body


def police_read(http: TestClient, key: str = "b") -> None:
    """A read under the police mandate, whose owner is told only after 90 days."""
    token = police_token(http, case="XS-2026-000077")
    variables = {"owner": identifier(key), "types": ["resident-id-card"], "names": ["name"]}
    assert gql(http, token, MANDATE_READ, variables).json()["data"]["licences"]


# every page, for a citizen and for a representative


def test_each_page_renders_for_a_citizen_with_the_navigation(vault: Vault) -> None:
    client = signed_in(vault)
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 200, path
        assert f'<a href="{path}" aria-current="page">' in response.text, path
        assert 'href="/representatives"' not in response.text
    assert client.get("/representatives").status_code == 403  # not acting for an enterprise
    detail = client.get(f"/licences/{licence_of(vault, person(vault), 'resident-id-card')}")
    assert detail.status_code == 200 and '<a href="/licences" aria-current="true">' in detail.text


def test_each_page_renders_for_a_representative_acting_for_the_enterprise(vault: Vault) -> None:
    client = signed_in(vault, "a")
    assert act_for(client, vault, transport(vault)) == 303
    for path in (*PAGES, "/representatives"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert 'href="/representatives"' in response.text
        if path not in ("/inbox", "/grants"):
            assert TRANSPORT.name in response.text, path  # whose data space this is
    licences = client.get("/licences").text
    assert "营业执照" in licences and "道路运输经营许可证" in licences and "居民身份证" not in licences
    representatives = client.get("/representatives").text
    assert PERSON_A.name in representatives and PERSONS[1].name not in representatives
    activity = client.get("/activity").text
    ids = set(event_ids(activity))
    assert ids and ids <= {e.id for e in events_of(vault, transport(vault))}
    permit = licence_of(vault, transport(vault), "road-transport-permit")
    assert client.get(f"/licences/{permit}").status_code == 200
    # the person's own licences are not part of the enterprise's space
    assert client.get(f"/licences/{licence_of(vault, person(vault), 'resident-id-card')}").status_code == 403


def test_an_outsider_gets_403_for_the_enterprises_pages(vault: Vault) -> None:
    outsider = signed_in(vault, "b")  # agent of the tech company, nothing to do with the transport company
    assert act_for(outsider, vault, transport(vault)) == 403
    permit = licence_of(vault, transport(vault), "road-transport-permit")
    assert outsider.get(f"/licences/{permit}").status_code == 403
    for path in (f"/licences/{permit}/reveal", f"/licences/{permit}/present"):
        response = post(outsider, vault, path, {"field": "permit_number", "as": "download"}, form_page="/licences")
        assert response.status_code == 403, path
        assert "DEMO00001" not in response.text
    event = events_of(vault, transport(vault))[0]
    assert outsider.get(f"/activity/{event.id}/proof").status_code == 403
    assert outsider.get(f"/activity/{event.id}/proof.json").status_code == 403
    assert str(event.id) not in outsider.get("/activity").text
    assert outsider.get("/representatives").status_code == 403


def test_representation_is_checked_again_on_every_page(vault: Vault) -> None:
    rep = citizen(vault, enterprises=("测试运输有限公司",))
    [enterprise] = rep.enterprises
    client = browser(vault)
    assert sign_in(client, vault, rep.login).status_code == 303
    assert act_for(client, vault, enterprise.id) == 303
    assert client.get("/representatives").status_code == 200
    with vault.db.session() as session:
        link = session.scalars(select(Representative).where(Representative.owner_id == enterprise.id)).one()
        link.valid_until = today() - timedelta(days=1)
    # the session falls back to the person's own space; the enterprise's pages are closed
    assert client.get("/representatives").status_code == 403
    assert "测试运输有限公司" not in client.get("/activity").text


def test_staff_have_no_data_space(vault: Vault) -> None:
    client = browser(vault)
    assert sign_in(client, vault, staff(vault)).status_code == 303
    for path in ("/licences", "/activity"):
        assert client.get(path).status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(vault: Vault) -> None:
    for path in (*PAGES, "/representatives", f"/activity/{uuid.uuid4()}/proof"):
        response = browser(vault).get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next="), path


# licences: masked, revealed on request, presented


def test_values_are_masked_until_revealed_and_the_revealed_page_is_not_stored(vault: Vault) -> None:
    client = signed_in(vault)
    card = licence_of(vault, person(vault), "resident-id-card")
    masked = client.get(f"/licences/{card}")
    assert masked.status_code == 200 and masked.headers["cache-control"] == "no-store"
    assert PERSON_A.id_number[:3] + "*" * 11 + PERSON_A.id_number[-4:] in masked.text
    assert "1985-**-**" in masked.text and "演*" in masked.text
    for canary in CANARIES:
        assert canary not in masked.text, canary
    revealed = post(client, vault, f"/licences/{card}/reveal", {}, form_page=f"/licences/{card}")
    assert revealed.status_code == 200 and revealed.headers["cache-control"] == "no-store"
    for canary in CANARIES:
        assert canary in revealed.text, canary
    assert all(canary not in client.get(f"/licences/{card}").text for canary in CANARIES)


def test_the_list_pages_never_carry_an_unmasked_value(vault: Vault, http: TestClient) -> None:
    housing_read(vault, http)
    client = signed_in(vault)
    present(client, vault, licence_of(vault, person(vault), "resident-id-card"), ["name", "address"])
    for path in (*PAGES, "/"):
        text = client.get(path).text
        for canary in CANARIES[:3]:
            assert canary not in text, (path, canary)
    assert PERSON_A.name not in client.get("/licences").text


def test_a_presentation_verifies_and_discloses_exactly_the_chosen_fields(vault: Vault) -> None:
    client = signed_in(vault)
    card = licence_of(vault, person(vault), "resident-id-card")
    shown = present(client, vault, card, ["name", "birth_date"])
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    assert '<svg viewBox="' in shown.text and 'class="qr-code"' in shown.text
    text = presentation_in(shown.text)
    link = re.search(r'href="data:application/dc\+sd-jwt;base64,([^"]+)" download="resident-id-card-', shown.text)
    assert link and base64.b64decode(link.group(1)).decode() == text
    downloaded = present(client, vault, card, ["id_number"], how="download")
    assert downloaded.status_code == 200 and downloaded.headers["cache-control"] == "no-store"
    assert downloaded.headers["content-disposition"].startswith("attachment;")
    assert downloaded.headers["content-type"].startswith("application/dc+sd-jwt")
    with vault.db.session() as session:
        verdict, first = vault.licences.check_showing(session, text)  # the page shows a short-lived showing
        second = vault.licences.verify(session, downloaded.text)  # the file is a plain presentation
    assert verdict == "in_force" and first is not None
    with vault.db.session() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "licence.presented").order_by(col(AuditEvent.seq))
        ).all()
    assert first.ok and first.claims == {"name": PERSON_A.name, "birth_date": "1985-03-12"}
    assert second.ok and second.claims == {"id_number": PERSON_A.id_number}
    assert [json.loads(e.entry)["fields"] for e in events] == [["birth_date", "name"], ["id_number"]]
    assert {e.owner_id for e in events} == {person(vault)}
    assert {e.actor for e in events} == {f"owner:{person(vault)}"}


def test_a_presentation_needs_a_field_and_fields_of_this_licence_only(vault: Vault) -> None:
    client = signed_in(vault)
    card = licence_of(vault, person(vault), "resident-id-card")
    refused = present(client, vault, card, [])
    assert refused.status_code == 400 and 'role="alert"' in refused.text
    assert present(client, vault, card, ["plate_number"]).status_code == 400  # another type's field
    with vault.db.session() as session:
        assert session.scalars(select(AuditEvent).where(AuditEvent.action == "licence.presented")).first() is None


def test_a_presentation_too_long_for_a_qr_code_says_so_and_still_downloads(vault: Vault) -> None:
    rep = citizen(vault, enterprises=("测试货运有限公司",))
    [enterprise] = rep.enterprises
    with vault.db.session() as session:
        credit_code = vault.owners.details(session, enterprise).identifier
        licence = vault.licences.issue(
            session,
            issuer_code="market-regulation",
            owner_id=enterprise.id,
            type_code="business-licence",
            values={
                "credit_code": credit_code,
                "name": "测试货运有限公司",
                "entity_type": "有限责任公司",
                "legal_representative": "测试居民",
                "registered_capital": "壹佰万元整",
                "established_date": "2015-04-01",
                "business_term": "长期",
                "address": "测试市测试区示例大道1号",
                "business_scope": "道路普通货物运输；" * 200,
                "registration_authority": "测试市市场监督管理局",
                "registration_date": "2015-04-01",
            },
        )
    client = browser(vault)
    assert sign_in(client, vault, rep.login).status_code == 303
    assert act_for(client, vault, enterprise.id) == 303
    response = present(client, vault, licence.id, ["name", "business_scope"])
    assert response.status_code == 200
    assert "<svg" not in response.text and '<p class="alert">' in response.text
    text = presentation_in(response.text)
    assert len(text.encode()) > 2953  # the most bytes a QR code holds (version 40, level L)
    with vault.db.session() as session:
        verdict, verified = vault.licences.check_showing(session, text)
    assert verdict == "in_force" and verified is not None and set(verified.claims) == {"name", "business_scope"}


def test_a_licence_not_in_force_cannot_be_presented(vault: Vault) -> None:
    client = signed_in(vault)
    card = licence_of(vault, person(vault), "driving-licence")
    with vault.db.session() as session:
        vault.licences.change(session, card, Step.SUSPEND, issuer_code="traffic-police", reason="test")
    page = client.get(f"/licences/{card}")
    assert page.status_code == 200 and f'action="/licences/{card}/present"' not in page.text
    assert present(client, vault, card, ["name"]).status_code == 403


# who used my data


def test_activity_shows_this_owners_events_only(vault: Vault, http: TestClient) -> None:
    housing_read(vault, http)
    police_read(http, "b")
    page = signed_in(vault, "a").get("/activity")
    assert page.status_code == 200
    mine = events_of(vault, person(vault))
    assert event_ids(page.text) == [e.id for e in mine]  # all of them, newest first
    others = {e.id for e in events_of(vault, person(vault, "b"))} | {e.id for e in events_of(vault, transport(vault))}
    assert others and not others & set(event_ids(page.text))
    assert "演示市住房和城乡建设局" in page.text  # who read, by name
    read = next(e for e in mine if e.action == "fields.released")
    grant = json.loads(read.entry)["grant"]
    assert f'href="/grants#grant-{grant}"' in page.text


def test_activity_filters_by_agency_and_period(vault: Vault, http: TestClient) -> None:
    housing_read(vault, http)
    client = signed_in(vault)
    options = re.findall(r'<option value="([^"]*)"', client.get("/activity").text)
    assert options == ["", HOUSING]
    by_agency = client.get("/activity", params={"agency": HOUSING}).text
    expected = [e.id for e in events_of(vault, person(vault)) if e.actor == f"agency:{HOUSING}"]
    assert event_ids(by_agency) == expected and len(expected) >= 2  # consent asked, token, read
    on = clock.utcnow().astimezone(ZoneInfo(vault.settings.timezone)).date()  # the page's days are the vault's zone's
    everything = event_ids(client.get("/activity").text)
    assert event_ids(client.get("/activity", params={"from": on.isoformat(), "to": on.isoformat()}).text) == everything
    assert event_ids(client.get("/activity", params={"from": (on + timedelta(days=1)).isoformat()}).text) == []
    assert event_ids(client.get("/activity", params={"to": (on - timedelta(days=1)).isoformat()}).text) == []
    for malformed in ({"from": "yesterday"}, {"to": "9999-12-31"}, {"from": "0001-01-01"}):
        response = client.get("/activity", params=malformed)
        assert response.status_code == 200 and 'role="alert"' in response.text, malformed
        assert event_ids(response.text) == everything


def test_activity_pages_by_fifty(vault: Vault) -> None:
    card = licence_of(vault, person(vault), "resident-id-card")
    with vault.db.session() as session:
        for _ in range(55):
            vault.licences.present(session, card, ["sex"], actor="test")
    client = signed_in(vault)
    first = client.get("/activity").text
    total = len(events_of(vault, person(vault)))
    assert len(event_ids(first)) == 50 and 'rel="next"' in first and 'rel="prev"' not in first
    second = client.get("/activity", params={"page": "2"}).text
    assert len(event_ids(second)) == total - 50 and 'rel="prev"' in second
    assert set(event_ids(first)).isdisjoint(event_ids(second))


def test_a_deferred_mandate_read_appears_when_the_deferral_ends(
    vault: Vault, http: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    police_read(http, "b")
    [read] = [e for e in events_of(vault, person(vault, "b")) if e.action == "fields.released"]
    before = signed_in(vault, "b")
    page = before.get("/activity").text
    assert read.id not in event_ids(page) and "police-investigation" not in page and "刑事侦查" not in page
    assert before.get(f"/activity/{read.id}/proof").status_code == 403
    clock = Clock(monkeypatch)
    clock.advance(days=89)
    assert read.id not in event_ids(signed_in(vault, "b").get("/activity").text)
    clock.advance(days=2)
    after = signed_in(vault, "b")  # the earlier sessions timed out
    page = after.get("/activity").text
    assert read.id in event_ids(page)
    assert "公安机关侦查刑事案件调取证据" in page and "刑事诉讼法" in page
    assert "XS-2026-000077" in page  # the case text, read back under the owner's key
    assert re.findall(r'<option value="([^"]*)"', page) == ["", "police-investigation"]
    assert after.get(f"/activity/{read.id}/proof").status_code == 200


def test_each_event_links_to_an_inclusion_proof_that_verifies(vault: Vault, http: TestClient) -> None:
    housing_read(vault, http)
    client = signed_in(vault)
    read = next(e for e in events_of(vault, person(vault)) if e.action == "fields.released")
    assert f'href="/activity/{read.id}/proof"' in client.get("/activity").text
    publishing.sequence_step(vault.audit, vault.db)  # what the leader does within a second
    page = client.get(f"/activity/{read.id}/proof")
    assert page.status_code == 200 and "RFC 9162" in page.text
    download = client.get(f"/activity/{read.id}/proof.json")
    assert download.status_code == 200 and download.headers["content-disposition"].startswith("attachment;")
    proof = download.json()
    assert proof["event_id"] == str(read.id) and proof["entry"] == read.entry.decode()
    leaf = merkle.leaf_hash(proof["entry"].encode())
    assert base64.b64encode(leaf).decode() == proof["leaf_hash"]
    path = [base64.b64decode(p) for p in proof["path"]]
    root = base64.b64decode(proof["root"])
    assert merkle.verify_inclusion(leaf, proof["leaf_index"], proof["tree_size"], path, root)
    with vault.db.session() as session:
        keys = [
            note.Verifier(vault.audit.origin, note.ED25519, bytes(k))
            for k in vault.keys.trusted_public_keys(session, VAULT_SIGNING).values()
        ]
    signed = note.parse_note(proof["checkpoint"])
    assert note.verified_by(signed, keys)
    checkpoint = note.parse_checkpoint(signed.text)
    assert checkpoint.size == proof["tree_size"] and note.b64(checkpoint.root) == proof["root"]
    # the page shows the same proof
    assert html.escape(proof["root"]) in page.text and str(proof["tree_size"]) in page.text


def test_a_proof_of_another_owners_event_is_refused(vault: Vault) -> None:
    client = signed_in(vault, "a")
    other = events_of(vault, person(vault, "b"))[0]
    assert client.get(f"/activity/{other.id}/proof").status_code == 403
    assert client.get(f"/activity/{uuid.uuid4()}/proof").status_code == 403
    assert client.get("/activity/not-an-id/proof").status_code == 403


# languages


def test_the_pages_speak_chinese_by_default_and_english_when_chosen(vault: Vault) -> None:
    client = signed_in(vault)
    assert "居民身份证" in client.get("/licences").text
    assert post(client, vault, "/lang", {"lang": "en", "next": "/licences"}, form_page="/licences").status_code == 303
    english = client.get("/licences").text
    assert "Resident Identity Card" in english and "My licences" in english
    assert "Who used my data" in client.get("/activity").text
