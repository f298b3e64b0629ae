"""Checking an export offline: nothing but the file (and, better, the vault's published keys) is needed.

Checks: the vault's signature over the whole bundle; every licence against its issuer's signature and the status
list at export time; every receipt's vault signature and that it is the grant's; every event's inclusion proof
against a vault-signed checkpoint note and the witnesses' cosignatures on it. A report names each problem by its
place in the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import nacl.signing

from vault.audit import merkle, note
from vault.audit.errors import NoteError
from vault.crypto import jws
from vault.crypto.errors import CryptoError, JwsError
from vault.licences.verify import verify_offline
from vault.portability.errors import ExportError
from vault.portability.services import FORMAT, signing_input

Keys = Mapping[str, nacl.signing.VerifyKey]
PROOF_FORMAT = "consent-vault-inclusion-proof/2"  # InclusionProof.as_json


@dataclass
class ExportReport:
    """What was checked and what failed; `key_source` says whether the keys were given or taken from the file."""

    key_source: str
    licences: int = 0
    grants: int = 0
    events: int = 0
    proofs: int = 0
    problems: list[str] = field(default_factory=list)
    licence_states: dict[str, str] = field(default_factory=dict)  # licence id -> verification reason

    @property
    def ok(self) -> bool:
        return not self.problems


def keys_from_jwks(jwks: Mapping[str, Any]) -> dict[str, nacl.signing.VerifyKey]:
    keys = {}
    for jwk in jwks.get("keys", []) if isinstance(jwks, Mapping) else []:
        try:
            keys[str(jwk["kid"])] = jws.verify_key_from_jwk(jwk)
        except (CryptoError, KeyError, ValueError, TypeError):
            continue
    return keys


def _jws_claims(token: object, keys: Keys) -> dict[str, Any] | None:
    if not isinstance(token, str):
        return None
    try:
        key = keys.get(str(jws.decode_unverified(token)[0].get("kid")))
        if key is None:
            return None
        return jws.json_object(jws.verify_compact(token, key)[1])
    except (JwsError, ValueError):
        return None


def check_proof(entry: str, proof: Mapping[str, Any], keys: Keys) -> str | None:
    """Why an event's inclusion proof does not hold, or None. The one place here that knows the proof's format
    (AuditLog.prove, docs/audit.md): the entry's leaf hash, the RFC 9162 path to the root of a C2SP checkpoint
    note signed by the vault, and any witness cosignatures on that note."""
    try:
        if proof.get("format") != PROOF_FORMAT:
            return "the proof is not in the access log's proof format"
        leaf = merkle.leaf_hash(entry.encode("utf-8"))
        if proof.get("entry") != entry or note.unb64(str(proof["leaf_hash"]), "the leaf hash") != leaf:
            return "the proof is for another entry"
        path = [note.unb64(str(h), "a path hash") for h in proof["path"]]
        index, size = int(proof["leaf_index"]), int(proof["tree_size"])
        signed = note.parse_note(str(proof["checkpoint"]))
        checkpoint = note.parse_checkpoint(signed.text)
        witnesses = [note.parse_vkey(str(k), note.COSIGNATURE) for k in proof.get("witness_keys") or []]
    except (KeyError, TypeError, ValueError):  # NoteError is a ValueError
        return "the proof is malformed"
    if checkpoint.size != size or proof.get("root") != note.b64(checkpoint.root):
        return "the checkpoint does not sign this tree"
    if not merkle.verify_inclusion(leaf, index, size, path, checkpoint.root):
        return "the entry is not in the tree the proof names"
    # the checkpoint names its log (origin); the vault's keys are trusted under that name, never the proof's log_key
    vault_keys = [note.Verifier(checkpoint.origin, note.ED25519, bytes(key)) for key in keys.values()]
    try:
        if not note.verified_by(signed, vault_keys):
            return "the checkpoint is not signed by the vault"
        note.verified_by(signed, witnesses)  # a cosignature that is there must hold; one still to come is no fault
    except NoteError:
        return "a signature on the checkpoint does not verify"
    return None


def _parse(data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        document = jws.json_loads_strict(data)
    except (ValueError, UnicodeDecodeError):
        raise ExportError("the file is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("bundle"), dict):
        raise ExportError("the file is not an export of this vault")
    bundle, signature = document["bundle"], document.get("signature")
    if bundle.get("format") != FORMAT or not isinstance(signature, dict):
        raise ExportError(f"the file is not in the {FORMAT} format")
    return bundle, signature


def _list(bundle: Mapping[str, Any], name: str) -> list[Any]:
    value = bundle.get(name)
    return value if isinstance(value, list) else []


def verify_export(data: bytes, *, trusted_keys: Keys | None = None) -> ExportReport:
    """Check an export file; raises ExportError only when it is not an export at all."""
    bundle, signature = _parse(data)
    keys: Keys = trusted_keys if trusted_keys is not None else keys_from_jwks(bundle.get("vault_keys", {}))
    report = ExportReport(key_source="given" if trusted_keys is not None else "the file itself")
    key = keys.get(str(signature.get("kid")))
    valid = False
    if key is not None and signature.get("alg") == "EdDSA" and isinstance(signature.get("sig"), str):
        try:
            valid = jws.verify_ed25519(bytes(key), signing_input(bundle), jws.b64url_decode(signature["sig"]))
        except ValueError:
            valid = False
    if not valid:
        report.problems.append("the vault's signature over the export does not verify")
    at = bundle.get("exported_at")
    now = at if isinstance(at, int) else 0
    issuers = bundle.get("issuers") if isinstance(bundle.get("issuers"), dict) else {}
    lists = bundle.get("status_lists") if isinstance(bundle.get("status_lists"), dict) else {}
    for n, licence in enumerate(_list(bundle, "licences")):
        report.licences += 1
        sd_jwt = licence.get("sd_jwt") if isinstance(licence, dict) else None
        result = verify_offline(str(sd_jwt), issuer_metadata=issuers, status_lists=lists, now=now)  # type: ignore[arg-type]
        report.licence_states[str(licence.get("id") if isinstance(licence, dict) else n)] = result.reason
        if result.reason not in ("ok", "expired", "suspended", "revoked"):
            report.problems.append(f"licences[{n}]: {result.reason}")
    for n, grant in enumerate(_list(bundle, "grants")):
        report.grants += 1
        claims = _jws_claims(grant.get("receipt") if isinstance(grant, dict) else None, keys)
        if claims is None:
            report.problems.append(f"grants[{n}]: the receipt is not signed by the vault")
        elif claims.get("jti") != grant.get("id") or claims.get("owner") != bundle.get("owner"):
            report.problems.append(f"grants[{n}]: the receipt is for another grant")
    for n, event in enumerate(_list(bundle, "events")):
        report.events += 1
        entry = event.get("entry") if isinstance(event, dict) else None
        proof = event.get("proof") if isinstance(event, dict) else None
        if not isinstance(entry, str):
            report.problems.append(f"events[{n}]: no entry")
            continue
        try:
            owner = json.loads(entry).get("owner")
        except ValueError:
            owner = None
        if owner != bundle.get("owner"):
            report.problems.append(f"events[{n}]: the event is another owner's")
        if isinstance(proof, dict):
            report.proofs += 1
            problem = check_proof(entry, proof, keys)
            if problem:
                report.problems.append(f"events[{n}]: {problem}")
    return report
