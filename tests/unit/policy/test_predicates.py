"""Predicates as data: loading predicates.toml, the questions' wording, their parameters, and Cedar's decision."""

import dataclasses
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from vault.licences.types import LicenceCatalogue, load_catalogue
from vault.policy.catalogue import load_service_catalogue
from vault.policy.engine import DEFAULT_DENY, AgencyInfo, GrantInfo, PolicyEngine
from vault.policy.errors import CatalogueError, UnknownPredicate
from vault.policy.predicates import PREDICATES_FILE, BadParameters, PredicateTest, age_on, same_value

POLICIES = Path(__file__).resolve().parents[3] / "policies"
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TRANSPORT = AgencyInfo(
    client_id="transport-bureau",
    category="transport",
    department="transport",
    suspended=False,
    service_items=frozenset({"ride-hailing-driver-check", "road-freight-operator-check"}),
)
GRANT = GrantInfo(
    grant_id="grant-1",
    owner_id="owner-1",
    agency_client_id="transport-bureau",
    service_item="ride-hailing-driver-check",
    fields={},
    purpose="ride-hailing-driver-check",
    valid_from=NOW - timedelta(days=1),
    valid_until=NOW + timedelta(days=20),
    uses_left=None,
    state="active",
    questions=("driving-licence-class-valid", "holder-age-at-least"),
)


@pytest.fixture(scope="module")
def licences() -> LicenceCatalogue:
    return load_catalogue(POLICIES)


@pytest.fixture(scope="module")
def engine(licences: LicenceCatalogue) -> PolicyEngine:
    return PolicyEngine.load(POLICIES, licences)


def test_the_demo_predicates_load_with_their_tests(engine: PolicyEngine) -> None:
    predicates = engine.catalogue.predicates
    assert {p.id: p.test for p in predicates.values()} == {
        "driving-licence-class-valid": PredicateTest.EQUALS,
        "name-and-id-number-match": PredicateTest.EQUALS,
        "business-licence-in-force": PredicateTest.IN_FORCE,
        "holder-age-at-least": PredicateTest.AGE_AT_LEAST,
    }
    match = predicates["name-and-id-number-match"]
    assert all(p.personal for p in match.parameters) and not match.in_force
    assert not predicates["driving-licence-class-valid"].parameters[0].personal
    item = engine.catalogue.item("ride-hailing-driver-check")
    assert dict(item.questions["driving-licence-class-valid"]) == {"class": "C1"}
    assert item.fields == {}
    with pytest.raises(UnknownPredicate):
        engine.catalogue.predicate("blood-type")


def test_the_question_reads_with_its_parameters_or_their_labels(engine: PolicyEngine) -> None:
    predicate = engine.catalogue.predicate("driving-licence-class-valid")
    assert predicate.question("zh", {"class": "C1"}) == "是否持有有效的C1驾驶证"
    assert (
        predicate.question("en", {"class": "C1"}) == "Does the holder have a driving licence of class C1, valid today?"
    )
    assert predicate.question("zh", {}) == "是否持有有效的（准驾车型）驾驶证"
    assert (
        predicate.question("en", {}) == "Does the holder have a driving licence of class [vehicle class], valid today?"
    )


def test_parameters_are_checked_and_the_fixed_ones_hold(engine: PolicyEngine, licences: LicenceCatalogue) -> None:
    age = engine.catalogue.predicate("holder-age-at-least")
    card = licences.type("resident-id-card")
    assert age.check_parameters(card, {"years": "18"}, {}) == {"years": 18}
    assert age.check_parameters(card, {}, {"years": 16}) == {"years": 16}
    for given, message in [
        ({}, "holder-age-at-least needs the parameter 'years'"),
        ({"years": True}, "parameter 'years' must be an integer"),
        ({"years": 0}, "parameter 'years' must be between 1 and 120"),
        ({"years": 17}, "parameter 'years' is fixed by the service item consented to: it must be 16 or left out"),
    ]:
        with pytest.raises(BadParameters) as caught:
            age.check_parameters(card, given, {"years": 16} if given == {"years": 17} else {})
        assert str(caught.value) == message
    match = engine.catalogue.predicate("name-and-id-number-match")
    with pytest.raises(BadParameters, match="parameter 'name' must be a string"):
        match.check_parameters(card, {"name": 5, "id_number": "x"}, {})


def test_values_compare_as_the_vault_does() -> None:
    assert same_value("11010119900101123X", " 11010119900101123x ")
    assert not same_value(None, "")
    assert not same_value("张三", "张四")
    assert age_on(date(2008, 12, 1), date(2026, 11, 30)) == 17
    assert age_on(date(2008, 11, 30), date(2026, 11, 30)) == 18
    assert age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17


def test_cedar_allows_a_granted_question_and_denies_the_rest_by_default(engine: PolicyEngine) -> None:
    def ask(predicate: str, grant: GrantInfo | None = GRANT, **changes: object) -> tuple[bool, str]:
        if grant is not None and changes:
            grant = dataclasses.replace(grant, **changes)  # type: ignore[arg-type]
        decision = engine.decide_question(
            TRANSPORT,
            owner_id="owner-1",
            owner_kind="person",
            predicate_id=predicate,
            purpose="ride-hailing-driver-check",
            grant=grant,
            now=NOW,
        )
        return decision.allowed, decision.reason

    assert ask("holder-age-at-least") == (True, "permit: consent-ask")
    assert ask("name-and-id-number-match") == (False, DEFAULT_DENY)  # the item asks it, the owner did not grant it
    # a person holds no business licence, and the driver item does not ask about one
    refused = ask("business-licence-in-force", questions=("business-licence-in-force",))[1]
    assert refused == "forbid: owner-cannot-hold-licence-type, grant-question-not-asked-by-item"
    assert "grant-not-active" in ask("holder-age-at-least", state="revoked")[1]
    assert "grant-exhausted" in ask("holder-age-at-least", uses_left=0)[1]
    assert "grant-of-another-agency" in ask("holder-age-at-least", agency_client_id="someone-else")[1]
    assert ask("holder-age-at-least", grant=None) == (False, "a question is asked under a consent grant")
    assert ask("no-such") == (False, "no predicate 'no-such'")


BROKEN = {
    "unknown licence type": (
        'licence_type = "driving-licence"',
        'licence_type = "passport"',
        "predicates[0].licence_type",
    ),
    "unknown field": ('fields = ["class", "valid_from"', 'fields = ["blood", "valid_from"', "predicates[0].fields[0]"),
    "unknown test": ('test = "in-force"', 'test = "guess"', "predicates[2].test"),
    "placeholder": ("{years}周岁", "{months}周岁", "predicates[3].question_zh"),
    "parameter field not read": ('field = "class"', 'field = "name"', "predicates[0].parameters[0].field"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_predicate_is_a_start_up_error_naming_its_key(
    case: str, tmp_path: Path, licences: LicenceCatalogue
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    before, after, key = BROKEN[case]
    path = policies / PREDICATES_FILE
    text = path.read_text(encoding="utf-8")
    assert before in text
    path.write_text(text.replace(before, after, 1), encoding="utf-8")

    with pytest.raises(CatalogueError) as caught:
        load_service_catalogue(policies, licences)

    assert caught.value.file == PREDICATES_FILE and caught.value.key == key
