"""End to end, over HTTP only: consent in the browser, the read over GraphQL, offline verification, revocation.

A housing bureau asks person a for the provident-fund withdrawal item; the citizen signs in, unticks one field
and approves; the bureau redeems the code, reads over GraphQL (the unticked field comes back FIELD_FORBIDDEN),
verifies the presentation with nothing but the issuer's published metadata and status list; the citizen revokes
the grant on their grants page, and the bureau's next read is refused as unauthenticated.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

from starlette.testclient import TestClient

from tests.oauth_helpers import BASE, AgencyClient, query_of, returning_to
from tests.unit.api.support import HOUSING, REPEATED_ITEM, errors_by_code, gql, operation, secret
from tests.webclient import browser, origin, page_token, sign_in
from vault.demo import CITIZEN_PASSWORD, PERSONS
from vault.licences.verify import verify_offline
from vault.web.app import create_app
from vault.wiring import Vault

READ = operation("agency-read-licences")
BOTH = """
fragment Released on Licence { type issuer { id metadataUrl statusListUrl } presentation }
query {
  idCard: licences(types: ["resident-id-card"]) {
    ...Released
    fields(names: ["name", "id_number"]) { name value masked }
  }
  register: licences(types: ["household-register"]) {
    ...Released
    fields(names: ["name", "household_number", "relationship"]) { name value masked }
  }
}"""
UNTICKED = "household-register/relationship"


def approve_in_the_browser(vault: Vault, citizen: TestClient, request_id: str, untick: str) -> str:
    path = f"/consent/{request_id}"
    page = citizen.get(path)
    assert page.status_code == 200
    offered = re.findall(r'name="field" value="([^"]+)"', page.text)
    assert untick in offered
    form = {
        "csrf_token": page_token(citizen, path),
        "decision": "approve",
        "field": [f for f in offered if f != untick],
    }
    decided = citizen.post(path, data=form, headers={"Origin": origin(vault)})
    return returning_to(decided)  # the confirmation page, then back to the agency


def test_consent_read_verify_revoke(demo_vault: Vault) -> None:
    vault = demo_vault
    citizen = browser(vault)
    signed_in = sign_in(citizen, vault, PERSONS[0].id_number, CITIZEN_PASSWORD)
    assert signed_in.status_code == 303
    agency_http = TestClient(create_app(vault=vault), base_url=BASE)
    agency = AgencyClient(agency_http, HOUSING, secret(HOUSING))

    request_id = agency.start(REPEATED_ITEM)
    location = approve_in_the_browser(vault, citizen, str(request_id), UNTICKED)
    assert location.startswith(agency.redirect_uri)
    issued = agency.redeem(query_of(location)["code"])
    assert issued.status_code == 200
    token = issued.json()["access_token"]
    granted = issued.json()["authorization_details"][0]["fields"]
    assert "relationship" not in granted["household-register"]

    response = gql(agency_http, token, BOTH)
    assert response.status_code == 200
    body = response.json()
    [id_card_licence], [register_licence] = body["data"]["idCard"], body["data"]["register"]
    licences = {licence["type"]: licence for licence in (id_card_licence, register_licence)}
    register = {f["name"]: f for f in licences["household-register"]["fields"] if f}
    assert register["name"]["value"] == PERSONS[0].name and register["household_number"]["masked"] is True
    assert "relationship" not in register
    id_card = [f["value"] for f in licences["resident-id-card"]["fields"] if f]
    assert id_card == [PERSONS[0].name, PERSONS[0].id_number]
    [forbidden] = errors_by_code(body)["FIELD_FORBIDDEN"]
    assert forbidden["extensions"]["field"] == UNTICKED and forbidden["extensions"]["reason"]

    # offline: only the issuer's published metadata and status list, fetched like any relying party would
    for licence in licences.values():
        issuer = licence["issuer"]
        metadata = agency_http.get(urlsplit(issuer["metadataUrl"]).path).json()
        status_list = agency_http.get(urlsplit(issuer["statusListUrl"]).path).text
        verified = verify_offline(
            licence["presentation"],
            issuer_metadata={issuer["id"]: metadata},
            status_lists={issuer["statusListUrl"]: status_list},
            now=int(time.time()),
        )
        assert verified.ok, verified.reason
        released_in_full = {f["name"]: f["value"] for f in licence["fields"] if f and not f["masked"]}
        assert verified.claims == released_in_full

    grant_id = agency.introspect(token)["grant_id"]
    grants_page = citizen.get("/grants")
    assert grant_id in grants_page.text
    revoked = citizen.post(
        f"/grants/{grant_id}/revoke",
        data={"csrf_token": page_token(citizen, "/grants")},
        headers={"Origin": origin(vault)},
    )
    assert revoked.status_code == 303

    refused = gql(agency_http, token, READ, {"names": ["name"]})
    assert refused.status_code == 401 and refused.json()["data"] is None
    assert errors_by_code(refused.json())["UNAUTHENTICATED"]
    assert agency.refresh(issued.json()["refresh_token"]).status_code == 400
