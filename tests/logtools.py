"""Helpers for the access-log tests: an in-process witness, filling the log, and what an attacker with the
database (and perhaps the vault's signing key) would do to it."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Engine, text

from vault.audit import publishing, tiles
from vault.audit.events import Action, Event
from vault.audit.witnessing import Witness as WitnessConfig
from vault.wiring import Vault
from vault.witness.service import Witness
from vault.witness.store import WitnessStore, init_key, load_key

WITNESS_URL = "http://witness.test"


def make_witness(directory: Path, name: str = "witness.test/w1") -> Witness:
    init_key(directory, name)
    loaded_name, key = load_key(directory)
    return Witness(WitnessStore(directory), loaded_name, key)


def transport_to(witness: Witness):  # type: ignore[no-untyped-def]
    """A transport that hands requests to the witness in-process, as its HTTP app would."""

    def send(method: str, url: str, body: bytes | None) -> tuple[int, bytes]:
        parts = urlsplit(url)
        if method == "POST" and parts.path == "/add-checkpoint":
            answer = witness.add_checkpoint(body or b"")
        elif method == "GET" and parts.path == "/latest-checkpoint":
            answer = witness.latest(parse_qs(parts.query)["origin"][0])
        else:
            return 404, b"not found\n"
        return answer.status, answer.body.encode()

    return send


def attach(vault: Vault, witness: Witness) -> None:
    """Configure the vault with the witness, and the witness with the vault's log key."""
    with vault.db.session() as session:
        witness.store.add_log(vault.audit.log_key(session))
    vault.audit.witnesses = (WitnessConfig(WITNESS_URL, witness.verifier),)
    vault.audit.transport = transport_to(witness)


def append(vault: Vault, count: int, reason: str = "r") -> list[uuid.UUID]:
    ids = []
    with vault.db.session() as session:
        for i in range(count):
            event = Event(
                Action.FIELDS_RELEASED, "agency:test", owner_id=uuid.uuid4(), fields=("name",), reason=f"{reason}{i}"
            )
            ids.append(vault.audit.append(session, event).id)
    return ids


def fill(vault: Vault, count: int, *, cosign: bool = True) -> list[uuid.UUID]:
    ids = append(vault, count)
    publishing.sequence_step(vault.audit, vault.db)
    if cosign:
        publishing.witness_step(vault.audit, vault.db)
    return ids


def drop_guards(engine: Engine) -> None:
    """What a DBA does first: remove the append-only triggers."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for table in ("audit_events", "audit_checkpoints", "audit_cosignatures"):
                for verb in ("update", "delete"):
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{verb}"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events"))
            conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events"))
            for table in ("audit_checkpoints", "audit_cosignatures"):
                conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))


def rebuild_tiles(engine: Engine) -> None:
    """Recompute every tile from the stored leaf hashes, as an attacker covering an edit would."""
    with engine.begin() as conn:
        hashes = [
            bytes(h)
            for (h,) in conn.execute(
                text("SELECT leaf_hash FROM audit_events WHERE leaf_index IS NOT NULL ORDER BY leaf_index")
            )
        ]
        conn.execute(text("DELETE FROM audit_tiles"))
        conn.execute(text("DELETE FROM audit_tile_roots"))
        built = tiles.append(lambda level, idx: b"", 0, hashes)
        for (level, idx), data in built.items():
            conn.execute(
                text("INSERT INTO audit_tiles (level, idx, hashes) VALUES (:l, :i, :h)"),
                {"l": level, "i": idx, "h": data},
            )
            if len(data) == tiles.FULL_TILE:
                conn.execute(
                    text("INSERT INTO audit_tile_roots (level, idx, roots) VALUES (:l, :i, :r)"),
                    {"l": level, "i": idx, "r": tiles.subtree_roots(data)},
                )


def resign(vault: Vault) -> None:
    """The vault's operator (who holds the signing key) deletes the checkpoints and signs the doctored tree."""
    with vault.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_checkpoints"))
        conn.execute(text("DELETE FROM audit_cosignatures"))
    with vault.db.session() as session:
        vault.audit.checkpoint(session)
