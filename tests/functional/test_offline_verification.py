"""An agency verifies a presented licence with only the published issuer metadata and status list (HTTP)."""

from __future__ import annotations

import time

from starlette.testclient import TestClient

from tests import factories
from vault.licences.lifecycle import Step
from vault.licences.verify import verify_offline
from vault.web.app import create_app
from vault.wiring import Vault


def _fetch(client: TestClient, presentation: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    base = "http://127.0.0.1:8000"
    metadata = client.get("/.well-known/jwt-vc-issuer/issuers/traffic-police")
    assert metadata.status_code == 200
    status = client.get("/status-lists/traffic-police")
    assert status.status_code == 200 and status.headers["content-type"] == "application/statuslist+jwt"
    return {f"{base}/issuers/traffic-police": metadata.json()}, {f"{base}/status-lists/traffic-police": status.text}


def test_agency_verifies_offline_and_sees_a_suspension_at_once(vault: Vault) -> None:
    client = TestClient(create_app(vault=vault))
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        licence = factories.driving_licence(vault, session, owner)
        shown = vault.licences.present(session, licence.id, ["name", "class"], actor="test")
    metadata, lists = _fetch(client, shown)
    assert metadata["http://127.0.0.1:8000/issuers/traffic-police"]["issuer"].endswith("/issuers/traffic-police")
    result = verify_offline(shown, issuer_metadata=metadata, status_lists=lists, now=int(time.time()))
    assert result.ok and set(result.claims) == {"name", "class"}

    with vault.db.session() as session:
        vault.licences.change(session, licence.id, Step.SUSPEND, issuer_code="traffic-police")
    metadata, lists = _fetch(client, shown)
    assert verify_offline(shown, issuer_metadata=metadata, status_lists=lists, now=int(time.time())).reason == (
        "suspended"
    )
    # without a status list the verifier never assumes "not revoked"
    assert verify_offline(shown, issuer_metadata=metadata, status_lists={}, now=int(time.time())).reason == (
        "status_unavailable"
    )
    # another issuer's metadata does not vouch for this licence
    assert client.get("/.well-known/jwt-vc-issuer/issuers/nobody").status_code == 404
