"""kill -9 every worker under mixed traffic, five times per database: the short version of `make faults`.

bench/faults.py drives consent approvals, CIBA, agency reads, issuer mutations, revocations and erasures over HTTP,
records what the server acknowledged, kills every worker at a random moment, and after each kill checks that every
acknowledged write is there and decrypts, that nothing is half-applied, that use limits hold and the log verifies.
"""

from __future__ import annotations

import os
import sys
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
from vault.consent.models import Grant
from vault.wiring import Vault

POSTGRES_URL = os.environ.get("VAULT_TEST_POSTGRES_URL")


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
