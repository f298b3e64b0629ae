"""Building an owner's export: every licence as its full issuer-signed SD-JWT, every grant with its vault-signed
receipt, every access event of theirs with an inclusion proof, and what checking them offline needs (issuer
metadata, status lists, the vault's public keys), all signed by the vault.

Reads under a legal mandate still within their deferral are left out, as in the owner's pages. Making an export
is itself recorded in the access log.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault import clock
from vault.audit.events import Action, Event
from vault.audit.models import AuditEvent
from vault.audit.services import AuditError, AuditLog
from vault.consent.models import Grant
from vault.crypto import jws
from vault.crypto.services import VAULT_SIGNING, KeyService
from vault.licences.models import Licence
from vault.licences.services import LicenceService, presentation_of
from vault.licences.status import StatusLists
from vault.licences.types import LicenceCatalogue

FORMAT = "consent-vault-export/1"


def signing_input(bundle: dict[str, Any]) -> bytes:
    """What the vault signs: the bundle as canonical JSON (sorted keys, no spaces, UTF-8)."""
    return jws.canonical_json(bundle)


class ExportService:
    def __init__(
        self,
        keys: KeyService,
        audit: AuditLog,
        licences: LicenceService,
        catalogue: LicenceCatalogue,
        status_lists: StatusLists,
        deferral_days: Callable[[str], int],
    ) -> None:
        self.keys = keys
        self.audit = audit
        self.licences = licences
        self.catalogue = catalogue
        self.status_lists = status_lists
        self.deferral_days = deferral_days

    def _licences(self, session: Session, owner_id: uuid.UUID) -> list[dict[str, Any]]:
        rows = session.scalars(select(Licence).where(Licence.owner_id == owner_id).order_by(col(Licence.id))).all()
        if not rows:
            return []
        dek = self.keys.owner_key(session, owner_id)
        out = []
        for row in rows:
            licence = self.licences.get(session, row.id)
            version = self.licences.current_version(session, licence)
            names = self.catalogue.type(licence.type_code).field_names
            opened = self.licences.open_disclosures(session, owner_id, [(version, names)], dek).get(version.id, {})
            sd_jwt = presentation_of(self.licences.issuer_jwt(version, dek), opened.values())
            out.append({"id": str(licence.id), "type": licence.type_code, "state": licence.state, "sd_jwt": sd_jwt})
        return out

    def _grants(self, session: Session, owner_id: uuid.UUID) -> list[dict[str, Any]]:
        rows = session.scalars(select(Grant).where(Grant.owner_id == owner_id).order_by(col(Grant.created_at))).all()
        return [
            {
                "id": str(g.id),
                "agency": g.client_id,
                "service_item": g.service_item,
                "state": g.state,
                "valid_from": g.valid_from.isoformat(),
                "valid_until": g.valid_until.isoformat(),
                "receipt": g.receipt,
            }
            for g in rows
        ]

    def _shown(self, entry: bytes, created_at: Any, now: Any) -> bool:
        """False for a read under a mandate whose deferral has not passed: the owner is not told of it yet."""
        mandate = json.loads(entry).get("mandate")
        return not mandate or created_at + timedelta(days=self.deferral_days(str(mandate))) <= now

    def _events(self, session: Session, owner_id: uuid.UUID) -> list[dict[str, Any]]:
        now = clock.utcnow()
        rows = session.execute(
            select(AuditEvent.id, AuditEvent.entry, AuditEvent.created_at)
            .where(AuditEvent.owner_id == owner_id)
            .order_by(col(AuditEvent.seq))
        ).all()
        out = []
        for event_id, entry, created_at in rows:
            if not self._shown(bytes(entry), created_at, now):
                continue
            try:
                proof: dict[str, Any] | None = self.audit.prove(session, event_id).as_json()
            except AuditError:  # not sequenced or checkpointed yet (about a second): its proof comes in a later export
                proof = None
            out.append({"entry": bytes(entry).decode("utf-8"), "proof": proof})
        return out

    def export(self, session: Session, owner_id: uuid.UUID, *, actor: str) -> dict[str, Any]:
        """The owner's signed export as a JSON-ready object; the export is recorded (who, whose, when)."""
        self.audit.append(session, Event(Action.OWNER_EXPORTED, actor, owner_id=owner_id))
        codes = self.licences.issuers.codes()
        bundle: dict[str, Any] = {
            "format": FORMAT,
            "owner": str(owner_id),
            "exported_at": int(clock.utcnow().timestamp()),
            "licences": self._licences(session, owner_id),
            "grants": self._grants(session, owner_id),
            "events": self._events(session, owner_id),
            "issuers": {self.licences.issuers.issuer_id(c): self.licences.issuers.metadata(session, c) for c in codes},
            "status_lists": {self.status_lists.uri(c): self.status_lists.token(session, c) for c in codes},
            "vault_keys": {
                "keys": [
                    jws.public_jwk(key, kid)
                    for kid, key in sorted(self.keys.trusted_public_keys(session, VAULT_SIGNING).items())
                ]
            },
        }
        signer = self.keys.signer(session, VAULT_SIGNING)
        signature = signer.key.sign(signing_input(bundle)).signature
        return {"bundle": bundle, "signature": {"alg": "EdDSA", "kid": signer.kid, "sig": jws.b64url_encode(signature)}}
