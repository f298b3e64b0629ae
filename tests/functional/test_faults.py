"""kill -9 every worker under mixed traffic, five times per database: the short version of `make faults`.

bench/faults.py drives consent approvals, CIBA, agency reads, issuer mutations, revocations and erasures over HTTP,
records what the server acknowledged, kills every worker at a random moment, and after each kill checks that every
acknowledged write is there and decrypts, that nothing is half-applied, that use limits hold and the log verifies.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is run from the checkout, not installed
from bench import faults

pytestmark = [pytest.mark.slow]
POSTGRES_URL = os.environ.get("VAULT_TEST_POSTGRES_URL")


def _survives(result: faults.Result) -> None:
    assert result.violations == []
    assert result.kills == 5
    assert result.server_errors == 0
    acknowledged = result.acknowledged
    assert acknowledged["consent requests"] > 0 and acknowledged["licences"] > 0  # there was traffic to lose


def test_sqlite_one_worker_survives_five_kills() -> None:
    _survives(faults.run("sqlite", kills=5, workers=1, seed=5, threads=4, citizens=4, pause=(0.0, 1.0)))


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="VAULT_TEST_POSTGRES_URL is not set")
def test_postgresql_two_workers_survive_five_kills() -> None:
    assert POSTGRES_URL
    result = faults.run(
        "postgresql", kills=5, workers=2, seed=5, threads=4, citizens=4, pause=(0.0, 1.0), postgres_url=POSTGRES_URL
    )
    _survives(result)
