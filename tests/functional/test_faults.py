"""kill -9 every worker under mixed traffic, five times per database: the short version of `make faults`.

bench/faults.py drives consent approvals, CIBA, agency reads, issuer mutations, revocations and erasures over HTTP,
records what the server acknowledged, kills every worker at a random moment, and after each kill checks that every
acknowledged write is there and decrypts, that nothing is half-applied, that use limits hold and the log verifies.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is run from the checkout, not installed
from bench import faults
from bench.invariants import Ledger, check
from tests.oauth_helpers import BASE, AgencyClient, consent_via_service, query_of
from tests.unit.api.support import TRAFFIC, demo_person
from tests.webclient import browser
from vault.audit.events import Action, Event
from vault.consent.models import Grant
from vault.wiring import Vault

POSTGRES_URL = os.environ.get("VAULT_TEST_POSTGRES_URL")
ROOT = Path(__file__).resolve().parents[2]


def _survives(result: faults.Result) -> None:
    assert result.violations == []
    assert result.kills == 5
    assert result.server_errors == 0
    acknowledged = result.acknowledged
    assert acknowledged["consent requests"] > 0 and acknowledged["licences"] > 0  # there was traffic to lose


@pytest.mark.slow
def test_sqlite_one_worker_survives_five_kills() -> None:
    _survives(faults.run("sqlite", kills=5, workers=1, seed=5, threads=4, citizens=4, pause=(0.0, 1.0)))


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="VAULT_TEST_POSTGRES_URL is not set")
def test_postgresql_two_workers_survive_five_kills() -> None:
    assert POSTGRES_URL
    result = faults.run(
        "postgresql", kills=5, workers=2, seed=5, threads=4, citizens=4, pause=(0.0, 1.0), postgres_url=POSTGRES_URL
    )
    _survives(result)


def test_the_checks_catch_a_lost_write_a_half_applied_grant_and_an_exceeded_limit(demo_vault: Vault) -> None:
    """The checker is not vacuous: each kind of damage it looks for, made by hand, is reported."""
    with TestClient(browser(demo_vault).app, base_url=BASE) as http:
        agency = AgencyClient(http, TRAFFIC, f"demo-secret-{TRAFFIC}")
        request_id = agency.start("vehicle-registration")  # a "once" item: use limit 1
        location = consent_via_service(demo_vault, request_id, demo_person(demo_vault))
    ledger = Ledger()
    ledger.requests.add(str(request_id))
    ledger.codes.add(query_of(location)["code"])
    assert check(demo_vault, ledger) == []

    ledger.requests.add(str(uuid.uuid4()))  # acknowledged, never stored
    with demo_vault.db.session() as session:
        [grant] = session.scalars(select(Grant)).all()
        grant.uses = 2  # over the limit, and no field-release events for those uses
        copy = Grant(**{k: v for k, v in grant.model_dump().items() if k != "id"})
        session.add(copy)  # a grant without its consent request or its consent.approved event
        session.flush()
        grant_id, copy_id = grant.id, copy.id
    problems = "\n".join(check(demo_vault, ledger))
    assert "acknowledged consent request" in problems
    assert f"grant {grant_id} was used 2 times, over its limit of 1" in problems
    assert f"grant {grant_id} counts 2 uses but has 0 field-release events" in problems
    assert f"grant {copy_id} comes from 0 consent requests, not one" in problems
    assert f"grant {copy_id} has 0 consent.approved events" in problems


def _sequencer_killed_at(stage: str, url: str | None, data: Path) -> Vault:
    """A leader integrating 26 pending events in batches of 4, kill -9'd when it first reaches `stage` (it notes
    each step and waits at that one: BENCH_SEQUENCER_PAUSE); returns the vault, opened here afterwards."""
    from vault.audit import sequencer
    from vault.config import load_settings
    from vault.db import make_engine, upgrade
    from vault.wiring import build_vault

    env = {"VAULT_DATA_DIR": str(data), "VAULT_LOG_LEVEL": "WARNING"} | ({"VAULT_DATABASE_URL": url} if url else {})
    settings = load_settings(env)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    vault = build_vault(settings)
    with vault.db.session() as session:
        for i in range(30):
            vault.audit.append(session, Event(Action.OWNER_LOOKED_UP, f"staff:clerk-{i}"))
    with vault.db.session() as session:  # the first batch integrated by an earlier leader
        vault.audit.sequence(session, limit=4)
    marks = data / "steps"
    leader = subprocess.Popen(
        [sys.executable, "-c", "from bench.faults import integrate_once; integrate_once(4)"],
        env={**os.environ, **env, sequencer.PAUSE_VARIABLE: f"30:{stage}:{marks}"},
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while f" {stage} " not in (marks.read_text() if marks.exists() else "") and time.monotonic() < deadline:
            assert leader.poll() is None, "the leader ended before the step"
            time.sleep(0.02)
    finally:
        leader.kill()  # SIGKILL, mid-integration
        leader.wait()
    assert f" {stage} " in marks.read_text()
    return vault


def _next_leader_integrates_everything(vault: Vault, stage: str) -> None:
    from bench.invariants import LogSeen, check_sequencing
    from vault.audit import publishing

    seen = LogSeen()
    with vault.db.session() as session:
        assert check_sequencing(session, seen) == []  # no committed event lost, places without gaps
    if stage != "tiles-published":  # killed before its batch committed: the next leader integrates it
        assert any(index is None for index, _ in seen.events.values())
        assert publishing.sequence_step(vault.audit, vault.db) > 0
    with vault.db.session() as session:
        assert check_sequencing(session, seen, drained=True) == []
    assert len(seen.events) == 30
    report = vault.audit.verify(vault.db.engine, full=True)
    assert report.ok, report.problem
    assert report.size == 30
    assert publishing.publish(vault.audit, vault.db) == 30  # the published files agree with the database


@pytest.mark.parametrize("stage", ["indexed", "tiles-published"])
def test_the_leader_killed_mid_integration_loses_nothing_sqlite(stage: str, tmp_path: Path) -> None:
    vault = _sequencer_killed_at(stage, None, tmp_path)
    try:
        _next_leader_integrates_everything(vault, stage)
    finally:
        vault.close()


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="VAULT_TEST_POSTGRES_URL is not set")
def test_the_leader_killed_mid_integration_loses_nothing_postgresql(tmp_path: Path) -> None:
    from bench.processes import postgres_database

    assert POSTGRES_URL
    with postgres_database(POSTGRES_URL) as url:
        vault = _sequencer_killed_at("tiled", url, tmp_path)
        try:
            _next_leader_integrates_everything(vault, "tiled")
        finally:
            vault.close()


def test_the_sequencing_check_catches_a_lost_a_moved_a_changed_and_a_pending_event(demo_vault: Vault) -> None:
    """check_sequencing is not vacuous: each kind of damage, set up in what it saw before, is reported."""
    from bench.invariants import LogSeen, check_sequencing
    from vault.audit import publishing

    publishing.sequence_step(demo_vault.audit, demo_vault.db)
    seen = LogSeen()
    with demo_vault.db.session() as session:
        assert check_sequencing(session, seen, drained=True) == []
        (first, (index, leaf)), (second, (other, _)) = list(seen.events.items())[:2]
        assert index is not None and other is not None
        lost = str(uuid.uuid4())
        seen.events[lost] = (7, leaf)  # committed before, gone now
        seen.events[first] = (index + 1, leaf)  # had another place before
        seen.events[second] = (other, b"\x00" * 32)  # had another hash before
        demo_vault.audit.append(session, Event(Action.OWNER_LOOKED_UP, "staff:clerk"))
    with demo_vault.db.session() as session:
        problems = "\n".join(check_sequencing(session, seen, drained=True))
    assert f"event {lost}, committed before, is gone" in problems
    assert f"event {first} moved from leaf {index + 1} to {index}" in problems
    assert f"event {second} has another leaf hash than before" in problems
    assert "1 committed event(s) still pending" in problems
