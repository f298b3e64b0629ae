"""Periodic work while serving: expire licences and grants, erase owners due, sign a checkpoint of the log."""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from vault.wiring import Vault

log = logging.getLogger("vault.maintenance")


def run_once(vault: Vault) -> dict[str, int]:
    """One round, each step in its own transaction so one failing does not hold back the others."""
    done = {"expired": 0, "grants_expired": 0, "erased": 0, "checkpointed": 0}
    with vault.db.session() as session:
        done["expired"] = vault.licences.expire_due(session)
    with vault.db.session() as session:
        done["grants_expired"] = vault.consent.expire_due(session)
    with vault.db.session() as session:
        done["erased"] = vault.owners.erase_due(session)
    if done["erased"]:
        vault.db.checkpoint_wal()
    with vault.db.session() as session:
        checkpoint = vault.audit.checkpoint(session)
        done["checkpointed"] = checkpoint.tree_size if checkpoint else 0
    return done


async def loop(vault: Vault, interval: float) -> None:
    while True:
        try:
            done = await run_in_threadpool(run_once, vault)
            if any(done.values()):
                log.info("maintenance: %s", done)
        except Exception:  # keep serving: the next round tries again, the failure is in the log
            log.exception("maintenance round failed")
        await asyncio.sleep(interval)
