"""Two workers never send the same notification twice: parallel claims of one message, and parallel drains."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from tests import factories
from tests.concurrency.race import PARALLEL, race
from tests.conftest import settings_for
from tests.mailbox import Mailbox, smtp_server
from vault import clock
from vault.audit.events import Action, Event
from vault.notifications.models import Kind, OutboxMessage
from vault.notifications.outbox import claim, due
from vault.notifications.services import Preferences
from vault.wiring import Vault, build_vault


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    yield from smtp_server()


@pytest.fixture
def vault(demo_vault: Vault, tmp_path: Path, mailbox: Mailbox) -> Iterator[Vault]:
    """The demo vault, opened again with a local SMTP server to deliver to."""
    built = build_vault(settings_for(tmp_path, demo_vault.settings.database_url, VAULT_SMTP_URL=mailbox.url))
    yield built
    built.close()


def _notified(vault: Vault, count: int) -> uuid.UUID:
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        kinds = frozenset(k.value for k in Kind)
        prefs = Preferences("person@example.test", None, frozenset({"email"}), kinds, None, None, "zh")
        vault.notifications.save_preferences(session, owner.id, prefs)
        for n in range(count):
            event = Event(
                Action.CONSENT_REQUESTED,
                "agency:housing-bureau",
                owner_id=owner.id,
                decision="allow",
                detail={"request": f"r{n}", "kind": "backchannel"},
            )
            vault.audit.append(session, event)
        return owner.id


def test_one_of_many_parallel_claims_of_a_message_wins(vault: Vault) -> None:
    _notified(vault, 1)
    with vault.db.session() as session:
        [message_id] = due(session, clock.utcnow())
    outcome = race(vault.db, lambda session, i: claim(session, message_id, f"worker-{i}", clock.utcnow()))
    assert outcome.errors_of() == []
    assert sorted(outcome.won) == [False] * (PARALLEL - 1) + [True]


def test_parallel_drains_send_each_notification_exactly_once(vault: Vault, mailbox: Mailbox) -> None:
    _notified(vault, 6)
    barrier = threading.Barrier(4, timeout=60)
    sent: list[int] = []
    errors: list[BaseException] = []

    def drain(i: int) -> None:
        try:
            barrier.wait()
            sent.append(vault.outbox.drain(worker=f"worker-{i}"))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and sum(sent) == 6
    assert len(mailbox.messages) == 6
    with vault.db.session() as session:
        rows = session.scalars(select(OutboxMessage)).all()
    assert Counter((m.state, m.attempts) for m in rows) == {("sent", 1): 6}
