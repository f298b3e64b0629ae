"""The grants the vault's token endpoint knows, each overriding only what Authlib leaves to storage and policy.

Departures from Authlib's defaults, each deliberate (RFC 9700):
- PKCE with S256 is required of every client, confidential ones too; `plain` and a missing challenge are refused;
- a code is single use: a second redemption fails and revokes every token the first one produced;
- refresh tokens rotate; presenting a rotated one revokes the whole family;
- tokens carry the granted authorization_details, never more than the consent.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    AuthorizationCodeMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
    grants,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import update
from sqlmodel import col, select

from vault.audit.events import Action, Event
from vault.audit.services import AuditLog
from vault.clock import utcnow
from vault.consent.errors import GrantNotLive
from vault.consent.lifecycle import RequestState
from vault.consent.models import ConsentRequest, Grant
from vault.consent.services import ConsentService
from vault.mandates.errors import MandateRefused
from vault.mandates.services import MandateClaim, MandateRequest, MandateService
from vault.oauth import rar
from vault.oauth.adapter import current_session
from vault.oauth.agencies import AgencyRegistry
from vault.oauth.clients import Client
from vault.oauth.errors import (
    AuthorizationPendingError,
    ExpiredTokenError,
    InvalidAuthorizationDetailsError,
    SlowDownError,
    safe_description,
)
from vault.oauth.models import AuthorizationCode, Token
from vault.oauth.scopes import AuthMethod, GrantType, Scope
from vault.oauth.tokens import IssuedTokens, TokenService, digest
from vault.policy.engine import PolicyEngine
from vault.policy.errors import UnknownMandate

CODE_LIFETIME = timedelta(seconds=60)
AUTH_METHODS = [AuthMethod.CLIENT_SECRET_BASIC.value, AuthMethod.PRIVATE_KEY_JWT.value]
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
NO_STORE = [("Content-Type", "application/json"), ("Cache-Control", "no-store"), ("Pragma", "no-cache")]


@dataclass
class OAuthContext:
    """What the grants need from the rest of the vault, hung on the Authlib server."""

    consent: ConsentService
    tokens: TokenService
    audit: AuditLog
    agencies: AgencyRegistry
    policy: PolicyEngine
    issuer: str


def ctx(grant: Any) -> OAuthContext:
    context: OAuthContext = grant.server.context
    return context


def require_s256(challenge: str | None, method: str | None) -> None:
    """PKCE for every authorization request: an S256 challenge, nothing else."""
    if not challenge:
        raise InvalidRequestError("code_challenge is required (PKCE with S256)")
    if method != "S256":
        raise InvalidRequestError("code_challenge_method must be S256")
    if not _VERIFIER.match(challenge):
        raise InvalidRequestError("code_challenge is malformed")


def record_tokens(
    context: OAuthContext, issued: IssuedTokens, grant_type: str, reason: str, official: str | None = None
) -> None:
    row = issued.row
    context.audit.append(
        current_session(),
        Event(
            Action.TOKEN_ISSUED,
            f"agency:{row.client_id}",
            owner_id=row.owner_id,
            official=official,
            grant_id=row.grant_id,
            reason=reason,
            detail={"grant_type": grant_type, "token": str(row.id)},
        ),
    )


def live_grant(context: OAuthContext, grant_id: uuid.UUID | None, client_id: str) -> Grant:
    """The grant behind a credential, if it is in force for this client (the consent service's one rule)."""
    try:
        return context.consent.live_grant(current_session(), grant_id, client_id)
    except GrantNotLive as error:
        raise InvalidGrantError(f"the consent behind this credential is no longer in force: {error}") from None


def proof_key(grant: Any) -> str | None:
    """The thumbprint of the DPoP key the token request proved possession of (None: no proof was sent)."""
    jkt: str | None = getattr(grant.request, "dpop_jkt", None)
    return jkt


def tokens_for_grant(
    context: OAuthContext, client: Client, grant: Grant, code_hash: bytes | None, jkt: str | None = None
) -> IssuedTokens:
    refresh_until = grant.valid_until if client.check_grant_type(GrantType.REFRESH_TOKEN) else None
    return context.tokens.issue(
        current_session(),
        client_id=grant.client_id,
        scope=[Scope.LICENCES_READ.value],
        grant_id=grant.id,
        owner_id=grant.owner_id,
        authorization_details=rar.granted_licence_access(grant.service_item, grant.fields, grant.questions),
        refresh_until=refresh_until,
        code_hash=code_hash,
        jkt=jkt,
    )


def with_receipt(issued: IssuedTokens, grant: Grant) -> dict[str, Any]:
    """The token response of a consent: the tokens, the grant's id and the vault-signed consent receipt."""
    return {**issued.response(), "grant_id": str(grant.id), "consent_receipt": grant.receipt}


class CodeView(AuthorizationCodeMixin):
    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def query_authorization_code(self, code: str, client: Client) -> CodeView | None:
        session = current_session()
        row = session.get(AuthorizationCode, digest(code))
        if row is None or row.client_id != client.get_client_id():
            return None  # another client's code: refused, and the owner client's tokens are left alone
        if row.used_at is not None:
            revoked = ctx(self).tokens.revoke_code(session, row.code_hash)
            ctx(self).audit.append(
                session,
                Event(
                    Action.TOKEN_CODE_REPLAYED,
                    f"agency:{row.client_id}",
                    owner_id=row.owner_id,
                    grant_id=row.grant_id,
                    reason="authorization code presented twice",
                    detail={"revoked_tokens": revoked},
                ),
            )
            return None
        if row.expires_at <= utcnow():
            return None
        return CodeView(row)

    def validate_token_request(self) -> None:
        super().validate_token_request()
        code: AuthorizationCode = self.request.authorization_code.row
        verifier = self.request.form.get("code_verifier")
        if not verifier:
            raise InvalidRequestError("code_verifier is required")
        if not _VERIFIER.match(verifier):
            raise InvalidRequestError("code_verifier must be 43-128 unreserved characters")
        if create_s256_code_challenge(verifier) != code.code_challenge:
            raise InvalidGrantError("code_verifier does not match the code_challenge")
        if code.dpop_jkt is not None and code.dpop_jkt != proof_key(self):
            raise InvalidGrantError("the authorization code is bound to a DPoP key: prove possession of that key")

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        session = current_session()
        code: AuthorizationCode = self.request.authorization_code.row
        claimed = session.execute(
            update(AuthorizationCode)
            .where(col(AuthorizationCode.code_hash) == code.code_hash, col(AuthorizationCode.used_at).is_(None))
            .values(used_at=utcnow())
        )
        if not getattr(claimed, "rowcount", 0):
            raise InvalidGrantError("the authorization code was already used")  # lost a parallel redemption
        grant = live_grant(ctx(self), code.grant_id, code.client_id)
        issued = tokens_for_grant(ctx(self), self.request.client, grant, code.code_hash, proof_key(self))
        record_tokens(ctx(self), issued, self.GRANT_TYPE, "authorization code redeemed")
        return 200, with_receipt(issued, grant), NO_STORE

    def authenticate_user(self, authorization_code: CodeView) -> Any:
        return authorization_code.row.owner_id

    def delete_authorization_code(self, authorization_code: CodeView) -> None:
        pass  # kept, marked used, so a replay can be recognised and punished


def issue_code(context: OAuthContext, request: ConsentRequest, grant: Grant) -> str:
    """The authorization code for an approved redirect request: 60 seconds, bound to client, URI and PKCE."""
    code = generate_token(48)
    current_session().add(
        AuthorizationCode(
            code_hash=digest(code),
            client_id=request.client_id,
            grant_id=grant.id,
            owner_id=grant.owner_id,
            redirect_uri=request.oauth["redirect_uri"],
            scope=request.oauth.get("scope", ""),
            code_challenge=request.oauth["code_challenge"],
            dpop_jkt=request.oauth.get("dpop_jkt"),
            expires_at=utcnow() + CODE_LIFETIME,
        )
    )
    return code


class RotatingRefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Any:
        from vault.oauth.clients import TokenView

        session = current_session()
        row = ctx(self).tokens.by_refresh(session, refresh_token)
        if row is None:
            return None
        if row.refresh_used_at is not None and row.revoked_at is None:
            self._replayed(row)
            return None
        if not ctx(self).tokens.refresh_usable(row):
            return None
        return TokenView(row, "refresh_token")

    def _replayed(self, row: Token) -> None:
        session = current_session()
        revoked = ctx(self).tokens.revoke_family(session, row.family_id)
        ctx(self).audit.append(
            session,
            Event(
                Action.TOKEN_REFRESH_REPLAYED,
                f"agency:{row.client_id}",
                owner_id=row.owner_id,
                grant_id=row.grant_id,
                reason="rotated refresh token presented again: family revoked",
                detail={"revoked_tokens": revoked},
            ),
        )

    def authenticate_user(self, refresh_token: Any) -> Any:
        return refresh_token.row.owner_id or "client"

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        session = current_session()
        old: Token = self.request.refresh_token.row
        claimed = session.execute(
            update(Token)
            .where(col(Token.id) == old.id, col(Token.refresh_used_at).is_(None), col(Token.revoked_at).is_(None))
            .values(refresh_used_at=utcnow())
        )
        if not getattr(claimed, "rowcount", 0):
            raise InvalidGrantError("the refresh token was already used")
        grant = live_grant(ctx(self), old.grant_id, old.client_id)
        scope = self.request.payload.scope
        issued = ctx(self).tokens.issue(
            session,
            client_id=old.client_id,
            scope=scope.split() if scope else old.scope.split(),
            grant_id=grant.id,
            owner_id=old.owner_id,
            authorization_details=old.authorization_details,
            refresh_until=old.refresh_expires_at,
            family_id=old.family_id,
            code_hash=old.code_hash,
            jkt=old.jkt or proof_key(self),
        )
        record_tokens(ctx(self), issued, self.GRANT_TYPE, "refresh token rotated")
        return 200, issued.response(), NO_STORE

    def validate_token_request(self) -> None:
        client = self._validate_request_client()
        self.request.client = client
        token = self._validate_request_token(client)
        self.request.refresh_token = token
        self._validate_token_scope(token)

    def _validate_request_token(self, client: Client) -> Any:
        refresh_token = self.request.form.get("refresh_token")
        if refresh_token is None:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        token = self.authenticate_refresh_token(refresh_token)
        if not token or not token.check_client(client):
            raise InvalidGrantError()
        if token.row.jkt is not None and token.row.jkt != proof_key(self):
            raise InvalidGrantError("the refresh token is bound to a DPoP key: prove possession of that key")
        return token

    def _validate_token_scope(self, token: Any) -> None:
        scope = self.request.payload.scope
        if scope and not set(scope.split()) <= set(token.get_scope().split()):
            raise InvalidScopeError("a refresh may not widen the scope")


class ClientCredentials(grants.ClientCredentialsGrant):
    """For reads under a legal mandate (case, owners, official) and for API rights such as verification."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        session = current_session()
        client: Client = self.request.client
        scopes = (self.request.payload.scope or "").split()
        if not scopes or not set(scopes) <= set(client.agency.scopes):
            raise InvalidScopeError("ask only for scopes the agency is registered for")
        details: list[dict[str, Any]] = []
        reason = "client credentials"
        official = None
        if Scope.LICENCES_READ in scopes:
            claim = self._mandate_claim(client)
            details, official = [claim.details()], claim.official
            reason = f"legal mandate {claim.mandate}"
        issued = ctx(self).tokens.issue(
            session,
            client_id=client.get_client_id(),
            scope=scopes,
            grant_id=None,
            owner_id=None,
            authorization_details=details,
            refresh_until=None,
            jkt=proof_key(self),
        )
        record_tokens(ctx(self), issued, self.GRANT_TYPE, reason, official=official)
        return 200, issued.response(), NO_STORE

    def _mandate_claim(self, client: Client) -> MandateClaim:
        """The checked mandate a licences:read token carries; a refusal is recorded, then answered."""
        context, session = ctx(self), current_session()
        asked = rar.legal_mandate(self.request.payload.data.get("authorization_details"))
        try:
            known = context.policy.catalogue.mandate(asked.mandate)
        except (LookupError, UnknownMandate):
            raise InvalidAuthorizationDetailsError(f"no legal mandate {asked.mandate!r}") from None
        if client.agency.category not in known.agency_categories or client.agency.department not in known.departments:
            self._refused(client, known.id, f"this agency may not invoke {known.id}")
            raise UnauthorizedClientError(f"this agency may not invoke {known.id}")
        service = MandateService(context.consent.keys, context.audit, context.policy.catalogue)
        request = MandateRequest(
            asked.case_reference, asked.owners, asked.official, asked.official_name, asked.sensitive_fields
        )
        try:
            return service.claim(session, known, request, utcnow())
        except MandateRefused as error:
            # an identifier's message may quote part of it (a birth date): the log keeps only the rule's name
            logged = error.message.split(":")[0] if error.field.startswith("owners") else error.message
            self._refused(client, known.id, logged)
            raise InvalidAuthorizationDetailsError(safe_description(error.message)) from None

    def _refused(self, client: Client, mandate: str, reason: str) -> None:
        ctx(self).audit.append(
            current_session(),
            Event(
                Action.TOKEN_REFUSED,
                f"agency:{client.get_client_id()}",
                mandate=mandate,
                decision="deny",
                reason=reason,
                detail={"grant_type": self.GRANT_TYPE},
            ),
        )


class CibaGrant(grants.BaseGrant, grants.TokenEndpointMixin):
    """OpenID CIBA, poll mode: the agency polls with the auth_req_id until the owner decides."""

    GRANT_TYPE = GrantType.CIBA.value
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("the client may not use the CIBA grant")
        auth_req_id = self.request.form.get("auth_req_id")
        if not auth_req_id:
            raise InvalidRequestError("auth_req_id is required")
        session = current_session()
        request = session.scalars(
            select(ConsentRequest).where(ConsentRequest.auth_req_hash == hashlib.sha256(auth_req_id.encode()).digest())
        ).first()
        if request is None or request.client_id != client.get_client_id():
            raise InvalidGrantError("unknown auth_req_id")
        self.request.client = client
        self.request.credential = request

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        session = current_session()
        request: ConsentRequest = self.request.credential
        now = utcnow()
        ctx(self).consent.expire_if_stale(session, request)
        if request.state == RequestState.EXPIRED:
            raise ExpiredTokenError("the request expired before the owner decided")
        if request.state == RequestState.DENIED:
            raise AccessDeniedError("the owner denied the request")
        if request.state == RequestState.PENDING:
            too_soon = (
                request.last_polled_at is not None
                and request.last_polled_at + timedelta(seconds=request.interval) > now
            )
            request.last_polled_at = now
            if too_soon:
                request.interval += 5
                raise SlowDownError(f"poll at most every {request.interval} seconds")
            raise AuthorizationPendingError("the owner has not decided yet")
        spent = session.execute(
            update(ConsentRequest)
            .where(
                col(ConsentRequest.id) == request.id,
                col(ConsentRequest.state) == RequestState.APPROVED.value,
                col(ConsentRequest.auth_req_hash).is_not(None),
            )
            .values(auth_req_hash=None)
            .returning(col(ConsentRequest.grant_id))
            .execution_options(synchronize_session=False)
        ).first()
        if spent is None:  # one set of tokens per approval: another poll spent the id a moment ago
            raise InvalidGrantError("auth_req_id was already used")
        grant = live_grant(ctx(self), spent[0], request.client_id)
        issued = tokens_for_grant(ctx(self), self.request.client, grant, None, proof_key(self))
        record_tokens(ctx(self), issued, self.GRANT_TYPE, "backchannel consent")
        return 200, with_receipt(issued, grant), NO_STORE
