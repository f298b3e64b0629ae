"""Periodic work while serving: expire licences and grants, erase owners due, sign the log and get it cosigned.

Exactly one process of a deployment runs it (vault.leadership): every worker asks for leadership at each round,
and only the one holding it works. Each step runs in its own transaction and its own `try`, and erasure goes owner
by owner, so one failure (logged, retried next round) never holds back the others or the signed checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from vault import memory
from vault.audit import publishing
from vault.leadership import Leadership
from vault.wiring import Vault

log = logging.getLogger("vault.maintenance")


def expire_licences(vault: Vault) -> int:
    with vault.db.session() as session:
        return vault.licences.expire_due(session)


def expire_grants(vault: Vault) -> int:
    with vault.db.session() as session:
        return vault.consent.expire_due(session)


def expire_requests(vault: Vault) -> int:
    with vault.db.session() as session:
        return vault.consent.expire_stale_requests(session)


def erase_due(vault: Vault) -> int:
    """Erase every owner due, each in its own transaction: one that fails is logged and retried next round."""
    with vault.db.read_session() as session:
        due = vault.owners.due_for_erasure(session)
    erased = 0
    for owner_id in due:
        try:
            with vault.db.session() as session:
                erased += vault.owners.erase_if_due(session, owner_id)
        except Exception:  # the next owner still goes; this one is tried again next round
            log.exception("erasing owner %s failed; will retry", owner_id)
    if erased:
        vault.db.checkpoint_wal()
    return erased


def checkpoint(vault: Vault) -> int:
    """Integrate and sign what the sequencer loop left, get the checkpoint cosigned by the witnesses."""
    return publishing.leader_round(vault.audit, vault.db)


def notify(vault: Vault) -> int:
    """Note consents about to end, then send what the outbox holds (each message claimed in its own transaction)."""
    return vault.outbox.run()


def forget_proofs(vault: Vault) -> int:
    """Forget the jtis of DPoP proofs too old to be accepted anyway (a replay is then refused by its iat)."""
    from vault.clock import utcnow
    from vault.oauth import dpop

    with vault.db.session() as session:
        return dpop.purge(session, utcnow())


STEPS: list[tuple[str, Callable[[Vault], int]]] = [
    ("expired", expire_licences),
    ("grants_expired", expire_grants),
    ("requests_expired", expire_requests),
    ("erased", erase_due),
    ("checkpointed", checkpoint),
    ("notified", notify),
    ("proofs_forgotten", forget_proofs),
]


def run_once(vault: Vault) -> dict[str, int]:
    """One round: every step is attempted whatever happened to the ones before it; a failed step counts -1."""
    done: dict[str, int] = {}
    for name, step in STEPS:
        try:
            done[name] = step(vault)
        except Exception:  # keep going: the failure is in the log and the step runs again next round
            log.exception("maintenance step %s failed", name)
            done[name] = -1
    return done


def leadership_for(vault: Vault) -> Leadership:
    return Leadership(vault.db.engine, vault.settings.data_dir / "maintenance.lock")


async def loop(vault: Vault, interval: float, leadership: Leadership) -> None:
    """Every `interval` seconds: become or stay the leader if possible, and if leading run one round; in every
    worker, give the memory freed since the last round back to the system."""
    while True:
        try:
            if await run_in_threadpool(leadership.try_acquire):
                done = await run_in_threadpool(run_once, vault)
                if any(done.values()):
                    log.info("maintenance: %s", done)
        except Exception:  # keep serving: the next round tries again, the failure is in the log
            log.exception("maintenance round failed")
        await run_in_threadpool(memory.trim)
        await asyncio.sleep(interval)
