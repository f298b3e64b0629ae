"""What the server acknowledged (recorded on the client side) and the invariants checked against the database after
each kill: acknowledged writes present and decryptable, nothing half-applied, use limits kept, the log verifying."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from bench.traffic import Stats
from vault.audit.events import Action
from vault.audit.models import AuditEvent
from vault.consent.models import ConsentRequest, Grant
from vault.crypto.models import OwnerKey
from vault.oauth.models import AuthorizationCode, Token
from vault.oauth.tokens import digest
from vault.owners.models import Owner
from vault.wiring import Vault

WATCHED = (
    Action.CONSENT_APPROVED,
    Action.FIELDS_RELEASED,
    Action.GRANT_REVOKED,
    Action.GRANT_EXHAUSTED,
    Action.OWNER_ERASED,
    Action.OWNER_ERASURE_REQUESTED,
    Action.LICENCE_ISSUED,
    Action.LICENCE_SUSPENDED,
    Action.LICENCE_REINSTATED,
)
STATE_AFTER = {
    Action.LICENCE_ISSUED: "active",
    Action.LICENCE_SUSPENDED: "suspended",
    Action.LICENCE_REINSTATED: "active",
}


@dataclass
class Held:
    """An access token an agency holds, and what it was granted for."""

    token: str
    client_id: str
    grant_id: str
    login: str
    item: str


@dataclass
class LicenceAck:
    state: str  # the state the last acknowledged change left
    attempted: str | None = None  # a change sent and never answered: either state is right


@dataclass
class Ledger:
    """Every write the server acknowledged, as the clients saw it (thread-safe through `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    stats: Stats = field(default_factory=Stats)
    rounds: int = 0
    requests: set[str] = field(default_factory=set)  # consent requests the authorization endpoint sent us to
    approved: set[str] = field(default_factory=set)  # consent requests whose approval was answered
    codes: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)
    ciba: set[str] = field(default_factory=set)
    ciba_spent: set[str] = field(default_factory=set)
    ciba_log: dict[str, list[str]] = field(default_factory=dict)  # answered with tokens, or polled with no answer
    reads: Counter[str] = field(default_factory=Counter)  # access token -> reads that returned values
    once_tokens: set[str] = field(default_factory=set)
    licences: dict[str, LicenceAck] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    erasures: set[uuid.UUID] = field(default_factory=set)
    held: list[Held] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)  # steps the server refused, by reason

    def counts(self) -> dict[str, int]:
        return {
            "consent requests": len(self.requests),
            "approvals": len(self.approved),
            "codes": len(self.codes),
            "token sets": len(self.tokens),
            "CIBA starts": len(self.ciba),
            "reads with data": sum(self.reads.values()),
            "licences": len(self.licences),
            "revocations": len(self.revoked),
            "erasure requests": len(self.erasures),
        }

    def total(self) -> int:
        """Acknowledged writes so far (reads with data count too: each wrote its access event)."""
        with self.lock:
            return sum(self.counts().values())

    def flows(self) -> int:
        """Acknowledged ends of whole flows: approvals, token sets, reads with values, revocations."""
        with self.lock:
            return len(self.approved) + len(self.tokens) + sum(self.reads.values()) + len(self.revoked)

    def summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.counts().items())


def _events(session: Session) -> dict[Action, list[dict[str, Any]]]:
    """The watched events, each with its arrival order as "index" (entries carry no index since the log batches)."""
    rows = session.execute(
        select(col(AuditEvent.action), col(AuditEvent.entry), col(AuditEvent.seq)).where(
            col(AuditEvent.action).in_(WATCHED)
        )
    )
    found: dict[Action, list[dict[str, Any]]] = defaultdict(list)
    for action, entry, seq in rows:
        found[Action(action)].append({**json.loads(entry), "index": int(seq)})
    return found


def check(vault: Vault, ledger: Ledger) -> list[str]:
    """Every invariant, with the server down; returns what is wrong (empty when all hold)."""
    with ledger.lock:
        ledger.rounds += 1
    problems: list[str] = []
    with vault.db.session() as session:
        events = _events(session)
        problems += _grants(session, events, ledger)
        problems += _acknowledged(session, ledger)
        problems += _licences(vault, session, events, ledger)
        problems += _owners(session, events, ledger)
        report = vault.audit.verify(session)
        if not report.ok:
            problems.append(f"the access log does not verify: {report.problem}")
    return problems


def _grants(session: Session, events: dict[Action, list[dict[str, Any]]], ledger: Ledger) -> list[str]:
    problems = []
    grants = {str(g.id): g for g in session.scalars(select(Grant))}
    approving = Counter(str(r.grant_id) for r in session.scalars(select(ConsentRequest)) if r.grant_id is not None)
    for request in session.scalars(select(ConsentRequest).where(col(ConsentRequest.state) == "approved")):
        if str(request.grant_id) not in grants:
            problems.append(f"consent request {request.id} is approved without its grant")
    by_grant: dict[Action, Counter[Any]] = {a: Counter(e.get("grant") for e in events[a]) for a in WATCHED}
    for gid, grant in grants.items():
        if approving[gid] != 1:
            problems.append(f"grant {gid} comes from {approving[gid]} consent requests, not one")
        if by_grant[Action.CONSENT_APPROVED][gid] != 1:
            problems.append(f"grant {gid} has {by_grant[Action.CONSENT_APPROVED][gid]} consent.approved events")
        released = by_grant[Action.FIELDS_RELEASED][gid]
        if grant.uses != released:
            problems.append(f"grant {gid} counts {grant.uses} uses but has {released} field-release events")
        if grant.use_limit is not None and grant.uses > grant.use_limit:
            problems.append(f"grant {gid} was used {grant.uses} times, over its limit of {grant.use_limit}")
        for state, action in (("revoked", Action.GRANT_REVOKED), ("exhausted", Action.GRANT_EXHAUSTED)):
            if (grant.state == state) != (by_grant[action][gid] == 1):
                problems.append(f"grant {gid} is {grant.state} with {by_grant[action][gid]} {action.value} events")
    for action in (Action.CONSENT_APPROVED, Action.FIELDS_RELEASED, Action.GRANT_REVOKED, Action.GRANT_EXHAUSTED):
        for gid in by_grant[action]:
            if gid is not None and gid not in grants:
                problems.append(f"a {action.value} event names grant {gid}, which does not exist")
    for code in session.scalars(select(AuthorizationCode)):
        if str(code.grant_id) not in grants:
            problems.append(f"an authorization code has no grant {code.grant_id}")
    for token in session.scalars(select(Token).where(col(Token.grant_id).is_not(None))):
        holder = grants.get(str(token.grant_id))
        if holder is None:
            problems.append(f"token {token.id} has no grant {token.grant_id}")
        elif holder.state != "active" and token.revoked_at is None and token.access_expires_at > _now():
            problems.append(f"token {token.id} is still live under {holder.state} grant {holder.id}")
    return problems


def _acknowledged(session: Session, ledger: Ledger) -> list[str]:
    problems = []
    requests = {str(r.id): r for r in session.scalars(select(ConsentRequest))}
    hashes = {r.auth_req_hash for r in requests.values() if r.auth_req_hash}
    grants = {str(g.id): g for g in session.scalars(select(Grant))}
    codes = set(session.scalars(select(col(AuthorizationCode.code_hash))))
    tokens = {t.access_hash: t for t in session.scalars(select(Token))}
    with ledger.lock:
        acknowledged_requests = set(ledger.requests)
        approved, acked_codes, acked_tokens = set(ledger.approved), set(ledger.codes), set(ledger.tokens)
        ciba = ledger.ciba - ledger.ciba_spent  # a spent auth_req_id is cleared: one token set per approval
        reads, once, revoked = Counter(ledger.reads), set(ledger.once_tokens), set(ledger.revoked)
    for rid in acknowledged_requests - set(requests):
        problems.append(f"acknowledged consent request {rid} is missing")
    for rid in approved:
        request = requests.get(rid)
        if request is None or request.state != "approved" or str(request.grant_id) not in grants:
            problems.append(f"acknowledged approval of {rid} is missing or has no grant")
    for code in acked_codes:
        h = digest(code)
        if h not in codes and not any(t.code_hash == h for t in tokens.values()):
            problems.append("an acknowledged authorization code is missing")
    for arid in ciba:
        if digest(arid) not in hashes:
            problems.append("an acknowledged CIBA request is missing")
    for token in acked_tokens:
        if digest(token) not in tokens:
            problems.append("an acknowledged token set is missing")
    released: Counter[str] = Counter()
    for token, count in reads.items():
        row = tokens.get(digest(token))
        if row is not None:
            released[str(row.grant_id)] += count
        if token in once and count > 1:
            problems.append(f"a once-only grant returned data {count} times")
    for gid, count in released.items():
        grant = grants.get(gid)
        if grant is None or grant.uses < count:
            problems.append(f"grant {gid}: {count} acknowledged reads, {grant.uses if grant else 'no grant'} uses")
    for gid in revoked:
        if gid not in grants or grants[gid].state != "revoked":
            problems.append(f"acknowledged revocation of grant {gid} is missing")
    return problems


def _licences(vault: Vault, session: Session, events: dict[Action, list[dict[str, Any]]], ledger: Ledger) -> list[str]:
    problems = []
    last: dict[str, str] = {}
    for action in STATE_AFTER:
        for entry in events[action]:
            lid = entry.get("licence")
            if lid and (lid not in last or entry["index"] > int(last[lid].split(":")[0])):
                last[lid] = f"{entry['index']}:{STATE_AFTER[action]}"
    with ledger.lock:
        acked = dict(ledger.licences)
    for lid, ack in acked.items():
        try:
            licence = vault.licences.get(session, uuid.UUID(lid))
        except Exception as error:  # the acknowledged licence must be there
            problems.append(f"acknowledged licence {lid} is missing: {error}")
            continue
        if licence.state not in (ack.state, ack.attempted):
            problems.append(f"licence {lid} is {licence.state}; acknowledged {ack.state}")
        logged = last.get(lid, ":none").split(":")[1]
        if logged != licence.state:
            problems.append(f"licence {lid} is {licence.state} but its last lifecycle event says {logged}")
        names = vault.catalogue.type(licence.type_code).field_names
        try:
            values = vault.licences.values(session, licence, names)
        except Exception as error:  # every acknowledged licence decrypts
            problems.append(f"licence {lid} does not decrypt: {type(error).__name__}")
            continue
        if not values:
            problems.append(f"licence {lid} decrypts to no field at all")
    return problems


def _owners(session: Session, events: dict[Action, list[dict[str, Any]]], ledger: Ledger) -> list[str]:
    problems = []
    erased = Counter(e.get("owner") for e in events[Action.OWNER_ERASED])
    requested = {e.get("owner") for e in events[Action.OWNER_ERASURE_REQUESTED]}
    keys = {str(k.owner_id): k for k in session.scalars(select(OwnerKey))}
    owners = {str(o.id): o for o in session.scalars(select(Owner))}
    for oid, owner in owners.items():
        destroyed = oid in keys and keys[oid].destroyed_at is not None
        if destroyed != (owner.erased_at is not None) or destroyed != (erased[oid] == 1):
            problems.append(
                f"owner {oid}: key destroyed {destroyed}, erased_at {owner.erased_at is not None}, "
                f"{erased[oid]} owner.erased events"
            )
    with ledger.lock:
        acked = set(ledger.erasures)
    for owner_id in acked:
        asked = owners.get(str(owner_id))
        if asked is None or asked.erase_requested_at is None or str(owner_id) not in requested:
            problems.append(f"acknowledged erasure request for {owner_id} is missing")
    return problems


def _now() -> Any:
    from vault.clock import utcnow

    return utcnow()


@dataclass
class LogSeen:
    """What the previous check saw of the access log: each event's place (None while pending) and leaf hash."""

    events: dict[str, tuple[int | None, bytes]] = field(default_factory=dict)
    integrated_by_restart: int = 0  # events left pending by a kill that a later leader integrated


def check_sequencing(session: Session, seen: LogSeen, *, drained: bool = False) -> list[str]:
    """The sequencer's invariants after a kill: no committed event lost or changed, an integrated event keeps its
    place, places are 0..n-1 with neither gap nor repeat (each event in the tree exactly once), and, once a
    restarted leader has drained the backlog (`drained`), no event left pending."""
    problems = []
    now: dict[str, tuple[int | None, bytes]] = {}
    for event_id, index, leaf in session.execute(
        select(col(AuditEvent.id), col(AuditEvent.leaf_index), col(AuditEvent.leaf_hash))
    ):
        now[str(event_id)] = (None if index is None else int(index), bytes(leaf))
    for event_id, (index, leaf) in seen.events.items():
        if event_id not in now:
            problems.append(f"event {event_id}, committed before, is gone")
        elif now[event_id][1] != leaf:
            problems.append(f"event {event_id} has another leaf hash than before")
        elif index is not None and now[event_id][0] != index:
            problems.append(f"event {event_id} moved from leaf {index} to {now[event_id][0]}")
        elif index is None and now[event_id][0] is not None:
            seen.integrated_by_restart += 1
    places = sorted(index for index, _ in now.values() if index is not None)
    if places != list(range(len(places))):
        repeated = len(places) - len(set(places))
        problems.append(f"leaf indexes are not 0..{len(places) - 1}: {repeated} repeated, last {places[-1]}")
    pending = sum(1 for index, _ in now.values() if index is None)
    if drained and pending:
        problems.append(f"{pending} committed event(s) still pending after the restarted leader's rounds")
    seen.events = now
    return problems
