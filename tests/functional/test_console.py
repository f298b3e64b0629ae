"""The compliance console over HTTP: staff only; grant review with its flags; revoking a grant and suspending an
agency with a reason, both in the access log; charts counted from the log; verifying and exporting the log."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import col, select
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE, AgencyClient, consented_tokens
from tests.unit.api.support import gql, operation
from tests.webclient import browser, post, sign_in
from vault import clock
from vault.audit import note
from vault.audit.events import Action, Event
from vault.audit.models import AuditEvent
from vault.consent.models import Grant
from vault.demo import CITIZEN_PASSWORD, ENTERPRISES, PERSONS, STAFF_LOGIN, STAFF_PASSWORD
from vault.owners.models import Account, AccountRole, OwnerKind
from vault.web.console_audit import CSV_COLUMNS
from vault.wiring import Vault

TRAFFIC = "traffic-police-vehicle-office"
HOUSING = "housing-bureau"
TRANSPORT = "transport-bureau"
ONCE_ITEM = "vehicle-registration"  # at most 30 days
REPEATED_ITEM = "housing-provident-fund-withdrawal"  # at most 366 days


@pytest.fixture
def vault(demo_vault: Vault) -> Vault:
    return demo_vault


@pytest.fixture
def http(vault: Vault) -> Iterator[TestClient]:
    with TestClient(browser(vault).app, base_url=BASE) as client:
        yield client


def _agency(http: TestClient, client_id: str) -> AgencyClient:
    return AgencyClient(http, client_id, f"demo-secret-{client_id}")


def _person(vault: Vault) -> uuid.UUID:
    with vault.db.session() as session:
        owner = vault.owners.find(session, OwnerKind.PERSON, PERSONS[0].id_number)
        assert owner is not None
        return owner.id


def _staff(vault: Vault, lang: str = "en") -> TestClient:
    client = browser(vault)
    assert sign_in(client, vault, STAFF_LOGIN, STAFF_PASSWORD).headers["location"] == "/console"
    if lang == "en":
        assert post(client, vault, "/lang", {"lang": "en", "next": "/console"}, form_page="/console").status_code == 303
    return client


def _citizen(vault: Vault) -> TestClient:
    client = browser(vault)
    assert sign_in(client, vault, PERSONS[0].id_number, CITIZEN_PASSWORD).status_code == 303
    return client


def _grant(vault: Vault, http: TestClient, client_id: str, item: str) -> tuple[uuid.UUID, dict[str, Any]]:
    agency = _agency(http, client_id)
    tokens = consented_tokens(vault, agency, _person(vault), item)
    return uuid.UUID(agency.introspect(tokens["access_token"])["grant_id"]), tokens


def _change(vault: Vault, grant_id: uuid.UUID, **values: Any) -> None:
    with vault.db.session() as session:
        grant = session.get(Grant, grant_id)
        assert grant is not None
        for name, value in values.items():
            setattr(grant, name, value)


def _log_at(vault: Vault, moment: datetime, *events: Event) -> None:
    """Append events as if it were `moment`: the log stamps each event with the time it is appended."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("vault.audit.services.utcnow", lambda: moment)
        with vault.db.session() as session:
            for event in events:
                vault.audit.append(session, event)


def _reads(client_id: str, count: int, action: Action = Action.FIELDS_RELEASED) -> list[Event]:
    return [Event(action, f"agency:{client_id}", fields=("resident-id-card/name",)) for _ in range(count)]


def _last_event(vault: Vault, action: str) -> dict[str, Any]:
    with vault.db.session() as session:
        entry = session.scalars(
            select(AuditEvent.entry).where(AuditEvent.action == action).order_by(col(AuditEvent.seq).desc())
        ).first()
    assert entry is not None, f"no {action} event"
    body: dict[str, Any] = json.loads(entry)
    return body


def _staff_actor(vault: Vault) -> str:
    with vault.db.session() as session:
        account = session.scalars(select(Account).where(Account.role == AccountRole.STAFF.value)).one()
        return f"staff:{account.id}"


def _row(html: str, row_id: str) -> str:
    found = re.search(rf'<tr id="{re.escape(row_id)}">(.*?)</tr>', html, re.S)
    assert found, f"no row {row_id}"
    return found.group(1)


def _flags(html: str, row_id: str) -> set[str]:
    return set(re.findall(r'class="flag flag-([a-z]+)"', _row(html, row_id)))


def _now() -> datetime:
    return clock.utcnow()


# who may see the console

GETS = [
    "/console",
    "/console/charts",
    "/console/charts/data",
    "/console/audit",
    "/console/audit/export.csv?from=2026-01-01&to=2026-01-31",
]
POSTS = [
    f"/console/grants/{uuid.uuid4()}/revoke",
    f"/console/agencies/{TRAFFIC}/suspend",
    f"/console/agencies/{TRAFFIC}/reinstate",
    "/console/audit/verify",
]


def test_a_citizen_gets_403_on_every_console_url_and_nobody_is_sent_to_sign_in(vault: Vault) -> None:
    citizen = _citizen(vault)
    for path in GETS:
        assert citizen.get(path).status_code == 403, path
    for path in POSTS:
        response = post(citizen, vault, path, {"reason": "trying"}, form_page="/")
        assert response.status_code == 403, path
    with vault.db.session() as session:
        agency = vault.agencies.get(session, TRAFFIC)
        assert agency is not None and agency.suspended_at is None
    nobody = browser(vault)
    for path in GETS:
        response = nobody.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=%2Fconsole")


def test_staff_land_on_the_console_which_speaks_chinese_by_default_and_english_on_request(vault: Vault) -> None:
    chinese = _staff(vault, lang="zh")
    page = chinese.get("/console")
    assert page.status_code == 200 and 'lang="zh-CN"' in page.text and "授权审查" in page.text
    for path in ("/console/charts", "/console/audit"):
        assert 'lang="zh-CN"' in chinese.get(path).text
    english = _staff(vault)
    page = english.get("/console")
    assert 'lang="en"' in page.text and "Grant review" in page.text and "What the flags mean" in page.text


def test_console_pages_load_nothing_from_elsewhere_and_cannot_be_framed(vault: Vault) -> None:
    staff = _staff(vault)
    for path in ("/console", "/console/charts", "/console/audit"):
        page = staff.get(path)
        assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        for attribute, url in re.findall(r'\b(src|href|action)="([^"]*)"', page.text):
            assert url.startswith(("/", "#")) and not url.startswith("//"), (path, attribute, url)
    assert staff.get("/console/charts/data").headers["cache-control"] == "no-store"


def test_posts_need_the_form_token_and_our_origin(vault: Vault) -> None:
    staff = _staff(vault)
    path = f"/console/agencies/{TRAFFIC}/suspend"
    assert staff.post(path, data={"reason": "x"}, headers={"Origin": vault.settings.public_url}).status_code == 403
    foreign = post(staff, vault, path, {"reason": "x"}, form_page="/console", Origin="https://evil.example")
    assert foreign.status_code == 403
    with vault.db.session() as session:
        agency = vault.agencies.get(session, TRAFFIC)
        assert agency is not None and agency.suspended_at is None


# grant review


def test_staff_see_grants_and_filter_them(vault: Vault, http: TestClient) -> None:
    traffic, _ = _grant(vault, http, TRAFFIC, ONCE_ITEM)
    housing, _ = _grant(vault, http, HOUSING, REPEATED_ITEM)
    staff = _staff(vault)
    page = staff.get("/console").text
    assert f'id="grant-{traffic}"' in page and f'id="grant-{housing}"' in page
    assert "Demo City Traffic Police Vehicle Office" in _row(page, f"grant-{traffic}")
    assert "Resident ID number (Resident Identity Card)" in _row(page, f"grant-{traffic}")  # names, never values
    assert "resident-id-card/id_number" not in page  # in the page's language, not the catalogue's codes
    assert PERSONS[0].name not in page and PERSONS[0].id_number not in page

    by_agency = staff.get("/console", params={"agency": HOUSING}).text
    assert f"grant-{housing}" in by_agency and f"grant-{traffic}" not in by_agency
    by_item = staff.get("/console", params={"item": ONCE_ITEM}).text
    assert f"grant-{traffic}" in by_item and f"grant-{housing}" not in by_item

    _change(vault, traffic, valid_until=_now() - timedelta(minutes=1))  # past its validity, not yet expired
    expired = staff.get("/console", params={"state": "expired"}).text
    active = staff.get("/console", params={"state": "active"}).text
    assert f"grant-{traffic}" in expired and f"grant-{housing}" not in expired
    assert f"grant-{housing}" in active and f"grant-{traffic}" not in active

    old = _now() - timedelta(days=40)
    _change(vault, housing, created_at=old, valid_from=old, last_used_at=_now())
    older = staff.get("/console", params={"min_age": "30"}).text
    newer = staff.get("/console", params={"max_age": "30"}).text
    assert f"grant-{housing}" in older and f"grant-{traffic}" not in older
    assert f"grant-{traffic}" in newer and f"grant-{housing}" not in newer
    ignored = staff.get("/console", params={"agency": "<script>", "min_age": "-3", "state": "lost"})
    assert ignored.status_code == 200 and f"grant-{traffic}" in ignored.text and "<script>" not in ignored.text


def test_each_flag_appears_for_the_grant_made_to_trigger_it_and_not_otherwise(vault: Vault, http: TestClient) -> None:
    plain, _ = _grant(vault, http, TRAFFIC, ONCE_ITEM)
    wider, _ = _grant(vault, http, TRAFFIC, ONCE_ITEM)
    longer, _ = _grant(vault, http, TRAFFIC, ONCE_ITEM)
    dormant, _ = _grant(vault, http, HOUSING, REPEATED_ITEM)
    used, _ = _grant(vault, http, HOUSING, REPEATED_ITEM)
    now = _now()
    with vault.db.session() as session:
        grant = session.get(Grant, wider)
        assert grant is not None
        # as if the catalogue had dropped "sex" from the item after the owner consented
        grant.fields = {"resident-id-card": [*grant.fields["resident-id-card"], "ethnicity"]}
        grant = session.get(Grant, longer)
        assert grant is not None
        grant.valid_until = grant.valid_from + timedelta(days=31)
    long_ago = now - timedelta(days=100)
    _change(vault, dormant, created_at=long_ago, valid_from=long_ago, valid_until=now + timedelta(days=200))
    _change(
        vault,
        used,
        created_at=long_ago,
        valid_from=long_ago,
        valid_until=now + timedelta(days=200),
        last_used_at=now - timedelta(days=10),
    )

    page = _staff(vault).get("/console").text
    assert _flags(page, f"grant-{plain}") == set()
    assert _flags(page, f"grant-{wider}") == {"wider"}
    assert "Ethnicity (Resident Identity Card)" in _row(page, f"grant-{wider}")
    assert _flags(page, f"grant-{longer}") == {"longer"}
    assert "valid 31 days, the item allows 30" in _row(page, f"grant-{longer}")
    assert _flags(page, f"grant-{dormant}") == {"dormant"}
    assert "never used since it was given on" in _row(page, f"grant-{dormant}")
    assert _flags(page, f"grant-{used}") == set()
    for words in ("wider than item", "longer than allowed", "dormant", "volume spike", "previous 14 days"):
        assert words in page

    # unused for 90 days counts from the last use; a dormant grant that ended is no longer flagged
    _change(vault, used, last_used_at=now - timedelta(days=91))
    _change(vault, dormant, state="revoked")
    page = _staff(vault).get("/console", params={"flag": "dormant"}).text
    assert f"grant-{used}" in page and f"grant-{dormant}" not in page and f"grant-{plain}" not in page
    only_wider = _staff(vault).get("/console", params={"flag": "wider"}).text
    assert f"grant-{wider}" in only_wider and f"grant-{longer}" not in only_wider


def test_a_volume_spike_is_flagged_against_the_agencys_own_recent_rate(vault: Vault, http: TestClient) -> None:
    housing, _ = _grant(vault, http, HOUSING, REPEATED_ITEM)
    traffic, _ = _grant(vault, http, TRAFFIC, ONCE_ITEM)
    now = _now()
    for days_ago in range(1, 15):
        _log_at(vault, now - timedelta(days=days_ago), *_reads(HOUSING, 2), *_reads(TRAFFIC, 10))
    _log_at(vault, now - timedelta(days=20), *_reads(HOUSING, 500))  # older than the 14 days: not in the rate
    # housing: 25 today against 2 a day; traffic: 25 against 10 a day; transport: 15 against nothing
    _log_at(vault, now, *_reads(HOUSING, 20), *_reads(HOUSING, 5, Action.FIELDS_DENIED), *_reads(TRAFFIC, 25))
    _log_at(vault, now, *_reads(TRANSPORT, 15))

    page = _staff(vault).get("/console").text
    assert _flags(page, f"agency-{HOUSING}") == {"spike"}
    assert _flags(page, f"agency-{TRAFFIC}") == set() and _flags(page, f"agency-{TRANSPORT}") == set()
    assert _flags(page, f"grant-{housing}") == {"spike"} and _flags(page, f"grant-{traffic}") == set()
    row = _row(page, f"agency-{HOUSING}")
    assert '<td data-label="Reads today">25</td>' in row and ">2.0</td>" in row
    assert "25 reads today, 2.0 a day before" in _row(page, f"grant-{housing}")


# staff actions


def test_revoking_a_grant_with_a_reason_kills_its_tokens_and_is_logged(vault: Vault, http: TestClient) -> None:
    grant_id, tokens = _grant(vault, http, TRAFFIC, ONCE_ITEM)
    agency = _agency(http, TRAFFIC)
    assert agency.introspect(tokens["access_token"])["active"] is True
    staff = _staff(vault)
    path = f"/console/grants/{grant_id}/revoke"

    no_reason = post(staff, vault, path, {"reason": "   "}, form_page="/console")
    assert no_reason.status_code == 400 and "Give a reason" in no_reason.text
    assert agency.introspect(tokens["access_token"])["active"] is True

    reason = "not needed for the service any more"
    done = post(staff, vault, path, {"reason": reason, "back": f"/console?agency={TRAFFIC}"}, form_page="/console")
    assert done.status_code == 303 and done.headers["location"] == f"/console?agency={TRAFFIC}&done=revoked"
    assert agency.introspect(tokens["access_token"]) == {"active": False}
    assert agency.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    event = _last_event(vault, "grant.revoked")
    assert event["grant"] == str(grant_id) and event["reason"] == reason and event["actor"] == _staff_actor(vault)
    with vault.db.session() as session:
        assert vault.audit.verify(session).ok

    page = staff.get(done.headers["location"]).text
    assert "The grant was revoked." in page and "revoked" in _row(page, f"grant-{grant_id}")
    assert f'action="/console/grants/{grant_id}/revoke"' not in page
    again = post(staff, vault, path, {"reason": reason}, form_page="/console")
    assert again.status_code == 403


def test_suspending_an_agency_is_logged_and_its_next_token_request_fails(vault: Vault, http: TestClient) -> None:
    _, tokens = _grant(vault, http, TRAFFIC, ONCE_ITEM)
    agency = _agency(http, TRAFFIC)
    staff = _staff(vault)
    path = f"/console/agencies/{TRAFFIC}/suspend"
    assert post(staff, vault, path, {"reason": ""}, form_page="/console").status_code == 400

    reason = "reads far above its usual rate; under investigation"
    done = post(staff, vault, path, {"reason": reason, "back": "//evil.example/console"}, form_page="/console")
    assert done.status_code == 303 and done.headers["location"] == "/console?done=suspended"
    event = _last_event(vault, "agency.suspended")
    assert event["reason"] == reason and event["detail"] == {"client": TRAFFIC}
    assert event["actor"] == _staff_actor(vault)
    refused = agency.refresh(tokens["refresh_token"])
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert agency.push(ONCE_ITEM).status_code == 401

    page = staff.get("/console").text
    row = _row(page, f"agency-{TRAFFIC}")
    assert "suspended since" in row and reason in row and f"/console/agencies/{TRAFFIC}/reinstate" in row
    twice = post(staff, vault, path, {"reason": "sent again"}, form_page="/console")
    assert twice.status_code == 303 and _last_event(vault, "agency.suspended")["reason"] == reason
    reinstated = post(staff, vault, f"/console/agencies/{TRAFFIC}/reinstate", {}, form_page="/console")
    assert reinstated.status_code == 303
    assert _last_event(vault, "agency.reinstated")["actor"] == _staff_actor(vault)
    assert agency.push(ONCE_ITEM).status_code == 201
    with vault.db.session() as session:
        reinstatements = session.scalars(select(AuditEvent).where(AuditEvent.action == "agency.reinstated")).all()
    assert post(staff, vault, f"/console/agencies/{TRAFFIC}/reinstate", {}, form_page="/console").status_code == 303
    with vault.db.session() as session:
        again = session.scalars(select(AuditEvent).where(AuditEvent.action == "agency.reinstated")).all()
    assert len(again) == len(reinstatements) == 1  # reinstating an active agency changes and logs nothing
    unknown = post(staff, vault, "/console/agencies/no-such-agency/suspend", {"reason": "x"}, form_page="/console")
    assert unknown.status_code == 403


# charts


def test_the_charts_count_a_known_set_of_events(vault: Vault) -> None:
    now = _now()
    _log_at(vault, now, *_reads(TRAFFIC, 3), *_reads(TRAFFIC, 2, Action.FIELDS_DENIED))
    _log_at(vault, now - timedelta(days=2), *_reads(TRAFFIC, 1, Action.FIELDS_DENIED))
    _log_at(vault, now - timedelta(days=5), *_reads(HOUSING, 4))
    _log_at(vault, now - timedelta(days=45), *_reads(HOUSING, 7))  # before the 30 days
    decided = [
        Event(Action.CONSENT_APPROVED, "owner:x", service_item=ONCE_ITEM),
        Event(Action.CONSENT_APPROVED, "owner:x", service_item=ONCE_ITEM),
        Event(Action.CONSENT_DENIED, "owner:x", service_item=ONCE_ITEM),
        Event(Action.CONSENT_DENIED, "owner:x", service_item=REPEATED_ITEM),
        Event(Action.CONSENT_EXPIRED, "system", service_item=REPEATED_ITEM),  # undecided: not counted
    ]
    _log_at(vault, now - timedelta(days=1), *decided)

    staff = _staff(vault)
    response = staff.get("/console/charts/data")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    data = response.json()
    today = now.astimezone().date()
    assert len(data["days"]) == 30 and data["days"][-1] == today.isoformat()
    assert data["days"][0] == (today - timedelta(days=29)).isoformat()
    series = {s["agency"]: s["counts"] for s in data["accesses"]}
    assert set(series) == {TRAFFIC, HOUSING}
    assert series[TRAFFIC][-1] == 5 and series[TRAFFIC][-3] == 1 and sum(series[TRAFFIC]) == 6
    assert series[HOUSING][-6] == 4 and sum(series[HOUSING]) == 4
    saved = data["submissions_saved"]
    assert saved["total"] == 7 and saved["counts"][-1] == 3 and saved["counts"][-6] == 4
    consent = {c["item"]: (c["approved"], c["denied"]) for c in data["consent"]}
    assert consent == {ONCE_ITEM: (2, 1), REPEATED_ITEM: (0, 1)}
    assert {a["label"] for a in data["accesses"]} == {
        "Demo City Traffic Police Vehicle Office",
        "Demo City Housing Bureau",
    }

    page = staff.get("/console/charts")
    assert page.status_code == 200
    nonce = re.search(r"'nonce-([^']+)'", page.headers["content-security-policy"])
    assert nonce is not None
    for script in ("/static/vendor/chart.umd.min.js", "/static/console-charts.js"):
        assert f'<script nonce="{nonce.group(1)}" src="{script}"></script>' in page.text
        served = staff.get(script)
        assert served.status_code == 200 and "javascript" in served.headers["content-type"]
    embedded = re.search(r'<script type="application/json" id="console-chart-data">(.*?)</script>', page.text, re.S)
    assert embedded is not None and json.loads(embedded.group(1))["submissions_saved"]["total"] == 7
    assert "7 submissions saved in these days." in page.text
    table_row = re.search(rf'<th scope="row">{today.isoformat()}</th>((?:<td>\d+</td>)+)</tr>', page.text)
    assert table_row is not None and table_row.group(1) == "<td>0</td><td>5</td>"  # the table: housing, traffic
    assert "the applicant did not hand in a paper copy" in page.text  # what "saved" means, in words


def test_the_chart_library_is_vendored_with_its_licence() -> None:
    from vault.web.i18n import WEB_DIR

    vendor = WEB_DIR / "static" / "vendor"
    assert (vendor / "chart.umd.min.js").read_text(encoding="utf-8").startswith("/*!\n * Chart.js v4.")
    assert "MIT License" in (vendor / "chart.js-LICENSE.md").read_text(encoding="utf-8")


# audit


def _export(client: TestClient, first: str, last: str) -> Any:
    return client.get("/console/audit/export.csv", params={"from": first, "to": last})


def test_the_csv_export_holds_the_period_only_and_no_personal_values(vault: Vault, http: TestClient) -> None:
    _, tokens = _grant(vault, http, HOUSING, REPEATED_ITEM)
    read = gql(
        http,
        tokens["access_token"],
        operation("agency-read-licences"),
        {"types": ["household-register", "resident-id-card"], "names": ["name", "id_number", "household_number"]},
    )
    assert read.status_code == 200 and PERSONS[0].name in json.dumps(read.json(), ensure_ascii=False)  # released
    now = _now()
    today = now.astimezone().date()
    _log_at(vault, now - timedelta(days=10), *_reads(TRAFFIC, 2))
    _log_at(vault, now - timedelta(days=5), *_reads(HOUSING, 3))
    staff = _staff(vault)

    response = _export(staff, (today - timedelta(days=6)).isoformat(), (today - timedelta(days=4)).isoformat())
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 4 and all(r[2] == "fields.released" and r[3] == f"agency:{HOUSING}" for r in rows[1:])

    everything = _export(staff, (today - timedelta(days=30)).isoformat(), today.isoformat())
    text_ = everything.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text_)))
    with vault.db.session() as session:
        total = vault.audit.size(session) + vault.audit.pending(session)  # the export lists pending ones too
    assert len(rows) - 1 == total - 1  # every event of the last 30 days, up to the record of this export itself
    released = [r for r in rows[1:] if r[2] == "fields.released" and r[CSV_COLUMNS.index("grant")]]
    assert released and "resident-id-card/name" in released[-1][6].split(" ")
    assert released[-1][4] == str(_person(vault))  # the pseudonymous owner id
    canaries = [p.name for p in PERSONS] + [p.id_number for p in PERSONS]
    canaries += [e.name for e in ENTERPRISES] + [e.credit_code for e in ENTERPRISES]
    for canary in canaries:
        assert canary not in text_, canary

    for first, last in (("2026-02-01", "2026-01-01"), ("yesterday", "2026-01-01"), ("2024-01-01", "2025-12-31")):
        refused = _export(staff, first, last)
        assert refused.status_code == 400 and "text/html" in refused.headers["content-type"]


def test_a_reason_that_looks_like_a_formula_is_exported_inert(vault: Vault) -> None:
    _log_at(vault, _now(), Event(Action.AGENCY_SUSPENDED, "staff:x", reason='=HYPERLINK("x")'))
    today = _now().astimezone().date().isoformat()
    rows = list(csv.reader(io.StringIO(_export(_staff(vault), today, today).content.decode("utf-8-sig"))))
    assert rows[-1][CSV_COLUMNS.index("reason")] == '\'=HYPERLINK("x")'


def test_the_audit_page_shows_the_latest_checkpoint_and_verifies_the_log(vault: Vault) -> None:
    staff = _staff(vault)
    page = staff.get("/console/audit").text
    with vault.db.session() as session:
        latest = vault.audit.latest_checkpoint(session)
        assert latest is not None
        size, signed = latest.tree_size, latest.signed
        events = vault.audit.size(session)
    key_id = note.parse_note(signed).signatures[0].key_id.hex()
    assert signed in page and f"<code>{key_id}</code>" in page and f"<dd>{size}</dd>" in page

    verified = post(staff, vault, "/console/audit/verify", {}, form_page="/console/audit")
    assert verified.status_code == 200 and "The log verifies." in verified.text
    assert f"Events checked: {events}." in verified.text and "Signed checkpoints verified: 1." in verified.text

    engine = vault.db.engine
    with engine.begin() as conn:  # someone with database rights drops the guard, then edits an event
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
        conn.execute(text("UPDATE audit_events SET entry = :e WHERE leaf_index = 2"), {"e": b'{"forged":true}'})
    broken = post(staff, vault, "/console/audit/verify", {}, form_page="/console/audit")
    assert broken.status_code == 200
    assert "The log does not verify: the first fault is at event 2." in broken.text
    assert "<code>entry does not match its leaf hash</code>" in broken.text
    assert "Signed checkpoints verified before the fault: 0." in broken.text


def test_a_grant_asking_a_question_its_item_does_not_ask_is_flagged_wider(vault: Vault, http: TestClient) -> None:
    questioned, _ = _grant(vault, http, TRAFFIC, ONCE_ITEM)
    _change(vault, questioned, questions={"holder-age-at-least": {}})  # as if the item had stopped asking it

    page = _staff(vault).get("/console").text

    assert _flags(page, f"grant-{questioned}") == {"wider"}
    assert "Is the holder at least [age] years old?" in _row(page, f"grant-{questioned}")
