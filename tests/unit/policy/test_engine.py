import dataclasses
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cedarpy
import pytest

from vault.licences.types import load_catalogue
from vault.policy.engine import (
    DEFAULT_DENY,
    AgencyInfo,
    Decision,
    FieldDecision,
    GrantInfo,
    MandateInfo,
    PolicyEngine,
)
from vault.policy.errors import PolicyValidationError, UnknownServiceItem

POLICIES = Path(__file__).resolve().parents[3] / "policies"
NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
OWNER = "owner-1"
CASE = "京公（刑）立字〔2025〕0123号"

TRAFFIC_POLICE = AgencyInfo(
    client_id="traffic-police-vehicles",
    category="police",
    department="traffic-police",
    suspended=False,
    service_items=frozenset({"vehicle-registration", "vehicle-transfer-registration", "driving-licence-renewal"}),
)
PUBLIC_SECURITY = AgencyInfo(
    client_id="public-security-investigations",
    category="police",
    department="public-security",
    suspended=False,
    service_items=frozenset({"household-migration"}),
)
HOUSING = AgencyInfo(
    client_id="housing-fund",
    category="housing",
    department="housing",
    suspended=False,
    service_items=frozenset({"housing-provident-fund-withdrawal"}),
)


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine.load(POLICIES, load_catalogue(POLICIES))


def transfer_grant(**changes: Any) -> GrantInfo:
    """An active grant for vehicle transfer registration: one use, 20 days, two licence types."""
    grant = GrantInfo(
        grant_id="grant-1",
        owner_id=OWNER,
        agency_client_id=TRAFFIC_POLICE.client_id,
        service_item="vehicle-transfer-registration",
        fields={
            "resident-id-card": ("name", "id_number", "address"),
            "vehicle-licence": ("plate_number", "owner_name", "vin"),
        },
        purpose="vehicle-transfer-registration",
        valid_from=NOW - timedelta(days=1),
        valid_until=NOW + timedelta(days=19),
        uses_left=1,
        state="active",
    )
    return dataclasses.replace(grant, **changes)


def decide(
    engine: PolicyEngine,
    fields: Sequence[str],
    *,
    agency: AgencyInfo = TRAFFIC_POLICE,
    licence_type: str = "resident-id-card",
    grant: GrantInfo | None = None,
    mandate: MandateInfo | None = None,
    purpose: str = "vehicle-transfer-registration",
    owner_kind: str = "person",
    now: datetime = NOW,
) -> dict[str, FieldDecision]:
    return engine.decide_fields(
        agency,
        owner_id=OWNER,
        owner_kind=owner_kind,
        licence_type=licence_type,
        fields=fields,
        purpose=purpose,
        grant=grant,
        mandate=mandate,
        now=now,
    )


def read(engine: PolicyEngine, field: str, **kwargs: Any) -> Decision:
    return decide(engine, [field], **kwargs)[field].read


def assert_forbidden_by(decision: Decision, policy_id: str) -> None:
    assert not decision.allowed
    assert policy_id in decision.policy_ids
    assert decision.reason.startswith("forbid: ")
    assert policy_id in decision.reason


# Loading


def test_every_policy_is_named(engine: PolicyEngine) -> None:
    assert len(engine.policy_ids) == len(set(engine.policy_ids)) > 10
    assert {"consent-read", "agency-suspended", "mandate-read", "masked-by-service-item"} <= set(engine.policy_ids)


def test_broken_policies_stop_loading_naming_file_and_line(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    consent = policies / "consent.cedar"
    lines = consent.read_text(encoding="utf-8").split("\n")
    number = next(index for index, line in enumerate(lines) if "context.grant.purpose ==" in line)
    lines[number] = lines[number].replace("context.grant.purpose", "context.grant.porpose")
    consent.write_text("\n".join(lines), encoding="utf-8")

    with pytest.raises(PolicyValidationError) as caught:
        PolicyEngine.load(policies, load_catalogue(policies))

    assert (caught.value.file, caught.value.line) == ((policies / "consent.cedar").as_posix(), number + 1)
    assert "consent-read: attribute `porpose`" in caught.value.message


# Asking for consent


def test_an_agency_may_ask_consent_for_the_items_it_performs(engine: PolicyEngine) -> None:
    decision = engine.may_request_consent(TRAFFIC_POLICE, "vehicle-registration")
    assert decision == Decision(True, ("request-consent-for-own-item",), "permit: request-consent-for-own-item")


def test_an_agency_may_not_ask_consent_for_items_it_does_not_perform(engine: PolicyEngine) -> None:
    decision = engine.may_request_consent(HOUSING, "housing-purchase-qualification")
    assert decision == Decision(False, (), DEFAULT_DENY)


def test_an_agency_may_not_ask_consent_for_another_departments_item(engine: PolicyEngine) -> None:
    claims_too_much = dataclasses.replace(HOUSING, service_items=frozenset({"household-migration"}))
    decision = engine.may_request_consent(claims_too_much, "household-migration")
    assert_forbidden_by(decision, "item-of-another-department")


def test_a_suspended_agency_may_not_ask_consent(engine: PolicyEngine) -> None:
    suspended = dataclasses.replace(TRAFFIC_POLICE, suspended=True)
    assert_forbidden_by(engine.may_request_consent(suspended, "vehicle-registration"), "agency-suspended")


def test_asking_consent_for_an_unknown_item_raises(engine: PolicyEngine) -> None:
    with pytest.raises(UnknownServiceItem):
        engine.may_request_consent(TRAFFIC_POLICE, "passport-application")


# Reading under consent


def test_default_deny_without_grant_or_mandate(engine: PolicyEngine) -> None:
    decisions = decide(engine, ["name", "id_number"])
    for decision in decisions.values():
        assert decision.read == Decision(False, (), DEFAULT_DENY)
        assert decision.masked


def test_a_grant_permits_exactly_its_fields(engine: PolicyEngine) -> None:
    decisions = decide(engine, ["name", "id_number", "address"], grant=transfer_grant())
    for decision in decisions.values():
        assert decision.read == Decision(True, ("consent-read",), "permit: consent-read")


def test_a_field_the_item_needs_but_the_grant_left_out_is_denied(engine: PolicyEngine) -> None:
    grant = transfer_grant(fields={"resident-id-card": ("name", "id_number")})  # the owner narrowed it
    assert read(engine, "address", grant=grant) == Decision(False, (), DEFAULT_DENY)


def test_a_field_the_item_does_not_need_is_denied_even_if_granted(engine: PolicyEngine) -> None:
    grant = transfer_grant(fields={"resident-id-card": ("name", "ethnicity")})
    assert_forbidden_by(read(engine, "ethnicity", grant=grant), "grant-field-not-needed-by-item")


def test_another_agencys_grant_is_denied(engine: PolicyEngine) -> None:
    grant = transfer_grant(agency_client_id="traffic-police-other-office")
    assert_forbidden_by(read(engine, "name", grant=grant), "grant-of-another-agency")


def test_a_grant_of_another_owner_is_denied(engine: PolicyEngine) -> None:
    grant = transfer_grant(owner_id="owner-2")
    assert_forbidden_by(read(engine, "name", grant=grant), "grant-of-another-owner")


@pytest.mark.parametrize("state", ["pending", "revoked", "expired", "exhausted"])
def test_a_grant_not_in_force_is_denied(engine: PolicyEngine, state: str) -> None:
    assert_forbidden_by(read(engine, "name", grant=transfer_grant(state=state)), "grant-not-active")


@pytest.mark.parametrize(
    "now",
    [NOW + timedelta(days=19), NOW + timedelta(days=30), NOW - timedelta(days=1, seconds=1)],
    ids=["at-valid-until", "after", "before-valid-from"],
)
def test_a_grant_outside_its_validity_is_denied(engine: PolicyEngine, now: datetime) -> None:
    assert_forbidden_by(read(engine, "name", grant=transfer_grant(), now=now), "grant-outside-validity")


def test_a_grant_is_valid_until_its_last_instant(engine: PolicyEngine) -> None:
    decision = read(engine, "name", grant=transfer_grant(), now=NOW + timedelta(days=19) - timedelta(milliseconds=1))
    assert decision.allowed


def test_a_used_up_grant_is_denied(engine: PolicyEngine) -> None:
    assert_forbidden_by(read(engine, "name", grant=transfer_grant(uses_left=0)), "grant-exhausted")


def test_a_repeated_use_grant_may_be_unlimited(engine: PolicyEngine) -> None:
    grant = GrantInfo(
        grant_id="grant-2",
        owner_id=OWNER,
        agency_client_id=HOUSING.client_id,
        service_item="housing-provident-fund-withdrawal",
        fields={"resident-id-card": ("name", "id_number")},
        purpose="rent-withdrawal",
        valid_from=NOW - timedelta(days=100),
        valid_until=NOW + timedelta(days=200),
        uses_left=None,
        state="active",
    )
    assert read(engine, "id_number", agency=HOUSING, grant=grant, purpose="rent-withdrawal").allowed


def test_a_one_time_item_cannot_have_an_unlimited_grant(engine: PolicyEngine) -> None:
    for uses_left in (None, 2):
        decision = read(engine, "name", grant=transfer_grant(uses_left=uses_left))
        assert_forbidden_by(decision, "grant-reuse-of-one-time-item")


def test_a_grant_longer_than_its_item_allows_is_denied(engine: PolicyEngine) -> None:
    grant = transfer_grant(valid_until=NOW + timedelta(days=60))  # the item allows 30 days
    assert_forbidden_by(read(engine, "name", grant=grant), "grant-longer-than-item-allows")


def test_a_different_purpose_is_denied(engine: PolicyEngine) -> None:
    decision = read(engine, "name", grant=transfer_grant(), purpose="marketing")
    assert_forbidden_by(decision, "grant-purpose-mismatch")


def test_an_agency_that_no_longer_performs_the_item_is_denied(engine: PolicyEngine) -> None:
    agency = dataclasses.replace(TRAFFIC_POLICE, service_items=frozenset({"vehicle-registration"}))
    assert_forbidden_by(read(engine, "name", agency=agency, grant=transfer_grant()), "grant-item-not-performed")


def test_biometric_fields_never_leave_under_consent(engine: PolicyEngine) -> None:
    grant = transfer_grant(fields={"resident-id-card": ("name", "photo")})
    decision = decide(engine, ["photo"], grant=grant)["photo"]
    assert_forbidden_by(decision.read, "biometric-never-under-consent")
    assert decision.masked


def test_a_licence_type_the_owner_cannot_hold_is_denied(engine: PolicyEngine) -> None:
    decision = read(engine, "name", grant=transfer_grant(), owner_kind="enterprise")
    assert_forbidden_by(decision, "owner-cannot-hold-licence-type")


def test_a_suspended_agency_is_denied_whatever_else_permits(engine: PolicyEngine) -> None:
    suspended = dataclasses.replace(TRAFFIC_POLICE, suspended=True)
    decision = read(engine, "name", agency=suspended, grant=transfer_grant())
    assert decision.policy_ids == ("agency-suspended",)
    assert decision.reason == "forbid: agency-suspended"
    mandate = MandateInfo(mandate_id="police-criminal-investigation", case_reference=CASE)
    suspended_police = dataclasses.replace(PUBLIC_SECURITY, suspended=True)
    assert_forbidden_by(read(engine, "name", agency=suspended_police, mandate=mandate), "agency-suspended")


# Reading under a legal mandate


def police_mandate(case_reference: str | None = CASE, named: tuple[str, ...] = ()) -> MandateInfo:
    return MandateInfo(
        mandate_id="police-criminal-investigation",
        case_reference=case_reference,
        legal_basis="《中华人民共和国刑事诉讼法》第五十四条",
        named_fields=named,
    )


@pytest.mark.parametrize("case_reference", [None, "", "   "])
def test_a_police_mandate_without_a_case_reference_is_denied(engine: PolicyEngine, case_reference: str | None) -> None:
    decision = read(engine, "name", agency=PUBLIC_SECURITY, mandate=police_mandate(case_reference))
    assert_forbidden_by(decision, "mandate-case-reference-required")
    assert "police-read-needs-case-reference" in decision.policy_ids


SENSITIVE_ID_CARD = ("resident-id-card/address", "resident-id-card/id_number", "resident-id-card/photo")


def test_a_police_mandate_with_a_case_reference_permits_exactly_its_fields(engine: PolicyEngine) -> None:
    id_card = engine.licences.type("resident-id-card")
    mandate = police_mandate(named=SENSITIVE_ID_CARD)
    decisions = decide(engine, id_card.field_names, agency=PUBLIC_SECURITY, mandate=mandate)

    allowed = {name for name, decision in decisions.items() if decision.read.allowed}
    assert allowed == set(engine.catalogue.mandate("police-criminal-investigation").all_fields()["resident-id-card"])
    assert "photo" in allowed  # biometric: a mandate naming it reaches it, consent never does
    for name in allowed:
        assert decisions[name].read.policy_ids == ("mandate-read",)
        assert not decisions[name].masked
        assert decisions[name].release.policy_ids == ("full-under-mandate",)
    assert decisions["valid_until"].read == Decision(False, (), DEFAULT_DENY)


def test_a_sensitive_field_the_token_does_not_name_is_denied_under_a_mandate(engine: PolicyEngine) -> None:
    id_card = engine.licences.type("resident-id-card")
    mandate = police_mandate(named=("resident-id-card/id_number",))
    decisions = decide(engine, id_card.field_names, agency=PUBLIC_SECURITY, mandate=mandate)

    assert decisions["id_number"].read.allowed and decisions["name"].read.allowed
    for name in ("photo", "address"):  # biometric and sensitive: PIPL art. 28 wants them named
        assert_forbidden_by(decisions[name].read, "mandate-sensitive-field-not-named")


def test_a_non_police_agency_cannot_invoke_the_police_mandate(engine: PolicyEngine) -> None:
    decision = read(engine, "name", agency=HOUSING, mandate=police_mandate())
    assert_forbidden_by(decision, "mandate-not-for-this-agency")


def test_police_of_another_department_cannot_invoke_it_either(engine: PolicyEngine) -> None:
    decision = read(engine, "name", agency=TRAFFIC_POLICE, mandate=police_mandate())
    assert_forbidden_by(decision, "mandate-not-for-this-agency")


def test_a_non_police_mandate_still_needs_its_case_reference(engine: PolicyEngine) -> None:
    civil_affairs = AgencyInfo(
        client_id="civil-affairs-assistance",
        category="civil-affairs",
        department="civil-affairs",
        suspended=False,
        service_items=frozenset(),
    )
    means_check = MandateInfo(mandate_id="social-assistance-means-check", case_reference="HD-2025-0042")
    allowed = read(engine, "plate_number", agency=civil_affairs, licence_type="vehicle-licence", mandate=means_check)
    assert allowed.allowed
    without = dataclasses.replace(means_check, case_reference=None)
    denied = read(engine, "plate_number", agency=civil_affairs, licence_type="vehicle-licence", mandate=without)
    assert_forbidden_by(denied, "mandate-case-reference-required")
    assert "police-read-needs-case-reference" not in denied.policy_ids


# Masking: a separate decision, releaseInFull


def test_ordinary_fields_go_out_in_full(engine: PolicyEngine) -> None:
    decision = decide(engine, ["name"], grant=transfer_grant())["name"]
    assert not decision.masked
    assert decision.release.policy_ids == ("full-ordinary-field-under-consent",)


def test_fields_the_item_lists_as_masked_go_out_masked(engine: PolicyEngine) -> None:
    decision = decide(engine, ["owner_name"], licence_type="vehicle-licence", grant=transfer_grant())["owner_name"]
    assert decision.read.allowed
    assert decision.masked
    assert_forbidden_by(decision.release, "masked-by-service-item")


def test_sensitive_fields_the_item_needs_in_full_go_out_in_full(engine: PolicyEngine) -> None:
    decision = decide(engine, ["id_number"], grant=transfer_grant())["id_number"]
    assert decision.read.allowed and not decision.masked
    assert decision.release.policy_ids == ("full-sensitive-field-needed-by-item",)


def test_other_sensitive_fields_go_out_masked(engine: PolicyEngine) -> None:
    # Driving-licence renewal needs the licence number in full, but the ID card's copy of it only masked.
    grant = transfer_grant(
        service_item="driving-licence-renewal",
        purpose="driving-licence-renewal",
        fields={"resident-id-card": ("name", "id_number"), "driving-licence": ("licence_number",)},
    )
    reads = engine.decide_reads(
        TRAFFIC_POLICE,
        owner_id=OWNER,
        owner_kind="person",
        fields={"resident-id-card": ["id_number"], "driving-licence": ["licence_number"]},
        purpose="driving-licence-renewal",
        grant=grant,
        mandate=None,
        now=NOW,
    )
    id_number = reads["resident-id-card"]["id_number"]
    assert id_number.read.allowed and id_number.masked
    assert id_number.release == Decision(False, (), DEFAULT_DENY)
    licence_number = reads["driving-licence"]["licence_number"]
    assert licence_number.read.allowed and not licence_number.masked


# Inputs


def test_unknown_fields_and_types_are_denied_with_a_reason(engine: PolicyEngine) -> None:
    reads = engine.decide_reads(
        TRAFFIC_POLICE,
        owner_id=OWNER,
        owner_kind="person",
        fields={"resident-id-card": ["name", "blood_type"], "passport": ["number"]},
        purpose="vehicle-transfer-registration",
        grant=transfer_grant(),
        mandate=None,
        now=NOW,
    )
    assert reads["resident-id-card"]["name"].read.allowed
    assert reads["resident-id-card"]["blood_type"].read == Decision(
        False, (), "no field 'blood_type' in licence type 'resident-id-card'"
    )
    assert not reads["passport"]["number"].read.allowed


def test_an_unknown_service_item_or_mandate_denies_everything(engine: PolicyEngine) -> None:
    bogus_grant = transfer_grant(service_item="passport-application")
    decision = read(engine, "name", grant=bogus_grant)
    assert decision == Decision(False, (), "the grant is for an unknown service item 'passport-application'")
    bogus_mandate = MandateInfo(mandate_id="tax-audit", case_reference=CASE)
    assert read(engine, "name", agency=PUBLIC_SECURITY, mandate=bogus_mandate).reason == "unknown mandate 'tax-audit'"


def test_grant_and_mandate_together_are_a_mistake(engine: PolicyEngine) -> None:
    with pytest.raises(ValueError, match="not both"):
        decide(engine, ["name"], grant=transfer_grant(), mandate=police_mandate())


def test_times_must_be_timezone_aware(engine: PolicyEngine) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(engine, ["name"], grant=transfer_grant(), now=NOW.replace(tzinfo=None))


def test_a_policy_that_fails_to_evaluate_denies(engine: PolicyEngine) -> None:
    # Cedar skips a failing policy, forbids included; the engine must not let what is left permit.
    mistyped = dataclasses.replace(TRAFFIC_POLICE, suspended="no")  # type: ignore[arg-type]  # on purpose
    decision = read(engine, "name", agency=mistyped, grant=transfer_grant())
    assert not decision.allowed
    assert decision.reason == "denied: a policy failed to evaluate"
    assert any("agency-suspended" in error for error in decision.errors)


def test_all_fields_of_all_types_are_decided_in_one_batch(
    engine: PolicyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    real = cedarpy.is_authorized_batch

    def counting(requests: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        batches.append(len(requests))
        return real(requests, *args, **kwargs)

    monkeypatch.setattr(cedarpy, "is_authorized_batch", counting)
    engine.decide_reads(
        TRAFFIC_POLICE,
        owner_id=OWNER,
        owner_kind="person",
        fields={"resident-id-card": ["name", "id_number"], "vehicle-licence": ["vin", "plate_number", "owner_name"]},
        purpose="vehicle-transfer-registration",
        grant=transfer_grant(),
        mandate=None,
        now=NOW,
    )
    assert batches == [10]  # five fields, each read and release-in-full


def test_decisions_name_only_known_policies(engine: PolicyEngine) -> None:
    cases = [
        decide(engine, ["name", "photo", "ethnicity"], grant=transfer_grant()),
        decide(engine, ["name", "address"], agency=PUBLIC_SECURITY, mandate=police_mandate()),
        decide(engine, ["name"], agency=HOUSING, mandate=police_mandate(None)),
    ]
    for decisions in cases:
        for decision in decisions.values():
            assert set(decision.read.policy_ids + decision.release.policy_ids) <= set(engine.policy_ids)
