"""The leader's log work: sequence batches, get checkpoints cosigned, and publish checkpoint and tiles as files.

Files go under <data dir>/log/ in the tlog-tiles layout (checkpoint, tile/<L>/<N>[.p/<W>]), so they can be served
or mirrored as they are. Tile files are written once and never changed: a full tile, or a partial tile of one
width, has one content forever; finding another there means the database was rewritten, and it is refused.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import col, select

from vault.audit import note, sequencer, tiles
from vault.audit.errors import AuditError, NoteError, WitnessError
from vault.audit.models import AuditCheckpoint, AuditCosignature
from vault.audit.witnessing import add_checkpoint
from vault.clock import utcnow
from vault.db import Database

if TYPE_CHECKING:
    from vault.audit.services import AuditLog

log = logging.getLogger("vault.audit.publishing")


def sequence_step(audit: AuditLog, db: Database, *, limit: int = sequencer.BATCH) -> int:
    """Integrate every pending event, a batch per transaction, signing a checkpoint after each; then publish."""
    total = 0
    while True:
        with db.session() as session:
            count, _ = audit.sequence(session, limit)
            sequencer.fault_point("signed", count)
        total += count
        sequencer.fault_point("committed", count)
        if count < limit:
            break
    if total and audit.data_dir is not None:
        publish(audit, db)
    return total


def leader_round(audit: AuditLog, db: Database) -> int:
    """The maintenance round's log step: integrate and sign what is pending, get the checkpoint cosigned; returns
    how many events it integrated (the sequencer loop usually leaves none)."""
    integrated = sequence_step(audit, db)
    witness_step(audit, db)
    return integrated


def witness_step(audit: AuditLog, db: Database) -> int:
    """Ask each configured witness to cosign the latest checkpoint; returns how many cosigned."""
    with db.session() as session:
        row = audit.latest_checkpoint(session)
    if row is None or not audit.witnesses or not row.signed.endswith("\n"):
        return 0
    done = 0
    for witness in audit.witnesses:
        with db.session() as session:
            if session.get(AuditCosignature, (row.tree_size, witness.name)) is not None:
                continue
            last = session.scalar(
                select(AuditCosignature.tree_size)
                .where(AuditCosignature.witness == witness.name)
                .order_by(col(AuditCosignature.tree_size).desc())
            )
        old = int(last or 0) if (last or 0) <= row.tree_size else 0

        def proof_from(old_size: int, size: int = row.tree_size) -> list[bytes]:
            with db.session() as session:
                return audit.tree(session, size).consistency_proof(old_size, size) if old_size <= size else []

        try:
            signature = add_checkpoint(audit.transport, witness, row.signed, old, proof_from)
        except (WitnessError, AuditError, NoteError) as error:
            log.warning("witness %s did not cosign checkpoint %d: %s", witness.name, row.tree_size, error)
            continue
        with db.session() as session:
            session.add(
                AuditCosignature(
                    tree_size=row.tree_size, witness=witness.name, line=signature.line(), created_at=utcnow()
                )
            )
        done += 1
    if done and audit.data_dir is not None:
        publish(audit, db)
    return done


def _write_once(path: Path, data: bytes) -> None:
    if path.exists():
        if path.read_bytes() != data:
            raise AuditError(f"published {path.name} differs from the database's: the log was rewritten")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _published_size(directory: Path) -> int:
    try:
        return note.parse_checkpoint(note.parse_note((directory / "checkpoint").read_text()).text).size
    except (OSError, NoteError, UnicodeDecodeError):
        return 0


def publish(audit: AuditLog, db: Database) -> int:
    """Write the tiles grown since the published checkpoint, then the latest checkpoint (cosigned if it is)."""
    assert audit.data_dir is not None
    directory = audit.data_dir
    old = _published_size(directory)
    with db.session() as session:
        row: AuditCheckpoint | None = audit.latest_cosigned(session)
        latest = audit.latest_checkpoint(session)
        if latest is not None and (row is None or latest.tree_size > row.tree_size) and not audit.witnesses:
            row = latest
        if row is None or row.tree_size <= old or not row.signed.endswith("\n"):
            return old
        get = sequencer.tile_getter(session)
        level = 0
        while (row.tree_size >> (tiles.HEIGHT * level)) > 0:
            count = row.tree_size >> (tiles.HEIGHT * level)
            first = (old >> (tiles.HEIGHT * level)) // tiles.WIDTH
            for idx in range(first, -(-count // tiles.WIDTH)):
                width = tiles.tile_width(level, idx, row.tree_size)
                data = get(level, idx)[: width * tiles.HASH_SIZE]
                if len(data) != width * tiles.HASH_SIZE:
                    raise AuditError(f"tile {tiles.tile_path(level, idx)} is shorter than checkpoint {row.tree_size}")
                _write_once(directory / "tile" / tiles.tile_path(level, idx, width), data)
            level += 1
        signed = audit.cosigned_note(session, row)
    sequencer.fault_point("tiles-published", row.tree_size - old)
    tmp = directory / "checkpoint.tmp"
    tmp.write_text(signed)
    os.replace(tmp, directory / "checkpoint")
    if audit.witnesses:  # every cosigned checkpoint published, in order, appended
        with (directory / "checkpoints").open("a") as history:
            history.write(signed + "\n")
    return row.tree_size
