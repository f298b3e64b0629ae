"""The per-request GraphQL context: who is asking (from the access token alone), the unit of work, the loaders.

`RequestInfo` is what the HTTP view gathers on the event loop without any I/O; `get_context` runs in the worker
thread, inside the request's one unit of work, and authenticates before any resolver runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from vault import clock
from vault.api.errors import Forbidden, Unauthenticated
from vault.api.loaders import Loaders
from vault.api.reads import Authority, ReadLedger, authority_of
from vault.consent.errors import GrantNotFound
from vault.consent.lifecycle import GrantState
from vault.consent.models import Grant
from vault.oauth.scopes import Scope
from vault.oauth.tokens import TokenInfo
from vault.policy.engine import AgencyInfo, FieldDecision
from vault.wiring import Vault

DecisionKey = tuple[uuid.UUID, str, str]  # owner, licence type, field


@dataclass(frozen=True)
class RequestInfo:
    vault: Vault
    bearer: str | None
    request_id: str


@dataclass
class Context:
    vault: Vault
    session: Session
    request_id: str
    token: TokenInfo
    agency: AgencyInfo
    grant: Grant | None
    now: datetime
    loaders: Loaders
    reads: ReadLedger = field(default_factory=ReadLedger)
    decisions: dict[DecisionKey, FieldDecision] = field(default_factory=dict)
    _authority: Authority | None = None

    def require(self, scope: Scope) -> None:
        if not self.token.has_scope(scope):
            raise Forbidden(f"this operation needs the {scope.value} scope", scope=scope.value)

    def authority(self) -> Authority:
        if self._authority is None:
            self._authority = authority_of(self.token, self.grant)
        return self._authority

    @property
    def read_authority(self) -> Authority | None:
        """The authority of the reads made so far, if any (what the access events are recorded under)."""
        return self._authority


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1), or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token and " " not in token else None


def get_context(request: RequestInfo, session: Session) -> Context:
    """Authenticate the bearer token in-process and build the context; raises Unauthenticated.

    A token is accepted only while it is unexpired and unrevoked, its client is registered and not suspended,
    and the grant it was issued under (if any) is still active: the grant is re-read, its expiry applied, and
    its row locked until the request commits, so two requests cannot both spend a grant's last use.
    """
    vault = request.vault
    info = vault.tokens.introspect(session, request.bearer or "")
    if info is None:
        raise Unauthenticated("the access token is missing, unknown, expired or revoked")
    try:
        agency = vault.agencies.info(session, info.client_id)
    except KeyError:
        raise Unauthenticated("the client of this access token is not registered") from None
    if agency.suspended:
        raise Unauthenticated("the client of this access token is suspended")
    grant = None
    if info.grant_id is not None:
        session.get(Grant, info.grant_id, with_for_update=True)
        try:
            grant = vault.consent.grant(session, info.grant_id)
        except GrantNotFound:
            raise Unauthenticated("the consent behind this access token is no longer in force") from None
        if grant.state != GrantState.ACTIVE or grant.client_id != info.client_id:
            raise Unauthenticated("the consent behind this access token is no longer in force")
    return Context(
        vault=vault,
        session=session,
        request_id=request.request_id,
        token=info,
        agency=agency,
        grant=grant,
        now=clock.utcnow(),
        loaders=Loaders(vault, session),
    )
