"""The agency's client: discovery, the redirect flow, CIBA, client credentials, refresh, GraphQL; DPoP throughout."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2

from vault_sdk.auth import ClientAuth
from vault_sdk.dpop import DPoPKey
from vault_sdk.errors import AuthorizationError, AuthorizationPending, GraphQLError, OAuthError, VaultError
from vault_sdk.verify import Verifier

CIBA_GRANT = "urn:openid:params:grant-type:ciba"
Fields = Mapping[str, Sequence[str]]  # licence type -> field names, e.g. {"resident-id-card": ["name"]}


def licence_access(service_item: str, fields: Fields | None = None, questions: Sequence[str] | None = None) -> str:
    """RAR authorization_details asking for a service item's fields (all of them when `fields` is None) and,
    for an item that asks questions, the questions (predicate ids) wanted; with questions and no fields, no value
    is asked for."""
    detail: dict[str, Any] = {"type": "licence_access", "service_item": service_item}
    if fields is not None:
        detail["fields"] = {t: list(names) for t, names in fields.items()}
    if questions is not None:
        detail["questions"] = list(questions)
    return json.dumps([detail])


@dataclass
class Tokens:
    """A token response. `consent_receipt` is the vault-signed receipt of the consent behind the tokens."""

    access_token: str
    token_type: str
    expires_at: float
    scope: str = ""
    refresh_token: str | None = None
    authorization_details: list[dict[str, Any]] = field(default_factory=list)
    grant_id: str | None = None
    consent_receipt: str | None = None
    receipt_claims: dict[str, Any] | None = None  # the receipt's verified claims (the SDK checks it on arrival)

    @classmethod
    def from_response(cls, body: Mapping[str, Any], now: float) -> Tokens:
        return cls(
            access_token=str(body["access_token"]),
            token_type=str(body.get("token_type", "Bearer")),
            expires_at=now + float(body.get("expires_in", 0)),
            scope=str(body.get("scope", "")),
            refresh_token=body.get("refresh_token"),
            authorization_details=list(body.get("authorization_details") or []),
            grant_id=body.get("grant_id"),
            consent_receipt=body.get("consent_receipt"),
        )

    @property
    def fields(self) -> dict[str, list[str]]:
        """The fields the owner granted (the owner may have unticked some of those asked for)."""
        for detail in self.authorization_details:
            if detail.get("type") == "licence_access":
                return {str(k): list(v) for k, v in (detail.get("fields") or {}).items()}
        return {}


@dataclass(frozen=True)
class PendingAuthorization:
    """What `start_authorization` keeps for `finish_authorization`: keep it server-side, keyed by `state`."""

    url: str
    state: str
    code_verifier: str
    redirect_uri: str


@dataclass
class BackchannelRequest:
    auth_req_id: str
    expires_at: float
    interval: int


class VaultClient:
    """One agency talking to one vault. Every token it obtains is DPoP-bound to `dpop_key` (made if not given).

    >>> vault = VaultClient("http://127.0.0.1:8000", ClientSecretBasic("transport-bureau", "demo-secret-..."))
    >>> started = vault.start_authorization("road-transport-permit", redirect_uri=CALLBACK)
    >>> # send the browser to started.url; on the callback:
    >>> tokens = vault.finish_authorization(request_url, started)
    """

    def __init__(
        self,
        issuer: str,
        auth: ClientAuth,
        *,
        dpop_key: DPoPKey | None = None,
        use_dpop: bool = True,
        http: httpx2.Client | None = None,
        verify_receipts: bool = True,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.auth = auth
        self.dpop_key = dpop_key or DPoPKey()
        self.use_dpop = use_dpop
        self.http = http or httpx2.Client(timeout=30)
        self.verify_receipts = verify_receipts
        self.verifier = Verifier(self.issuer, self.http)
        self._metadata: dict[str, Any] | None = None
        self._pending: dict[str, PendingAuthorization] = {}

    @property
    def client_id(self) -> str:
        return self.auth.client_id

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> VaultClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # discovery

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 authorization server metadata, fetched once."""
        if self._metadata is None:
            response = self.http.get(f"{self.issuer}/.well-known/oauth-authorization-server")
            if response.status_code != 200:
                raise VaultError("discovery_failed", f"metadata answered {response.status_code}", response.status_code)
            body = response.json()
            if body.get("issuer") != self.issuer:
                raise VaultError(
                    "discovery_failed", f"metadata names issuer {body.get('issuer')!r}, not {self.issuer!r}"
                )
            self._metadata = body
        return self._metadata

    def endpoint(self, name: str) -> str:
        url = self.metadata().get(name)
        if not isinstance(url, str):
            raise VaultError("discovery_failed", f"the vault's metadata has no {name}")
        return url

    # the OAuth endpoints

    def _post(self, endpoint: str, form: dict[str, str], *, dpop: bool = False) -> httpx2.Response:
        url = self.endpoint(endpoint)
        headers: dict[str, str] = {"Accept": "application/json"}
        body = {k: v for k, v in form.items() if v is not None}
        self.auth.apply(url, self.issuer, headers, body)
        if dpop and self.use_dpop:
            headers["DPoP"] = self.dpop_key.proof("POST", url)
        response = self.http.post(url, data=body, headers=headers)
        nonce = response.headers.get("dpop-nonce")
        if nonce:
            self.dpop_key.nonce = nonce
        return response

    def _json(self, response: httpx2.Response, expected: int = 200) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != expected or not isinstance(body, dict):
            error = body.get("error", "server_error") if isinstance(body, dict) else "server_error"
            description = body.get("error_description", "") if isinstance(body, dict) else response.text[:200]
            kind = AuthorizationPending if error in ("authorization_pending", "slow_down") else OAuthError
            raise kind(str(error), str(description or ""), response.status_code)
        return body

    def _tokens(self, response: httpx2.Response) -> Tokens:
        tokens = Tokens.from_response(self._json(response), time.time())
        if tokens.consent_receipt and self.verify_receipts:
            tokens.receipt_claims = self.verifier.verify_receipt(
                tokens.consent_receipt, agency=self.client_id, grant_id=tokens.grant_id
            )
        return tokens

    # the redirect flow: PAR + PKCE S256 + RAR, then the callback with state and iss checked

    def start_authorization(
        self,
        service_item: str,
        fields: Fields | None = None,
        *,
        redirect_uri: str | None = None,
        login_hint: str | None = None,
        scope: str | None = None,
        questions: Sequence[str] | None = None,
    ) -> PendingAuthorization:
        """Push the authorization request; returns the URL to send the owner's browser to (and what finish needs)."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(24)
        form = {
            "response_type": "code",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "authorization_details": licence_access(service_item, fields, questions),
        }
        if redirect_uri:
            form["redirect_uri"] = redirect_uri
        if login_hint:
            form["login_hint"] = login_hint
        if scope:
            form["scope"] = scope
        if self.use_dpop:
            form["dpop_jkt"] = self.dpop_key.jkt  # the code will be redeemable only with this key (RFC 9449 §10)
        pushed = self._json(self._post("pushed_authorization_request_endpoint", form), 201)
        query = urlencode({"client_id": self.client_id, "request_uri": pushed["request_uri"]})
        pending = PendingAuthorization(
            f"{self.endpoint('authorization_endpoint')}?{query}", state, verifier, redirect_uri or ""
        )
        self._pending[state] = pending
        return pending

    def finish_authorization(self, callback_url: str, pending: PendingAuthorization | None = None) -> Tokens:
        """Check the callback (state, iss, error) and redeem the code; returns DPoP-bound tokens and the receipt."""
        params = {k: v[0] for k, v in parse_qs(urlsplit(callback_url).query).items()}
        state = params.get("state", "")
        pending = pending or self._pending.get(state)
        if pending is None or not secrets.compare_digest(state, pending.state):
            raise AuthorizationError(
                "invalid_state", "the callback's state matches no authorization this client started"
            )
        self._pending.pop(pending.state, None)
        if params.get("iss") != self.issuer:
            raise AuthorizationError("invalid_issuer", "the callback's iss is not this vault (RFC 9207)")
        if "error" in params:
            raise AuthorizationError(params["error"], params.get("error_description", ""))
        if "code" not in params:
            raise AuthorizationError("invalid_request", "the callback carries no code")
        form = {"grant_type": "authorization_code", "code": params["code"], "code_verifier": pending.code_verifier}
        if pending.redirect_uri:
            form["redirect_uri"] = pending.redirect_uri
        return self._tokens(self._post("token_endpoint", form, dpop=True))

    # CIBA, poll mode

    def start_backchannel(
        self,
        login_hint: str,
        service_item: str,
        fields: Fields | None = None,
        binding_message: str | None = None,
        questions: Sequence[str] | None = None,
    ) -> BackchannelRequest:
        """Ask the owner named by `login_hint` (ID number or credit code) in their vault inbox."""
        form = {"login_hint": login_hint, "authorization_details": licence_access(service_item, fields, questions)}
        if binding_message:
            form["binding_message"] = binding_message
        body = self._json(self._post("backchannel_authentication_endpoint", form))
        return BackchannelRequest(
            str(body["auth_req_id"]), time.time() + float(body["expires_in"]), int(body.get("interval", 5))
        )

    def poll(self, request: BackchannelRequest) -> Tokens | None:
        """One poll: the tokens once the owner approved, None while pending; raises OAuthError when denied/expired."""
        try:
            return self._tokens(
                self._post("token_endpoint", {"grant_type": CIBA_GRANT, "auth_req_id": request.auth_req_id}, dpop=True)
            )
        except AuthorizationPending as pending:
            if pending.code == "slow_down":
                request.interval += 5
            return None

    def wait(self, request: BackchannelRequest, timeout: float | None = None) -> Tokens:
        """Poll at the vault's interval until the owner decides (or `timeout` seconds pass)."""
        deadline = min(request.expires_at, time.time() + timeout) if timeout else request.expires_at
        while True:
            tokens = self.poll(request)
            if tokens is not None:
                return tokens
            if time.time() + request.interval > deadline:
                raise OAuthError("expired_token", "the owner did not decide in time")
            time.sleep(request.interval)

    # client credentials and refresh

    def client_credentials(
        self, scope: str, authorization_details: Sequence[Mapping[str, Any]] | None = None
    ) -> Tokens:
        """Tokens for API rights (licences:verify, licences:issue, consent:request) or reads under a legal mandate."""
        form = {"grant_type": "client_credentials", "scope": scope}
        if authorization_details is not None:
            form["authorization_details"] = json.dumps(list(authorization_details))
        return self._tokens(self._post("token_endpoint", form, dpop=True))

    def refresh(self, tokens: Tokens) -> Tokens:
        """Rotate the refresh token (the old one dies); the new tokens stay bound to the same DPoP key."""
        if not tokens.refresh_token:
            raise OAuthError("invalid_request", "these tokens have no refresh token")
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
        return self._tokens(self._post("token_endpoint", form, dpop=True))

    def revoke(self, token: str) -> None:
        self._json(self._post("revocation_endpoint", {"token": token}))

    def introspect(self, token: str) -> dict[str, Any]:
        return self._json(self._post("introspection_endpoint", {"token": token}))

    def grant(self, grant_id: str) -> dict[str, Any]:
        """A grant of this agency: its state and its consent receipt (verified)."""
        body = self._json(self._post("grant_endpoint", {"grant_id": grant_id}))
        if self.verify_receipts:
            body["receipt_claims"] = self.verifier.verify_receipt(
                body["consent_receipt"], agency=self.client_id, grant_id=grant_id
            )
        return body

    # GraphQL

    def graphql(self, tokens: Tokens, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run one operation with the tokens (DPoP proof with `ath` when DPoP-bound); raises GraphQLError."""
        url = f"{self.issuer}/graphql"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if tokens.token_type.lower() == "dpop":
            headers["Authorization"] = f"DPoP {tokens.access_token}"
            headers["DPoP"] = self.dpop_key.proof("POST", url, tokens.access_token)
        else:
            headers["Authorization"] = f"Bearer {tokens.access_token}"
        response = self.http.post(
            url, content=json.dumps({"query": query, "variables": dict(variables or {})}), headers=headers
        )
        try:
            body = response.json()
        except ValueError:
            raise GraphQLError("BAD_RESPONSE", response.text[:200], response.status_code) from None
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            first = errors[0]
            extensions = dict(first.get("extensions") or {})
            code = str(extensions.pop("code", "GRAPHQL_ERROR"))
            raise GraphQLError(code, str(first.get("message", "")), response.status_code, errors=errors, **extensions)
        data: dict[str, Any] = body.get("data") or {}
        return data
