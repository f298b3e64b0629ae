"""Drive the authorization server as an agency would, over HTTP, for functional tests.

`consent_via_service` approves a pending consent request through the consent service: tests that are about the
consent page itself use the browser-facing pages instead.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.testclient import TestClient

from vault.consent.services import Decider
from vault.oauth.adapter import unit_of_work
from vault.wiring import Vault

BASE = "http://127.0.0.1:8000"
REDIRECT = "http://127.0.0.1:8001/callback"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def details(service_item: str, fields: dict[str, list[str]] | None = None) -> str:
    detail: dict[str, Any] = {"type": "licence_access", "service_item": service_item}
    if fields is not None:
        detail["fields"] = fields
    return json.dumps([detail])


POLICE_CASE = "XS-2026-000001"
OFFICIAL = "012345"
# the sensitive fields of the demo mandates, named by default so that reads can reach them
NAMED_SENSITIVE = {
    "police-criminal-investigation": [
        "resident-id-card/address",
        "resident-id-card/id_number",
        "resident-id-card/photo",
        "household-register/registered_address",
        "household-register/id_number",
    ],
    "traffic-accident-handling": ["resident-id-card/id_number", "driving-licence/licence_number"],
}


def demo_identifiers(*keys: str) -> list[str]:
    from vault.demo import PERSONS

    return [next(p for p in PERSONS if p.key == key).id_number for key in keys]


def mandate_details(
    mandate: str,
    case_reference: str,
    owners: Sequence[str] | None = None,
    official: str = OFFICIAL,
    sensitive: Sequence[str] | None = None,
    **extra: Any,
) -> str:
    """A legal_mandate request; by default for demo persons a and b, naming every sensitive field it covers."""
    detail: dict[str, Any] = {
        "type": "legal_mandate",
        "mandate": mandate,
        "case_reference": case_reference,
        "owners": list(owners) if owners is not None else demo_identifiers("a", "b"),
        "official": official,
        "sensitive_fields": list(sensitive) if sensitive is not None else NAMED_SENSITIVE.get(mandate, []),
        **extra,
    }
    return json.dumps([detail])


def returning_to(confirmation: Any) -> str:
    """The way back to the agency on a redirect request's confirmation page (the answer to the consent POST)."""
    assert confirmation.status_code == 200, confirmation.text
    found = re.search(r'id="continue" href="([^"]+)"', confirmation.text)
    assert found is not None, confirmation.text
    return html.unescape(found.group(1))


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class AgencyClient:
    """An agency's OAuth client talking to the vault through `http`."""

    http: TestClient
    client_id: str
    secret: str
    redirect_uri: str = REDIRECT
    verifier: str = ""
    last: dict[str, Any] = field(default_factory=dict)

    @property
    def auth(self) -> tuple[str, str]:
        return (self.client_id, self.secret)

    def push(self, service_item: str, fields: dict[str, list[str]] | None = None, **overrides: str) -> Any:
        self.verifier, challenge = pkce()
        data = {
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "state": "state-" + secrets.token_hex(4),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "authorization_details": details(service_item, fields),
        }
        data.update(overrides)
        self.last = data
        return self.http.post("/oauth/par", auth=self.auth, data={k: v for k, v in data.items() if v is not None})

    def authorize(self, request_uri: str) -> Any:
        return self.http.get(
            "/oauth/authorize", params={"client_id": self.client_id, "request_uri": request_uri}, follow_redirects=False
        )

    def start(self, service_item: str, fields: dict[str, list[str]] | None = None) -> uuid.UUID:
        """PAR then the authorization endpoint: returns the consent request the owner is sent to."""
        pushed = self.push(service_item, fields)
        assert pushed.status_code == 201, pushed.text
        response = self.authorize(pushed.json()["request_uri"])
        assert response.status_code == 303, response.text
        return uuid.UUID(response.headers["location"].rsplit("/", 1)[1])

    def redeem(self, code: str, **overrides: str) -> Any:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier,
        }
        data.update(overrides)
        return self.http.post("/oauth/token", auth=self.auth, data={k: v for k, v in data.items() if v is not None})

    def refresh(self, refresh_token: str, **extra: str) -> Any:
        return self.http.post(
            "/oauth/token",
            auth=self.auth,
            data={"grant_type": "refresh_token", "refresh_token": refresh_token, **extra},
        )

    def introspect(self, token: str) -> dict[str, Any]:
        response = self.http.post("/oauth/introspect", auth=self.auth, data={"token": token})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def consent_via_service(
    vault: Vault,
    request_id: uuid.UUID,
    person_id: uuid.UUID,
    owner_id: uuid.UUID | None = None,
    drop: tuple[str, ...] = (),
) -> str:
    """Approve as the owner (fields named in `drop` unticked); returns the redirect back to the agency."""
    with unit_of_work(vault.db) as session:
        request = vault.consent.pending_request(session, request_id)
        fields = {t: [f for f in names if f not in drop] for t, names in request.fields.items()}
        grant = vault.consent.approve(session, request_id, Decider(person_id, owner_id or person_id), fields)
        return vault.oauth.approved(request, grant)


def consented_tokens(
    vault: Vault,
    agency: AgencyClient,
    person_id: uuid.UUID,
    service_item: str,
    owner_id: uuid.UUID | None = None,
    drop: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The whole redirect flow with the owner's approval: the token response."""
    request_id = agency.start(service_item)
    location = consent_via_service(vault, request_id, person_id, owner_id, drop)
    response = agency.redeem(query_of(location)["code"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def mandate_token(
    http: TestClient, client_id: str, secret: str, mandate: str, case_reference: str, **details: Any
) -> Any:
    return http.post(
        "/oauth/token",
        auth=(client_id, secret),
        data={
            "grant_type": "client_credentials",
            "scope": "licences:read",
            "authorization_details": mandate_details(mandate, case_reference, **details),
        },
    )


def dpop_key() -> Any:
    """A fresh P-256 key for DPoP proofs."""
    from joserfc.jwk import ECKey

    return ECKey.generate_key("P-256")


def dpop_proof(
    key: Any,
    url: str,
    method: str = "POST",
    access_token: str | None = None,
    jti: str | None = None,
    iat: int | None = None,
) -> str:
    """A DPoP proof (RFC 9449) for one request, signed with `key`."""
    import time

    from joserfc import jws

    from vault.oauth.dpop import access_token_hash

    claims: dict[str, Any] = {
        "jti": jti or secrets.token_urlsafe(16),
        "htm": method,
        "htu": url,
        "iat": int(time.time()) if iat is None else iat,
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    return jws.serialize_compact(header, json.dumps(claims).encode(), key)
