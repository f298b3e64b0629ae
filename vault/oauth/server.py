"""The vault's authorization server: Authlib wired once, plus PAR, CIBA and the split consent step."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from sqlalchemy import update
from sqlmodel import col

from vault.audit.events import Action, Event
from vault.clock import utcnow
from vault.consent import kinds
from vault.consent.errors import ConsentError, InvalidAuthorizationDetails, RequestNotAllowed
from vault.consent.models import ConsentRequest, Grant
from vault.crypto.free_text import OwnerTexts
from vault.oauth import dpop, rar
from vault.oauth.adapter import VaultOAuth2Request, current_session
from vault.oauth.clients import Client, PrivateKeyJwt, TokenView
from vault.oauth.errors import (
    InvalidAuthorizationDetailsError,
    InvalidDpopProofError,
    ascii_description,
    safe_description,
)
from vault.oauth.grants import (
    AUTH_METHODS,
    NO_STORE,
    CibaGrant,
    ClientCredentials,
    CodeGrant,
    OAuthContext,
    RotatingRefreshGrant,
    issue_code,
    require_s256,
)
from vault.oauth.models import PushedRequest
from vault.oauth.scopes import GrantType, Scope
from vault.oauth.tokens import digest
from vault.owners.errors import InvalidIdentifier, InvalidText
from vault.owners.free_text import clean_text
from vault.owners.models import OwnerKind
from vault.policy.errors import UnknownServiceItem

PAR_LIFETIME = timedelta(seconds=60)
OPENED_AS = "opened_as_consent_request"  # kept with a used pushed request: the consent request it became
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
CIBA_INTERVAL = 5
BINDING_MESSAGE_MAX = 60
BINDING_TEXT = "binding-message"  # owner_texts kind; the note's id is kept in the request's oauth["binding_note"]
Response = tuple[int, Any, list[tuple[str, str]]]


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenView | None:
        tokens = self.server.context.tokens
        session = current_session()
        if token_type_hint != "refresh_token":
            row = tokens.by_access(session, token_string)
            if row is not None:
                return TokenView(row, "access_token")
        row = tokens.by_refresh(session, token_string)
        return TokenView(row, "refresh_token") if row is not None else None

    def check_permission(self, token: TokenView, client: Client, request: Any) -> bool:
        return token.check_client(client)  # an agency introspects its own tokens only

    def introspect_token(self, token: TokenView) -> dict[str, Any]:
        row = token.row
        if row.grant_id is not None:
            consent = self.server.context.consent
            if consent.why_not_live(consent.grant(current_session(), row.grant_id), utcnow(), row.client_id):
                return {"active": False}
        expires = row.refresh_expires_at if token.kind == "refresh_token" else row.access_expires_at
        body: dict[str, Any] = {
            "active": True,
            "iss": self.server.context.issuer,
            "client_id": row.client_id,
            "scope": row.scope,
            "token_type": ("DPoP" if row.jkt else "Bearer") if token.kind == "access_token" else "refresh_token",
            "iat": int(row.issued_at.timestamp()),
            "exp": int(expires.timestamp()) if expires else None,
            "authorization_details": row.authorization_details,
        }
        if row.jkt:
            body["cnf"] = {"jkt": row.jkt}  # RFC 9449 §6.2
        if row.owner_id:
            body["sub"] = str(row.owner_id)
        if row.grant_id:
            body["grant_id"] = str(row.grant_id)
        return body


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenView | None:
        return Introspection.query_token(self, token_string, token_type_hint)

    def revoke_token(self, token: TokenView, request: Any) -> None:
        context, session, row = self.server.context, current_session(), token.row
        if token.kind == "refresh_token":
            revoked = context.tokens.revoke_family(session, row.family_id)  # RFC 7009 §2.1: its access tokens too
        else:
            revoked = context.tokens.revoke_row(session, row)
        if revoked:  # revoking an already revoked token changes nothing and is not recorded again
            context.audit.append(
                session,
                Event(
                    Action.TOKEN_REVOKED,
                    f"agency:{row.client_id}",
                    owner_id=row.owner_id,
                    grant_id=row.grant_id,
                    reason="revoked by the agency (RFC 7009)",
                    detail={"token_type": token.kind, "token": str(row.id), "revoked_tokens": revoked},
                ),
            )


class VaultAuthorizationServer(AuthorizationServer):
    def __init__(self, context: OAuthContext) -> None:
        super().__init__(scopes_supported=[s.value for s in Scope])
        self.context = context
        self.register_grant(CodeGrant)
        self.register_grant(RotatingRefreshGrant)
        self.register_grant(ClientCredentials)
        self.register_grant(CibaGrant)
        self.register_endpoint(Introspection)
        self.register_endpoint(Revocation)
        endpoints = [
            "/oauth/token",
            "/oauth/par",
            "/oauth/bc-authorize",
            "/oauth/introspect",
            "/oauth/revoke",
            "/oauth/grant",
        ]
        self.register_client_auth_method(
            PrivateKeyJwt.CLIENT_AUTH_METHOD, PrivateKeyJwt([context.issuer, *(context.issuer + e for e in endpoints)])
        )

    def query_client(self, client_id: str) -> Client | None:
        agency = self.context.agencies.get(current_session(), client_id)
        if agency is None or agency.suspended_at is not None:
            return None
        return Client(agency)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        raise NotImplementedError("each grant stores its own tokens")

    def create_oauth2_request(self, request: Any) -> Any:
        return request

    def create_json_request(self, request: Any) -> Any:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        return status, body, list(headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def handle_error_response(self, request: Any, error: OAuth2Error) -> Response:
        status, body, headers = error(self.get_error_uri(request, error))
        if isinstance(body, dict) and body.get("error_description"):
            body["error_description"] = ascii_description(str(body["error_description"]))  # echoes client input
        headers = [(k, v) for k, v in headers if k.lower() != "www-authenticate"]
        if isinstance(error, InvalidClientError):
            status = 401  # every client-authentication failure, whatever the method (RFC 6749 §5.2)
            headers.append(("WWW-Authenticate", 'Basic realm="vault"'))
        return status, body, [*headers, ("Cache-Control", "no-store")]


@dataclass(frozen=True)
class Redirect:
    location: str


@dataclass(frozen=True)
class ErrorPage:
    """An authorization error that must not redirect (unknown client, unregistered redirect URI)."""

    error: str
    description: str
    stale_link: bool = False  # the agency's link was opened too late or twice: the page tells the person what to do


class OAuthService:
    """The endpoints' logic; every method runs inside a unit of work (see adapter.in_unit_of_work)."""

    def __init__(self, context: OAuthContext) -> None:
        self.context = context
        self.server = VaultAuthorizationServer(context)

    def _no_duplicates(self, request: VaultOAuth2Request) -> None:
        duplicated = request.payload.duplicates()
        if duplicated:
            raise InvalidRequestError(ascii_description(f"parameter '{duplicated[0]}' appears more than once"))

    def _client(self, request: VaultOAuth2Request) -> Client:
        client: Client = self.server.authenticate_client(request, AUTH_METHODS, "token")
        return client

    # pushed authorization requests (RFC 9126) and the authorization endpoint

    def push(self, request: VaultOAuth2Request) -> Response:
        """Validate a whole authorization request up front and hold it behind a one-time request_uri."""
        try:
            self._no_duplicates(request)
            client = self._client(request)
            params = dict(request.form)
            for secret in ("client_secret", "client_assertion", "client_assertion_type"):
                params.pop(secret, None)
            if "request_uri" in params:
                raise InvalidRequestError("request_uri may not be pushed")
            if params.get("client_id", client.get_client_id()) != client.get_client_id():
                raise InvalidRequestError("client_id does not match the authenticated client")
            params["client_id"] = client.get_client_id()
            self._bind_code(request, params)
            self._validate_authorization(client, params)
        except OAuth2Error as error:
            return self.server.handle_error_response(request, error)
        uri = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
        current_session().add(
            PushedRequest(
                uri_hash=digest(uri),
                client_id=client.get_client_id(),
                params=params,
                expires_at=utcnow() + PAR_LIFETIME,
            )
        )
        return 201, {"request_uri": uri, "expires_in": int(PAR_LIFETIME.total_seconds())}, NO_STORE

    def _prove(self, request: VaultOAuth2Request, path: str) -> str | None:
        """Verify and spend the request's DPoP proof, if it sent one (required in production mode): its key's jkt."""
        header = request.headers.get("Dpop")
        if header is None and not request.dpop_required:
            return None
        now = utcnow()
        try:
            proof = dpop.verify(header, method="POST", url=self.context.issuer + path, now=now)
            dpop.claim(current_session(), proof, now)
        except dpop.InvalidProof as error:
            raise InvalidDpopProofError(ascii_description(error.description)) from None
        request.dpop_jkt = proof.jkt
        return proof.jkt

    def _bind_code(self, request: VaultOAuth2Request, params: dict[str, str]) -> None:
        """PAR (RFC 9449 §10): the code will be bound to `dpop_jkt` or to the key of the request's DPoP proof."""
        named = params.get("dpop_jkt")
        if named is not None and not dpop.is_thumbprint(named):
            raise InvalidRequestError("dpop_jkt must be the base64url SHA-256 thumbprint of a key (RFC 7638)")
        if named is None and request.headers.get("Dpop") is None and request.dpop_required:
            raise InvalidDpopProofError("a DPoP proof or dpop_jkt is required: the code is bound to the agency's key")
        proven = self._prove(request, "/oauth/par") if request.headers.get("Dpop") is not None else None
        if named is not None and proven is not None and named != proven:
            raise InvalidDpopProofError("dpop_jkt does not match the key of the DPoP proof")
        if named or proven:
            params["dpop_jkt"] = named or proven or ""

    def _validate_authorization(self, client: Client, params: dict[str, str]) -> None:
        if params.get("response_type") != "code":
            raise InvalidRequestError("response_type must be code")
        if not client.check_response_type("code"):
            raise InvalidRequestError("this client may not use the authorization code grant")
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri and len(client.agency.redirect_uris) > 1:
            raise InvalidRequestError("redirect_uri is required: the client has several")
        if redirect_uri and not client.check_redirect_uri(redirect_uri):
            raise InvalidRequestError("redirect_uri is not registered for this client (exact match)")
        params["redirect_uri"] = redirect_uri or client.agency.redirect_uris[0]
        if not params.get("state"):
            raise InvalidRequestError("state is required")
        require_s256(params.get("code_challenge"), params.get("code_challenge_method"))
        scope = params.get("scope", "")
        if scope and client.get_allowed_scope(scope) != scope:
            raise InvalidRequestError("scope asks for more than the client is registered for")
        access = rar.licence_access(params.get("authorization_details"))
        try:
            item = self.context.policy.catalogue.item(access.service_item)
            self.context.consent.requested(item, access.fields, access.questions)
            if params.get("login_hint"):  # the owner is named: the fields must be ones that owner can hold
                self._check_fits(self._owner_by_hint(params["login_hint"])[0], access)
        except InvalidAuthorizationDetails as error:
            raise InvalidAuthorizationDetailsError(str(error)) from None
        except (LookupError, UnknownServiceItem):
            raise InvalidAuthorizationDetailsError(f"no service item {access.service_item!r}") from None
        if access.service_item not in client.agency.service_items:
            raise InvalidAuthorizationDetailsError(f"the agency does not perform {access.service_item}")

    def authorize(self, request: VaultOAuth2Request) -> Redirect | ErrorPage:
        """GET /oauth/authorize: turn a pushed request into a consent request and send the browser to it."""
        try:
            self._no_duplicates(request)
        except OAuth2Error as error:
            return ErrorPage(error.error, error.description or "")
        session = current_session()
        client_id, request_uri = request.args.get("client_id"), request.args.get("request_uri")
        agency = self.context.agencies.get(session, client_id or "")
        if agency is None or agency.suspended_at is not None:
            return ErrorPage("invalid_client", "unknown or suspended client")
        if not request_uri:
            return ErrorPage("invalid_request", "this client must push its authorization request first (PAR)")
        now = utcnow()
        pushed = session.execute(  # single use, claimed in the database: of parallel attempts exactly one wins
            update(PushedRequest)
            .where(
                col(PushedRequest.uri_hash) == digest(request_uri),
                col(PushedRequest.client_id) == agency.client_id,
                col(PushedRequest.used_at).is_(None),
                col(PushedRequest.expires_at) > now,
            )
            .values(used_at=now)
            .returning(col(PushedRequest.params))
            .execution_options(synchronize_session=False)
        ).first()
        if pushed is None:
            opened = session.get(PushedRequest, digest(request_uri))
            if opened is not None and opened.client_id == agency.client_id and opened.params.get(OPENED_AS):
                return Redirect(f"/consent/{opened.params[OPENED_AS]}")  # opened again: the page says where it stands
            return ErrorPage("invalid_request", "request_uri is unknown, expired or already used", stale_link=True)
        params: dict[str, str] = dict(pushed[0])
        access = rar.licence_access(params.get("authorization_details"))
        try:
            consent = self.context.consent.open_request(
                session,
                client_id=agency.client_id,
                item_code=access.service_item,
                fields=access.fields,
                questions=access.questions,
                kind="redirect",
                owner_id=self._hinted_owner(params.get("login_hint")),
                oauth={
                    "redirect_uri": params["redirect_uri"],
                    "state": params["state"],
                    "code_challenge": params["code_challenge"],
                    "scope": params.get("scope", ""),
                    **({"dpop_jkt": params["dpop_jkt"]} if params.get("dpop_jkt") else {}),
                },
            )
        except (RequestNotAllowed, InvalidAuthorizationDetails) as error:
            return Redirect(self._error_location(params["redirect_uri"], params["state"], "access_denied", str(error)))
        session.execute(  # remembered, so that the link opened again leads back to this consent request
            update(PushedRequest)
            .where(col(PushedRequest.uri_hash) == digest(request_uri))
            .values(params={**params, OPENED_AS: str(consent.id)})
            .execution_options(synchronize_session=False)
        )
        return Redirect(f"/consent/{consent.id}")

    def _hinted_owner(self, hint: str | None) -> uuid.UUID | None:
        """The owner a pushed login_hint named (checked at PAR), so the request waits in their inbox."""
        if not hint:
            return None
        try:
            return self._owner_by_hint(hint)[1]
        except OAuth2Error:
            return None  # erased since it was pushed: whoever opens it decides, as without a hint

    def _error_location(self, redirect_uri: str, state: str, error: str, description: str | None = None) -> str:
        params = [("error", error), ("state", state), ("iss", self.context.issuer)]
        if description:
            params.append(("error_description", description))
        return str(add_params_to_uri(redirect_uri, params))

    def approved(self, request: ConsentRequest, grant: Grant) -> str:
        """Where the browser goes after approval: the client's redirect URI with code, state and iss."""
        code = issue_code(self.context, request, grant)
        params = [("code", code), ("state", request.oauth["state"]), ("iss", self.context.issuer)]
        return str(add_params_to_uri(request.oauth["redirect_uri"], params))

    def denied(self, request: ConsentRequest) -> str:
        return self._error_location(request.oauth["redirect_uri"], request.oauth["state"], "access_denied")

    # backchannel (CIBA, poll mode)

    def backchannel(self, request: VaultOAuth2Request) -> Response:
        try:
            self._no_duplicates(request)
            client = self._client(request)
            form = request.form
            started = self.start_backchannel(
                client, form.get("login_hint"), form.get("authorization_details"), form.get("binding_message")
            )
        except OAuth2Error as error:
            return self.server.handle_error_response(request, error)
        return 200, started, NO_STORE

    def start_backchannel(
        self, client: Client, login_hint: str | None, authorization_details: str | None, binding_message: str | None
    ) -> dict[str, Any]:
        """Open a backchannel consent request for an identified owner; the owner sees it in their inbox.

        Returns auth_req_id, expires_in and interval; raises OAuth2Error subclasses for a bad request. Everything
        the agency sent is checked before anyone is looked up, and an identifier that names no owner gets an
        auth_req_id like any other, which only ever polls as pending and then expired: the answer never tells
        whether someone is in the vault (docs/consent.md).
        """
        if not client.check_grant_type(GrantType.CIBA):
            raise InvalidRequestError("this client may not use backchannel authentication")
        if not login_hint:
            raise InvalidRequestError("login_hint (the owner's resident ID number or credit code) is required")
        access = rar.licence_access(authorization_details)
        if access.service_item not in client.agency.service_items:
            raise InvalidAuthorizationDetailsError(f"the agency does not perform {access.service_item}")
        message = None
        if binding_message is not None:
            try:
                message = clean_text(binding_message, field="binding_message", max_length=BINDING_MESSAGE_MAX)
            except InvalidText as error:
                raise InvalidRequestError(safe_description(str(error))) from None
        session = current_session()
        try:
            item = self.context.policy.catalogue.item(access.service_item)
            self.context.consent.requested(item, access.fields, access.questions)
        except InvalidAuthorizationDetails as error:
            raise InvalidAuthorizationDetailsError(str(error)) from None
        except (LookupError, UnknownServiceItem):
            raise InvalidAuthorizationDetailsError(f"no service item {access.service_item!r}") from None
        kind, owner = self._owner_by_hint(login_hint)
        try:
            self._check_fits(kind, access)
        except InvalidAuthorizationDetails as error:
            raise InvalidAuthorizationDetailsError(str(error)) from None
        auth_req_id = secrets.token_urlsafe(32)
        try:
            consent = self.context.consent.open_request(
                session,
                client_id=client.get_client_id(),
                item_code=access.service_item,
                fields=access.fields,
                questions=access.questions,
                kind="backchannel",
                owner_id=owner,  # None: nobody will ever see it, it expires unanswered
                interval=CIBA_INTERVAL,
            )
        except InvalidAuthorizationDetails as error:
            raise InvalidAuthorizationDetailsError(str(error)) from None
        except RequestNotAllowed as error:
            raise InvalidRequestError(str(error)) from None
        if owner is not None and message is not None:
            note = OwnerTexts(self.context.consent.keys).seal(session, owner, BINDING_TEXT, message)
            consent.oauth = {**consent.oauth, "binding_note": str(note)}
        consent.auth_req_hash = hashlib.sha256(auth_req_id.encode()).digest()
        expires_in = int((consent.expires_at - utcnow()).total_seconds())
        return {"auth_req_id": auth_req_id, "expires_in": expires_in, "interval": CIBA_INTERVAL}

    def _check_fits(self, kind: OwnerKind, access: rar.LicenceAccess) -> None:
        """Refuse fields the named kind of owner cannot hold (ID-card fields of an enterprise): approving would fail.

        The kind comes from the identifier's form, so the answer is the same whether the owner exists or not.
        """
        try:
            item = self.context.policy.catalogue.item(access.service_item)
        except (LookupError, UnknownServiceItem):
            return  # open_request says the item is unknown
        chosen, _ = self.context.consent.requested(item, access.fields, access.questions)
        kinds.check_fits(self.context.policy.licences, item, chosen, kind)

    def _owner_by_hint(self, hint: str) -> tuple[OwnerKind, uuid.UUID | None]:
        """The kind of identifier and the live owner it names (None for nobody); a malformed hint is refused
        without the check character."""
        owners = self.context.consent.owners
        problems = []
        for kind in (OwnerKind.PERSON, OwnerKind.ENTERPRISE):
            try:
                owner = owners.find(current_session(), kind, hint)
            except InvalidIdentifier as error:
                problems.append(str(error))
                continue
            return kind, owner.id if owner is not None and owner.erased_at is None else None
        raise InvalidRequestError(safe_description("login_hint is not a valid identifier: " + "; ".join(problems)))

    # token, introspection, revocation

    def token(self, request: VaultOAuth2Request) -> Response:
        try:
            self._no_duplicates(request)
            self._prove(request, "/oauth/token")
        except OAuth2Error as error:
            return self.server.handle_error_response(request, error)
        status, body, headers = self.server.create_token_response(request)
        return status, body, [*headers, ("Cache-Control", "no-store"), ("Pragma", "no-cache")]

    def grant_receipt(self, request: VaultOAuth2Request) -> Response:
        """POST /oauth/grant: one of the agency's own grants, its state and the vault-signed consent receipt."""
        try:
            self._no_duplicates(request)
            client = self._client(request)
            raw = request.form.get("grant_id") or ""
            try:
                grant_id = uuid.UUID(raw)
            except ValueError:
                raise InvalidRequestError("grant_id must be the UUID the token response named") from None
            session = current_session()
            try:
                grant = self.context.consent.grant(session, grant_id)
            except ConsentError:
                grant = None
            if grant is None or grant.client_id != client.get_client_id():
                raise InvalidRequestError("no grant of this agency has that grant_id")
        except OAuth2Error as error:
            return self.server.handle_error_response(request, error)
        body = {
            "grant_id": str(grant.id),
            "state": self.context.consent.effective_state(grant, utcnow()),
            "service_item": grant.service_item,
            "valid_from": grant.valid_from.isoformat(),
            "valid_until": grant.valid_until.isoformat(),
            "use_limit": grant.use_limit,
            "uses": grant.uses,
            "consent_receipt": grant.receipt,
        }
        return 200, body, NO_STORE

    def introspect(self, request: VaultOAuth2Request) -> Response:
        result: Response = self.server.create_endpoint_response("introspection", request)
        return result

    def revoke(self, request: VaultOAuth2Request) -> Response:
        result: Response = self.server.create_endpoint_response("revocation", request)
        return result


__all__ = ["ConsentError", "ErrorPage", "OAuthService", "Redirect"]


def binding_message(keys: Any, session: Any, request: ConsentRequest) -> str | None:
    """A backchannel request's binding message, opened under its owner's key (None once the owner is erased)."""
    note = request.oauth.get("binding_note")
    if note is None:
        return request.binding_message  # requests made before binding messages left their column
    return OwnerTexts(keys).open(session, uuid.UUID(str(note)))
