"""One DPoP proof sent N times at once, to the same or different workers: exactly one request is answered."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from starlette.testclient import TestClient
from strawberry.http import GraphQLRequestData

from tests.concurrency.race import PARALLEL, race
from tests.oauth_helpers import BASE, dpop_key, dpop_proof
from vault.api.app import GraphQLView, execute
from vault.api.context import RequestInfo
from vault.clock import utcnow
from vault.oauth import dpop
from vault.web.app import create_app
from vault.wiring import Vault

VERIFIER = "approval-hall"
QUERY = "query { licences { id } }"


def test_parallel_claims_of_one_jti_have_exactly_one_winner(demo_vault: Vault) -> None:
    # protection removed to see this fail: the primary key insert in dpop.claim (a SELECT-then-INSERT let
    # several attempts through on PostgreSQL; with no claim at all every attempt wins)
    key = dpop_key()
    proof = dpop_proof(key, f"{BASE}/graphql", access_token="t")

    def attempt(session: Any, i: int) -> str:
        checked = dpop.verify(proof, method="POST", url=f"{BASE}/graphql", now=utcnow(), access_token="t")
        dpop.claim(session, checked, utcnow())
        return checked.jti

    outcome = race(demo_vault.db, attempt)
    assert len(outcome.won) == 1 and outcome.errors_of(dpop.InvalidProof) == []


def test_parallel_graphql_requests_with_one_proof_are_answered_once(demo_vault: Vault) -> None:
    # protection removed to see this fail: app._proven's claim (all PARALLEL requests were answered 200)
    with TestClient(create_app(vault=demo_vault), base_url=BASE) as http:
        key = dpop_key()
        issued = http.post(
            "/oauth/token",
            auth=(VERIFIER, f"demo-secret-{VERIFIER}"),
            data={"grant_type": "client_credentials", "scope": "licences:verify"},
            headers={"DPoP": dpop_proof(key, f"{BASE}/oauth/token")},
        )
        token = issued.json()["access_token"]
    proof = dpop_proof(key, f"{demo_vault.settings.public_url}/graphql", access_token=token)
    view = GraphQLView(production=False)
    barrier = threading.Barrier(PARALLEL, timeout=60)
    statuses: list[int] = []
    messages: list[str] = []
    guard = threading.Lock()

    def run() -> None:
        request = RequestInfo(demo_vault, token, uuid.uuid4().hex, scheme="dpop", dpop=proof)
        barrier.wait()
        outcome = execute(view, request, GraphQLRequestData(QUERY, None, None, None))
        with guard:
            statuses.append(outcome.status or 200)
            messages.append(str(outcome.result.errors))

    threads = [threading.Thread(target=run) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses, key=str) == sorted([200] + [401] * (PARALLEL - 1), key=str), messages
