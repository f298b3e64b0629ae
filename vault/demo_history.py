"""Sixty days of synthetic history for the demo, so every page and chart shows something real on first run.

Written through the services, with the clock pinned to each moment in turn, in time order: requests approved,
refused and left to expire, reads under consent (each counted on its grant, as the read path does), a consent
withdrawn and the agency's next read refused, a police read under a law whose deferral has passed and one whose
deferral has not. Reads are recorded as the GraphQL read path records them; no value is ever in the log.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from vault import clock
from vault.audit.events import Action, Event
from vault.consent.models import Grant
from vault.consent.services import Decider, field_names
from vault.owners.models import OwnerKind
from vault.wiring import Vault

DAYS = 60
BEIJING = ZoneInfo("Asia/Shanghai")  # the demo city keeps office hours in Beijing time
CONSENT_READ = "permit: consent-read, full-ordinary-field-under-consent, full-sensitive-field-needed-by-item"
MANDATE_READ = "permit: mandate-read, full-under-mandate"
POLICE = "police-investigation"
HOUSING = "housing-bureau"
TRAFFIC = "traffic-police-vehicle-office"
TRANSPORT = "transport-bureau"
MANDATE = "police-criminal-investigation"
Step = Callable[[datetime], None]


@dataclass(frozen=True)
class Owners:
    a: uuid.UUID
    b: uuid.UUID
    c: uuid.UUID
    transport: uuid.UUID


def start_of_history(now: datetime) -> datetime:
    """When the demo population is created when it comes with a history: before the oldest event."""
    return now - timedelta(days=DAYS + 40)


def _at(now: datetime, days_ago: int, hour: int, minute: int = 0) -> datetime:
    day = (now.astimezone(BEIJING) - timedelta(days=days_ago)).date()
    moment = datetime.combine(day, time(hour, minute), tzinfo=BEIJING).astimezone(UTC)
    return min(moment, now - timedelta(minutes=5 + days_ago))


class History:
    def __init__(self, vault: Vault, session: Session, owners: Owners, now: datetime) -> None:
        self.vault, self.session, self.owners, self.now = vault, session, owners, now
        self.random = random.Random(13)  # noqa: S311 -- not secret: the same demo history every time

    def request(
        self, when: datetime, client_id: str, item: str, owner: uuid.UUID, *, code: str | None = None
    ) -> uuid.UUID:
        with clock.pinned_at(when):
            opened = self.vault.consent.open_request(
                self.session,
                client_id=client_id,
                item_code=item,
                fields=None,
                kind="backchannel",
                owner_id=owner,
                binding_message=code,
            )
            return opened.id

    def approve(self, when: datetime, request_id: uuid.UUID, person: uuid.UUID, owner: uuid.UUID) -> Grant:
        with clock.pinned_at(when):
            pending = self.vault.consent.pending_request(self.session, request_id)
            return self.vault.consent.approve(self.session, request_id, Decider(person, owner), pending.fields)

    def deny(self, when: datetime, request_id: uuid.UUID, person: uuid.UUID, owner: uuid.UUID) -> None:
        with clock.pinned_at(when):
            self.vault.consent.deny(self.session, request_id, Decider(person, owner))

    def expire(self, when: datetime, owner: uuid.UUID) -> None:
        with clock.pinned_at(when):
            self.vault.consent.inbox(self.session, owner)  # closes what waited past its ten minutes

    def read(self, when: datetime, grant: Grant, *, refused: bool = False) -> None:
        """One agency read under a grant, recorded as api/reads.py records it."""
        with clock.pinned_at(when):
            fields = field_names(grant.fields)
            self.vault.audit.append(
                self.session,
                Event(
                    Action.FIELDS_DENIED if refused else Action.FIELDS_RELEASED,
                    f"agency:{grant.client_id}",
                    owner_id=grant.owner_id,
                    fields=() if refused else fields,
                    denied_fields=fields if refused else (),
                    purpose=grant.purpose,
                    service_item=grant.service_item,
                    grant_id=grant.id,
                    decision="deny" if refused else "allow",
                    reason="forbid: grant-not-active" if refused else CONSENT_READ,
                    request_id=str(uuid.UUID(int=self.random.getrandbits(128))),
                    detail={"licences": 0 if refused else len(grant.fields)},
                ),
            )
            if not refused:
                self.vault.consent.use(self.session, grant.id)

    def mandate_read(self, when: datetime, owner: uuid.UUID, case: str) -> None:
        mandate = self.vault.policy.catalogue.mandate(MANDATE)
        fields = tuple(f for f in field_names(mandate.fields) if not f.endswith("/photo"))
        with clock.pinned_at(when):
            self.vault.audit.append(
                self.session,
                Event(
                    Action.FIELDS_RELEASED,
                    f"agency:{POLICE}",
                    owner_id=owner,
                    official="演示警号 000123",
                    fields=fields,
                    mandate=MANDATE,
                    decision="allow",
                    reason=MANDATE_READ,
                    request_id=str(uuid.UUID(int=self.random.getrandbits(128))),
                    detail={"licences": 2, "case_reference": case},
                ),
            )

    def revoke(self, when: datetime, grant: Grant, person: uuid.UUID) -> None:
        with clock.pinned_at(when):
            self.vault.consent.revoke(
                self.session, grant.id, actor=f"owner:{person}", owner_id=grant.owner_id, reason="revoked by owner"
            )


def write_history(vault: Vault, session: Session, owners: Owners, now: datetime) -> int:
    """The demo's sixty days, in time order; returns how many access events it wrote."""
    before = vault.audit.size(session) + vault.audit.pending(session)  # pending until the sequencer runs
    h = History(vault, session, owners, now)
    a, b, c, transport = owners.a, owners.b, owners.c, owners.transport
    grants: dict[str, Grant] = {}

    def approve(
        key: str, client_id: str, item: str, person: uuid.UUID, owner: uuid.UUID, code: str | None = None
    ) -> Step:
        def run(when: datetime) -> None:
            opened = h.request(when, client_id, item, owner, code=code)
            grants[key] = h.approve(when + timedelta(minutes=1), opened, person, owner)

        return run

    def read(key: str, refused: bool = False) -> Step:
        return lambda when: h.read(when, grants[key], refused=refused)

    def denied(when: datetime) -> None:
        h.deny(when + timedelta(minutes=2), h.request(when, HOUSING, "housing-purchase-qualification", b), b, b)

    def unanswered(when: datetime) -> None:
        h.request(when, TRAFFIC, "driving-licence-renewal", c, code="D-17")
        h.expire(when + timedelta(minutes=20), c)

    plan: list[tuple[int, int, int, Step]] = [
        # a police read 95 days ago: its 90-day deferral has passed, so person a sees it now
        (95, 10, 20, lambda when: h.mandate_read(when, a, "演示公刑字〔2026〕第0001号")),
        # person a: housing provident fund, read every week, then withdrawn; the next read is refused
        (58, 9, 5, approve("fund", HOUSING, "housing-provident-fund-withdrawal", a, a)),
        *((d, 10, 7 * d % 60, read("fund")) for d in (57, 50, 43, 36, 29, 22)),
        (20, 21, 30, lambda when: h.revoke(when, grants["fund"], a)),
        (15, 10, 2, read("fund", refused=True)),
        # person a: a vehicle registered at the traffic police counter, read once
        (47, 14, 30, approve("car", TRAFFIC, "vehicle-registration", a, a, "C-42")),
        (47, 14, 40, read("car")),
        # person b: a housing request refused; a provident fund consent read every week since
        (45, 16, 0, denied),
        (40, 11, 2, approve("rent", HOUSING, "housing-provident-fund-withdrawal", b, b)),
        *((d, 9, 3 * d % 60, read("rent")) for d in range(39, 0, -7)),
        # person c: a counter request nobody answered
        (30, 15, 0, unanswered),
        # the transport company: its legal representative (person a) consents to the permit renewal
        (12, 10, 15, approve("permit", TRANSPORT, "road-transport-permit-renewal", a, transport)),
        (12, 10, 40, read("permit")),
        # more reads over the last two weeks make the console's daily chart move
        *((d, 13, 11 * n % 60, read("rent")) for d in range(14, 0, -1) for n in range(h.random.randrange(3))),
        # a police read five days ago: still deferred, so person a does not see it yet; staff do
        (5, 16, 45, lambda when: h.mandate_read(when, a, "演示公刑字〔2026〕第0002号")),
    ]
    for days_ago, hour, minute, step in sorted(plan, key=lambda p: _at(now, p[0], p[1], p[2])):
        step(_at(now, days_ago, hour, minute))
    return vault.audit.size(session) + vault.audit.pending(session) - before


def owners_of(vault: Vault, session: Session, persons: dict[str, str], enterprise_code: str) -> Owners:
    """The demo owners by their synthetic identifiers."""
    found = {k: vault.owners.find(session, OwnerKind.PERSON, v) for k, v in persons.items()}
    company = vault.owners.find(session, OwnerKind.ENTERPRISE, enterprise_code)
    assert company is not None and all(found.values())
    return Owners(found["a"].id, found["b"].id, found["c"].id, company.id)  # type: ignore[union-attr]
