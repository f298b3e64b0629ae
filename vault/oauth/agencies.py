"""Registered agencies: their identity, the service items they perform, and their OAuth client metadata."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault.audit.events import Action, Event
from vault.audit.services import AuditLog
from vault.clock import utcnow
from vault.oauth.errors import AgencyError
from vault.oauth.models import Agency
from vault.oauth.scopes import AuthMethod, GrantType, Scope
from vault.policy.engine import AgencyInfo, PolicyEngine

_AGENCIES = Agency.__table__  # type: ignore[attr-defined]
_INFO = sa_select(
    _AGENCIES.c.category, _AGENCIES.c.department, _AGENCIES.c.suspended_at, _AGENCIES.c.service_items
).where(_AGENCIES.c.client_id == bindparam("client_id"))
REMEMBERED_AGENCIES = 1_024  # live agencies' policy attributes kept per process; emptied when full
ASSERTION_KEY_TYPES = ("OKP", "EC")  # what private_key_jwt's algorithms verify with; never a shared (oct) key


def hash_secret(secret: str) -> bytes:
    # client secrets are 256-bit random strings the vault generates: a fast hash is enough, no stretching needed
    return hashlib.sha256(secret.encode()).digest()


def check_redirect_uri(uri: str) -> str:
    parts = urlsplit(uri)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise AgencyError(f"redirect URI must be https (or http on loopback): {uri}")
    if parts.fragment or parts.username or parts.password:
        raise AgencyError(f"redirect URI may not have a fragment or user info: {uri}")
    return uri


def check_jwks(jwks: dict[str, Any] | None) -> dict[str, Any] | None:
    """An agency's keys: public OKP or EC keys only; a shared (oct) key or a private key is refused."""
    if jwks is None:
        return None
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise AgencyError("jwks must be a JSON object with a list of keys")
    for key in keys:
        kty = key.get("kty") if isinstance(key, dict) else None
        if kty == "oct":
            raise AgencyError("jwks may not hold symmetric (oct) keys: register public OKP or EC keys")
        if kty not in ASSERTION_KEY_TYPES:
            raise AgencyError(f"jwks keys must be OKP or EC public keys, got kty {kty!r}")
        if "d" in key:
            raise AgencyError("jwks holds a private key: register the public key only")
    try:
        KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError) as error:
        raise AgencyError(f"jwks cannot be read: {error}") from None
    return jwks


class AgencyRegistry:
    def __init__(self, audit: AuditLog, policy: PolicyEngine) -> None:
        self.audit = audit
        self.policy = policy
        self._remembered: dict[str, AgencyInfo] = {}

    def register(
        self,
        session: Session,
        *,
        client_id: str,
        name_zh: str,
        name_en: str,
        category: str,
        department: str,
        service_items: Sequence[str],
        redirect_uris: Sequence[str],
        grant_types: Sequence[str],
        scopes: Sequence[str],
        auth_method: str,
        jwks: dict[str, Any] | None = None,
        secret: str | None = None,
        actor: str,
    ) -> tuple[Agency, str | None]:
        """Register an agency; returns it and, for client_secret_basic, the secret (shown once, stored hashed)."""
        if session.scalars(select(Agency).where(Agency.client_id == client_id)).first():
            raise AgencyError(f"client id {client_id!r} is taken")
        if department not in self.policy.licences.departments:
            raise AgencyError(f"unknown department {department!r}")
        for code in service_items:
            item = self.policy.catalogue.item(code)
            if item.department != department:
                raise AgencyError(f"service item {code} is performed by {item.department}, not {department}")
        for value, enum, what in ((grant_types, GrantType, "grant type"), (scopes, Scope, "scope")):
            for entry in value:
                if entry not in {e.value for e in enum}:
                    raise AgencyError(f"unknown {what} {entry!r}")
        method = AuthMethod(auth_method)
        jwks = check_jwks(jwks)
        if method is AuthMethod.PRIVATE_KEY_JWT and not (jwks and jwks.get("keys")):
            raise AgencyError("private_key_jwt needs the agency's public keys (jwks)")
        if GrantType.AUTHORIZATION_CODE in grant_types and not redirect_uris:
            raise AgencyError("the authorization code grant needs at least one redirect URI")
        issued = None
        if method is AuthMethod.CLIENT_SECRET_BASIC:
            issued = secret or secrets.token_urlsafe(32)
        agency = Agency(
            client_id=client_id,
            name_zh=name_zh,
            name_en=name_en,
            category=category,
            department=department,
            service_items=list(service_items),
            redirect_uris=[check_redirect_uri(u) for u in redirect_uris],
            grant_types=list(grant_types),
            scopes=list(scopes),
            auth_method=method.value,
            secret_hash=hash_secret(issued) if issued else None,
            jwks=jwks,
        )
        session.add(agency)
        session.flush()
        self.audit.append(session, Event(Action.AGENCY_REGISTERED, actor, detail={"client": client_id}))
        return agency, issued

    def get(self, session: Session, client_id: str) -> Agency | None:
        return session.scalars(select(Agency).where(Agency.client_id == client_id)).first()

    def all(self, session: Session) -> list[Agency]:
        return list(session.scalars(select(Agency).order_by(col(Agency.client_id))))

    def info(self, session: Session, client_id: str) -> AgencyInfo:
        """What a request's policy decisions need of its agency, read afresh (a suspension counts at once): the
        five columns only, on every agency request, rather than the whole row with its keys and URIs."""
        found = session.connection().execute(_INFO, {"client_id": client_id}).first()
        if found is None:
            raise KeyError(client_id)
        category, department, suspended_at, service_items = found
        return AgencyInfo(
            client_id=client_id,
            category=category,
            department=department,
            suspended=suspended_at is not None,
            service_items=tuple(service_items),
        )

    def info_remembered(self, session: Session, client_id: str) -> AgencyInfo:
        """`info`, answered from this process's memory for an agency found unsuspended before.

        An agency's category, department and service items never change once it is registered; only a suspension
        could be missed, so a caller that releases anything must check it in the transaction that records the
        release (TokenService.require_unrevoked and require_all_live do, with the token): a suspension committed by
        any worker is then honoured by the very next request everywhere.
        """
        info = self._remembered.get(client_id)
        if info is None:
            info = self.info(session, client_id)
            if not info.suspended:  # a suspended agency is read afresh every time, so a reinstatement counts at once
                if len(self._remembered) >= REMEMBERED_AGENCIES:
                    self._remembered.clear()
                self._remembered[client_id] = info
        return info

    def display_name(self, session: Session, client_id: str, lang: str) -> str:
        agency = self.get(session, client_id)
        if agency is None:
            return client_id
        return agency.name_en if lang == "en" else agency.name_zh

    def suspend(self, session: Session, client_id: str, *, actor: str, reason: str) -> Agency:
        agency = self.get(session, client_id)
        if agency is None:
            raise AgencyError(f"no agency {client_id!r}")
        if agency.suspended_at is not None:
            raise AgencyError(f"{client_id} is already suspended")
        agency.suspended_at, agency.suspended_reason = utcnow(), reason
        self.audit.append(session, Event(Action.AGENCY_SUSPENDED, actor, reason=reason, detail={"client": client_id}))
        return agency

    def reinstate(self, session: Session, client_id: str, *, actor: str, reason: str | None = None) -> Agency:
        agency = self.get(session, client_id)
        if agency is None:
            raise AgencyError(f"no agency {client_id!r}")
        if agency.suspended_at is None:
            raise AgencyError(f"{client_id} is not suspended")
        agency.suspended_at, agency.suspended_reason = None, None
        event = Event(Action.AGENCY_REINSTATED, actor, reason=reason, detail={"client": client_id})
        self.audit.append(session, event)
        return agency


def secret_matches(agency: Agency, secret: str) -> bool:
    return agency.secret_hash is not None and hmac.compare_digest(agency.secret_hash, hash_secret(secret))
