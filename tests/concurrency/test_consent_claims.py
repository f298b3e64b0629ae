"""A redirect consent request opened in two tabs or by two people at once is claimed by exactly one data space."""

from __future__ import annotations

import uuid

from sqlmodel import select

from tests.concurrency.race import PARALLEL, race
from vault.consent import claims
from vault.consent.models import ConsentRequest
from vault.owners.models import Owner
from vault.wiring import Vault


def test_parallel_claims_of_one_request_have_exactly_one_winner(demo_vault: Vault) -> None:
    # protection removed to see this fail: the `owner_id IS NULL` guard in claims.claim (every attempt then wins)
    vault = demo_vault
    with vault.db.session() as session:
        request = vault.consent.open_request(
            session,
            client_id="housing-bureau",
            item_code="housing-provident-fund-withdrawal",
            fields=None,
            kind="redirect",
            oauth={"redirect_uri": "http://127.0.0.1:8001/callback", "state": "s", "code_challenge": "c"},
        )
        request_id = request.id
    with vault.db.session() as session:
        real = list(session.scalars(select(Owner.id)))
    owners = [real[i % len(real)] for i in range(PARALLEL)]

    def attempt(session: object, i: int) -> uuid.UUID:
        if not claims.claim(session, request_id, owners[i]):  # type: ignore[arg-type]
            raise LookupError("already claimed")
        return owners[i]

    outcome = race(vault.db, attempt)
    assert len(outcome.won) == 1 and outcome.errors_of(LookupError) == []
    with vault.db.session() as session:
        stored = session.get(ConsentRequest, request_id)
        assert stored is not None and stored.owner_id == outcome.won[0]
