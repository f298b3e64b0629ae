"""The agency SDK (sdk/python) end to end against a live vault: every flow, DPoP, receipts, offline checks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from jwcrypto.jwk import JWK
from sd_jwt.verifier import SDJWTVerifier
from vault_sdk import (
    AuthorizationError,
    BackchannelRequest,
    ClientSecretBasic,
    GraphQLError,
    OAuthError,
    Operations,
    PrivateKeyJwt,
    VaultClient,
    VerificationError,
    Verifier,
)
from vault_sdk import operations as shipped
from vault_sdk.verify import metadata_url

from tests.sdk.conftest import Live
from vault.demo import AGENCY_REDIRECT, PERSONS

pytestmark = pytest.mark.sqlite_only

TRAFFIC = "traffic-police-vehicle-office"
HALL = "approval-hall"
ITEM = "vehicle-registration"


OPENED: list[VaultClient | Verifier] = []


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def client(live: Live, client_id: str = TRAFFIC, **options: Any) -> VaultClient:
    opened = VaultClient(live.url, ClientSecretBasic(client_id, f"demo-secret-{client_id}"), **options)
    OPENED.append(opened)
    return opened


def verifier(live: Live, **options: Any) -> Verifier:
    opened = Verifier(live.url, **options)
    OPENED.append(opened)
    return opened


def browse(url: str) -> str:
    """What the owner's browser does with the authorization URL: the vault redirects it to its consent page."""
    with httpx2.Client() as browser:
        response = browser.get(url, follow_redirects=False)
    assert response.status_code == 303, response.text
    return str(response.headers["location"])


def redirect_flow(live: Live, vault: VaultClient, drop: tuple[str, ...] = ()) -> Any:
    started = vault.start_authorization(ITEM, redirect_uri=AGENCY_REDIRECT)
    callback = live.approve(browse(started.url), drop=drop)
    return vault.finish_authorization(callback)


def test_discovery_names_the_vault_and_dpop(live: Live) -> None:
    metadata = client(live).metadata()
    assert metadata["issuer"] == live.url and "ES256" in metadata["dpop_signing_alg_values_supported"]


def test_redirect_flow_with_a_field_unticked_reads_only_what_was_granted(live: Live) -> None:
    vault = client(live)
    tokens = redirect_flow(live, vault, drop=("address",))
    assert tokens.token_type == "DPoP"
    assert tokens.receipt_claims is not None and tokens.receipt_claims["agency"] == TRAFFIC  # verified on arrival
    assert "address" not in tokens.fields.get("resident-id-card", [])
    assert vault.introspect(tokens.access_token)["cnf"] == {"jkt": vault.dpop_key.jkt}
    licences = Operations(vault, tokens).read_licences(types=["resident-id-card"])
    names = {f["name"] for licence in licences for f in licence["fields"]}
    assert names and "address" not in names
    assert vault.grant(tokens.grant_id)["receipt_claims"]["jti"] == tokens.grant_id


def test_the_callback_is_checked_before_the_code_is_redeemed(live: Live) -> None:
    vault = client(live)
    started = vault.start_authorization(ITEM, redirect_uri=AGENCY_REDIRECT)
    callback = live.approve(browse(started.url))
    with pytest.raises(AuthorizationError) as wrong_state:
        vault.finish_authorization(callback.replace(f"state={started.state}", "state=forged"))
    assert wrong_state.value.code == "invalid_state"
    with pytest.raises(AuthorizationError) as wrong_iss:
        vault.finish_authorization(callback.replace("iss=", "iss=https%3A%2F%2Fevil.example&x="), started)
    assert wrong_iss.value.code == "invalid_issuer"
    # the code is bound to the SDK's DPoP key: another client holding the code cannot redeem it
    thief = client(live)
    with pytest.raises(OAuthError) as stolen:
        thief.finish_authorization(callback, started)
    assert stolen.value.code == "invalid_grant"
    assert vault.finish_authorization(callback, started).token_type == "DPoP"


def test_refresh_rotates_and_stays_bound(live: Live) -> None:
    vault = client(live)
    tokens = redirect_flow(live, vault)
    fresh = vault.refresh(tokens)
    assert fresh.refresh_token != tokens.refresh_token and fresh.token_type == "DPoP"
    with pytest.raises(OAuthError) as replay:
        vault.refresh(tokens)  # the rotated refresh token: refused, and its family revoked
    assert replay.value.code == "invalid_grant"


def test_ciba_start_and_poll(live: Live) -> None:
    vault = client(live)
    started = vault.start_backchannel(PERSONS[1].id_number, ITEM, binding_message="A-0042")
    assert vault.poll(started) is None
    live.approve_inbox(1)
    started.interval = 0
    tokens = vault.wait(started, timeout=30)
    assert tokens.token_type == "DPoP" and tokens.receipt_claims is not None


def test_the_demo_counter_starts_requests_with_request_consent(live: Live) -> None:
    counter = client(live, "traffic-police-counter")
    asked = Operations(counter, counter.client_credentials("consent:request")).request_consent(
        PERSONS[1].id_number, ITEM, binding_message="A-0042"
    )
    assert asked["__typename"] == "ConsentRequestStarted", asked
    started = BackchannelRequest(asked["authReqId"], time.time() + asked["expiresIn"], 0)
    assert counter.poll(started) is None
    live.approve_inbox(1)
    tokens = counter.wait(started, timeout=30)
    assert tokens.receipt_claims is not None and tokens.receipt_claims["agency"] == "traffic-police-counter"


def test_client_credentials_verify_online_and_offline_agree_with_the_reference(live: Live) -> None:
    from tests import factories

    with live.vault.db.session() as session:  # issued by the live vault, so its issuer URL is reachable
        owner = factories.person(live.vault, session)
        licence = factories.driving_licence(live.vault, session, owner)
        presentation = live.vault.licences.present(session, licence.id, ["name", "class"], actor="test")
    hall = client(live, HALL)
    verified = Operations(hall, hall.client_credentials("licences:verify")).verify_licence(presentation)
    offline = verifier(live).verify_presentation(presentation)
    assert offline.ok and verified["valid"] is True
    issuer = offline.issuer
    assert issuer is not None
    with httpx2.Client() as http:
        jwks = http.get(metadata_url(issuer)).json()["jwks"]["keys"]

    def key_of(iss: str, header: dict[str, Any]) -> JWK:
        return JWK.from_json(json.dumps(next(k for k in jwks if k["kid"] == header["kid"])))

    reference = SDJWTVerifier(presentation, key_of).get_verified_payload()
    assert {k: reference[k] for k in offline.claims} == offline.claims
    assert set(offline.claims) == {"name", "class"}
    # a changed disclosure: the SDK refuses it; the reference never lets its value through either
    parts = presentation.split("~")
    forged = "~".join([parts[0], parts[2], parts[1], ""])  # same disclosures, another order: still genuine
    assert verifier(live).verify_presentation(forged).ok
    tampered = presentation.replace(parts[1], parts[1][:-2] + ("AA" if not parts[1].endswith("AA") else "BB"))
    assert not verifier(live).verify_presentation(tampered).ok


def test_the_verifier_caches_what_it_fetches_for_its_ttl(live: Live) -> None:
    now = [1_000_000_000.0]
    import time as clock

    now[0] = clock.time()
    checker = verifier(live, clock=lambda: now[0])
    vault = client(live)
    tokens = redirect_flow(live, vault)
    checker.verify_receipt(tokens.consent_receipt or "")
    checker.verify_receipt(tokens.consent_receipt or "")
    assert checker.fetches == 1  # the JWKS, once
    now[0] += 301  # past the vault's Cache-Control max-age=300
    checker.verify_receipt(tokens.consent_receipt or "")
    assert checker.fetches == 2


def test_a_tampered_receipt_is_refused(live: Live) -> None:
    vault = client(live)
    tokens = redirect_flow(live, vault)
    receipt = tokens.consent_receipt or ""
    header, payload, signature = receipt.split(".")
    with pytest.raises(VerificationError) as bad:
        vault.verifier.verify_receipt(f"{header}.{payload}.{signature[:-4]}AAAA")
    assert bad.value.code == "bad_signature"
    with pytest.raises(VerificationError) as other:
        vault.verifier.verify_receipt(receipt, agency="transport-bureau")
    assert other.value.code == "wrong_agency"


def test_a_question_is_answered_signed_and_verified_offline_without_a_value(live: Live) -> None:
    bureau = client(live, "transport-bureau")
    started = bureau.start_backchannel(
        PERSONS[1].id_number, "ride-hailing-driver-check", questions=["holder-age-at-least"]
    )
    live.approve_inbox(1)
    started.interval = 0
    tokens = bureau.wait(started, timeout=30)
    answer = Operations(bureau, tokens).check("holder-age-at-least", {"years": "18"})
    assert answer["answer"] is True and answer["predicate"] == "holder-age-at-least"
    assert PERSONS[1].id_number not in json.dumps(answer)  # an answer, not a value
    claims = bureau.verifier.verify_answer(answer["signed"], agency="transport-bureau")
    assert claims["answer"] is True and claims["grant"] == answer["grantId"]
    header, payload, signature = answer["signed"].split(".")
    with pytest.raises(VerificationError) as bad:
        bureau.verifier.verify_answer(f"{header}.{payload}.{signature[:-4]}AAAA")
    assert bad.value.code == "bad_signature"
    with pytest.raises(VerificationError) as other:
        bureau.verifier.verify_answer(answer["signed"], agency="traffic-police-counter")
    assert other.value.code == "wrong_agency"
    with pytest.raises(GraphQLError):  # the grant covers that question only
        Operations(bureau, tokens).check("name-and-id-number-match", {"name": "x", "id_number": PERSONS[1].id_number})


def test_errors_carry_the_vaults_codes(live: Live) -> None:
    wrong = VaultClient(live.url, ClientSecretBasic(HALL, "wrong"))
    OPENED.append(wrong)
    with pytest.raises(OAuthError) as wrong_secret:
        wrong.client_credentials("licences:verify")
    assert wrong_secret.value.code == "invalid_client" and wrong_secret.value.status == 401
    hall = client(live, HALL)
    tokens = hall.client_credentials("licences:verify")
    with pytest.raises(GraphQLError) as forbidden:
        Operations(hall, tokens).read_licences()
    assert forbidden.value.code == "FORBIDDEN"
    stranger = client(live, HALL)  # another key: the bound token is refused at the resource
    with pytest.raises(GraphQLError) as unbound:
        Operations(stranger, tokens).verify_licence("x~")
    assert unbound.value.code == "UNAUTHENTICATED"


def test_private_key_jwt(live: Live) -> None:
    from joserfc.jwk import OKPKey

    key = OKPKey.generate_key("Ed25519")
    with live.vault.db.session() as session:
        live.vault.agencies.register(
            session,
            client_id="sdk-key-agency",
            name_zh="密钥认证机构",
            name_en="Key-authenticated agency",
            category="service-centre",
            department="market-regulation",
            service_items=[],
            redirect_uris=[],
            grant_types=["client_credentials"],
            scopes=["licences:verify"],
            auth_method="private_key_jwt",
            jwks={"keys": [{**key.as_dict(private=False), "kid": "k1"}]},
            actor="test",
        )
    vault = VaultClient(live.url, PrivateKeyJwt("sdk-key-agency", key, kid="k1"))
    OPENED.append(vault)
    assert vault.client_credentials("licences:verify").token_type == "DPoP"


def test_the_shipped_operations_are_the_repositorys() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "graphql" / "operations"
    assert shipped.names() == sorted(p.stem for p in root.glob("*.graphql"))
    for name in shipped.names():
        assert shipped.document(name) == (root / f"{name}.graphql").read_text(encoding="utf-8"), name


def test_a_qr_showing_is_verified_offline(live: Live) -> None:
    from tests import factories

    with live.vault.db.session() as session:
        owner = factories.person(live.vault, session)
        licence = factories.driving_licence(live.vault, session, owner)
        shown, _ = live.vault.licences.show(session, licence.id, ["name", "class"], actor="test", nonce="ABC234")
    checker = verifier(live)
    result = checker.verify_showing(shown, nonce="ABC234")
    assert result.ok and set(result.claims) == {"name", "class"}
    assert checker.verify_showing(shown, nonce="XYZ789").reason == "wrong_nonce"
    assert checker.verify_showing(shown.rsplit("~", 1)[0] + "~").reason == "not_a_showing"
    later = verifier(live, clock=lambda: time.time() + 301)
    assert later.verify_showing(shown).reason == "showing_expired"


@pytest.mark.parametrize(
    "fields",
    [["name"], ["name", "class"], ["licence_number", "valid_until", "first_issue_date"], []],
)
def test_the_sdk_and_the_reference_sd_jwt_library_agree(live: Live, fields: list[str]) -> None:
    from tests import factories

    with live.vault.db.session() as session:
        owner = factories.person(live.vault, session)
        licence = factories.driving_licence(live.vault, session, owner)
        presentation = live.vault.licences.present(session, licence.id, fields, actor="test")
    checker = verifier(live)
    ours = checker.verify_presentation(presentation)
    assert ours.ok and set(ours.claims) == set(fields)
    jwks = checker.issuer_keys(ours.issuer or "")

    def key_of(iss: str, header: dict[str, Any]) -> JWK:
        return JWK.from_json(json.dumps(jwks[header["kid"]]))

    reference = SDJWTVerifier(presentation, key_of).get_verified_payload()
    assert {k: v for k, v in reference.items() if k in ours.claims} == ours.claims
    assert set(reference) - {"iss", "iat", "exp", "vct", "status", "cnf"} == set(fields)
    # a disclosure from another licence's presentation: both refuse to let its value through
    with live.vault.db.session() as session:
        other = factories.driving_licence(live.vault, session, factories.person(live.vault, session))
        foreign = live.vault.licences.present(session, other.id, ["name"], actor="test").split("~")[1]
    spliced = presentation + foreign + "~"
    assert checker.verify_presentation(spliced).reason == "digest_mismatch"
    assert "name" not in set(SDJWTVerifier(spliced, key_of).get_verified_payload()) - set(fields)


def test_an_issuer_issues_many_licences_in_one_call(live: Live) -> None:
    from tests import factories

    issuer = client(live, "traffic-police-issuing")
    tokens = issuer.client_credentials("licences:issue")

    def row(index: int, **changes: Any) -> Any:
        values = factories.driving_licence_values(name=PERSONS[index].name, **changes)
        return {
            "owner": PERSONS[index].id_number,
            "type": "driving-licence",
            "values": [{"name": k, "value": str(v)} for k, v in values.items()],
        }

    result = Operations(issuer, tokens).issue_licences([row(1), row(2, valid_from="2020-02-30")])
    assert (result["issued"], result["invalid"]) == (1, 1), result
    assert [r["status"] for r in result["rows"]] == ["ISSUED", "INVALID"]
    assert result["rows"][1]["problems"]
