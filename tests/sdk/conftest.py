"""The SDK against a live vault: the demo population served by uvicorn on a loopback port (SQLite)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from tests.conftest import settings_for
from vault.consent.services import Decider
from vault.demo import PERSONS
from vault.oauth.adapter import unit_of_work
from vault.owners.models import OwnerKind
from vault.wiring import Vault, build_vault

pytestmark = pytest.mark.sqlite_only


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    url: str
    vault: Vault

    def owner(self, index: int = 0) -> uuid.UUID:
        with unit_of_work(self.vault.db) as session:
            owner = self.vault.owners.find(session, OwnerKind.PERSON, PERSONS[index].id_number)
            assert owner is not None
            return owner.id

    def approve(self, consent_path: str, index: int = 0, drop: tuple[str, ...] = ()) -> str:
        """The owner approves the redirect request at `consent_path` (fields in `drop` unticked): the callback."""
        request_id = uuid.UUID(consent_path.rstrip("/").rsplit("/", 1)[1])
        owner = self.owner(index)
        with unit_of_work(self.vault.db) as session:
            request = self.vault.consent.pending_request(session, request_id)
            fields = {t: [f for f in names if f not in drop] for t, names in request.fields.items()}
            grant = self.vault.consent.approve(session, request_id, Decider(owner, owner), fields)
            return self.vault.oauth.approved(request, grant)

    def approve_inbox(self, index: int = 0) -> None:
        """The owner approves the one backchannel request waiting in their inbox."""
        owner = self.owner(index)
        with unit_of_work(self.vault.db) as session:
            [request] = self.vault.consent.inbox(session, owner)
            self.vault.consent.approve(session, request.id, Decider(owner, owner), request.fields, request.questions)


@pytest.fixture
def live(demo_vault: Vault, tmp_path: Path) -> Iterator[Live]:
    from vault.web.app import create_app

    port = _free_port()
    vault = build_vault(
        settings_for(tmp_path, demo_vault.settings.database_url, VAULT_PORT=str(port), VAULT_LOG_LEVEL="WARNING")
    )
    server = uvicorn.Server(uvicorn.Config(create_app(vault=vault), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield Live(f"http://127.0.0.1:{port}", vault)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        vault.close()
