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
from vault.consent.errors import GrantNotLive
from vault.consent.models import Grant
from vault.oauth.scopes import Scope
from vault.oauth.tokens import SUSPENDED, TokenInfo
from vault.policy.engine import AgencyInfo, FieldDecision
from vault.wiring import Vault

DecisionKey = tuple[uuid.UUID, str, str]  # owner, licence type, field


@dataclass(frozen=True)
class RequestInfo:
    vault: Vault
    bearer: str | None  # the access token, sent as `Bearer <token>` or `DPoP <token>`
    request_id: str
    scheme: str = "bearer"  # "bearer" or "dpop" (RFC 9449 §7.1)
    dpop: str | None = None  # the DPoP header: a proof, checked and spent before the request runs
    proof_jkt: str | None = None  # the key of that proof once it was verified and its jti claimed


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


def access_token(authorization: str | None) -> tuple[str, str | None]:
    """The scheme ("bearer" or "dpop") and token of an Authorization header; (scheme, None) when malformed."""
    if not authorization:
        return "bearer", None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() not in ("bearer", "dpop"):
        return "bearer", None
    return scheme.lower(), (token if token and " " not in token else None)


def check_binding(request: RequestInfo, info: TokenInfo) -> None:
    """A DPoP-bound token only with a proof by its key (sent as DPoP); an unbound one only as Bearer, and never in
    production mode, where every agency's tokens are sender-constrained (FAPI 2.0)."""
    if info.jkt is not None:
        if request.scheme != "dpop":
            raise Unauthenticated("this access token is DPoP-bound: send it as `Authorization: DPoP` with a proof")
        if request.proof_jkt != info.jkt:
            raise Unauthenticated("the DPoP proof was not signed by the key this access token is bound to")
        return
    if request.vault.settings.is_production:
        raise Unauthenticated("production mode accepts only DPoP-bound access tokens (RFC 9449)")
    if request.scheme == "dpop":
        raise Unauthenticated("this access token is not DPoP-bound: send it as `Authorization: Bearer`")


def get_context(request: RequestInfo, session: Session, *, write: bool = True) -> Context:
    """Authenticate the bearer token in-process and build the context; raises Unauthenticated.

    `write` is False in a read-only unit of work: a grant past its validity is then refused without being written.
    A token is accepted only while it is unexpired and unrevoked, its client is registered and not suspended,
    and the grant it was issued under (if any) is in force (the consent service's rule). That is checked again
    when the request's use is counted, in the database, just before it commits (ConsentService.use).
    """
    vault = request.vault
    tokens = vault.tokens
    # a query may authenticate from memory: its write checks the token unrevoked before anything is released
    info = (
        tokens.introspect(session, request.bearer or "")
        if write
        else tokens.introspect_remembered(session, request.bearer or "")
    )
    if info is None:
        raise Unauthenticated("the access token is missing, unknown, expired or revoked")
    check_binding(request, info)
    try:  # a query may take a live agency from memory: its write checks the suspension with the token
        agency = (
            vault.agencies.info(session, info.client_id)
            if write
            else vault.agencies.info_remembered(session, info.client_id)
        )
    except KeyError:
        raise Unauthenticated("the client of this access token is not registered") from None
    if agency.suspended:
        raise Unauthenticated(SUSPENDED)
    grant = None
    if info.grant_id is not None:
        try:
            grant = vault.consent.live_grant(session, info.grant_id, info.client_id, write=write)
        except GrantNotLive as error:
            raise Unauthenticated(f"the consent behind this access token is no longer in force: {error}") from None
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
