import shutil
import tomllib
from pathlib import Path

import pytest

from vault.licences.types import LicenceCatalogue, OwnerKind, Sensitivity, load_catalogue
from vault.policy.catalogue import (
    MANDATES_FILE,
    SERVICE_CATALOGUE_FILE,
    ServiceCatalogue,
    ServiceUse,
    load_mandates,
    load_service_catalogue,
    load_service_items,
)
from vault.policy.errors import CatalogueError, PolicyError, UnknownMandate, UnknownServiceItem

POLICIES = Path(__file__).resolve().parents[3] / "policies"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def licences() -> LicenceCatalogue:
    return load_catalogue(POLICIES)


@pytest.fixture(scope="module")
def catalogue(licences: LicenceCatalogue) -> ServiceCatalogue:
    return load_service_catalogue(POLICIES, licences)


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """A copy of the real policies directory that a test may change."""
    copy = tmp_path / "policies"
    shutil.copytree(POLICIES, copy)
    return copy


def append(path: Path, fixture: Path) -> None:
    with path.open("a", encoding="utf-8") as stream:
        stream.write("\n" + fixture.read_text(encoding="utf-8"))


# The shipped catalogue


def test_at_least_eight_items_across_every_requesting_department(
    catalogue: ServiceCatalogue, licences: LicenceCatalogue
) -> None:
    assert len(catalogue.items) >= 8
    assert {item.department for item in catalogue.items.values()} == set(licences.departments)


def test_an_item_is_read_in_full(catalogue: ServiceCatalogue) -> None:
    item = catalogue.item("vehicle-transfer-registration")
    assert (item.name_zh, item.department, item.use, item.max_grant_days) == (
        "机动车转移登记",
        "traffic-police",
        ServiceUse.ONCE,
        30,
    )
    assert item.legal_basis.startswith("《机动车登记规定》")
    assert item.fields["resident-id-card"] == ("name", "id_number", "address")
    assert "vin" in item.fields["vehicle-licence"]
    assert item.masked == {"vehicle-licence": ("owner_name",)}
    assert item.in_full == {"resident-id-card": ("id_number", "address")}
    assert item.owner_kinds == {OwnerKind.PERSON}
    assert item.needs("vehicle-licence", "vin") and not item.needs("vehicle-licence", "engine_number")


def test_items_serve_the_owners_that_hold_their_licences(catalogue: ServiceCatalogue) -> None:
    assert catalogue.item("road-freight-permit-application").owner_kinds == {OwnerKind.ENTERPRISE}
    assert catalogue.item("social-insurance-enrolment").owner_kinds == {OwnerKind.PERSON}
    assert catalogue.item("minimum-living-allowance").use is ServiceUse.REPEATED


def test_no_item_asks_for_a_biometric_field(catalogue: ServiceCatalogue, licences: LicenceCatalogue) -> None:
    for item in catalogue.items.values():
        for licence_type, names in item.fields.items():
            sensitivities = {licences.type(licence_type).field(name).sensitivity for name in names}
            assert Sensitivity.BIOMETRIC not in sensitivities, item.code


def test_items_of_a_department(catalogue: ServiceCatalogue) -> None:
    codes = {item.code for item in catalogue.items_of("housing")}
    assert codes == {"housing-purchase-qualification", "housing-provident-fund-withdrawal"}


def test_mandates_are_read(catalogue: ServiceCatalogue) -> None:
    police = catalogue.mandate("police-criminal-investigation")
    assert police.agency_categories == {"police"}
    assert police.departments == {"public-security"}
    assert police.requires_case_reference is True
    assert police.deferral_days == 90
    assert police.covers("resident-id-card", "photo") and police.is_sensitive("resident-id-card", "photo")
    assert police.case_pattern is not None and police.case_pattern.fullmatch("XS-2026-000042")
    assert not police.case_pattern.fullmatch("x") and police.rate_limits.per_case <= police.rate_limits.per_client
    assert not police.covers("resident-id-card", "valid_until")
    assert police.legal_basis == "《中华人民共和国刑事诉讼法》第五十四条"
    assert catalogue.mandate("social-assistance-means-check").agency_categories == {"civil-affairs"}


def test_unknown_codes_are_refused(catalogue: ServiceCatalogue) -> None:
    with pytest.raises(UnknownServiceItem, match="no service item with code 'passport-application'"):
        catalogue.item("passport-application")
    with pytest.raises(UnknownMandate, match="no legal mandate with id 'tax-audit'"):
        catalogue.mandate("tax-audit")


def test_catalogue_cannot_be_changed(catalogue: ServiceCatalogue) -> None:
    with pytest.raises(TypeError):
        catalogue.items["x"] = catalogue.item("vehicle-registration")  # type: ignore[index]


# Broken items: each fixture is one [[items]] table appended to a copy of the real catalogue (it becomes items[11])

BROKEN_ITEMS = {
    "unknown-field": ("items[11].fields.resident-id-card[1]", "'blood_type' is not a field of resident-id-card"),
    "unknown-licence-type": ("items[11].fields.passport", "'passport' is not a licence type under licence_types/"),
    "unknown-department": ("items[11].department", "'tax' is not a department in departments.toml"),
    "biometric-field": ("items[11].fields.resident-id-card[1]", "'photo' is biometric: it never leaves under consent"),
    "no-common-holder": ("items[11].fields", "no owner can hold all of resident-id-card, business-licence"),
    "no-fields": ("items[11].fields", "must name at least one licence type"),
    "grant-too-long": ("items[11].max_grant_days", "must be at most 366"),
    "unknown-use": ("items[11].use", "'twice' is not one of once, repeated"),
    "masked-sensitive": (
        "items[11].masked.resident-id-card[0]",
        "'id_number' is sensitive and goes out masked already",
    ),
    "masked-full-rule": (
        "items[11].masked.resident-id-card[0]",
        "'sex' has the mask rule 'full', so masking it would hide nothing",
    ),
    "in-full-personal": (
        "items[11].in_full.resident-id-card[0]",
        "'name' is personal: only sensitive fields are listed in in_full",
    ),
    "in-full-not-needed": ("items[11].in_full.resident-id-card[0]", "'address' is not among the item's fields"),
    "duplicate-code": ("items[11].code", "'vehicle-registration' is listed twice"),
    "bad-code": ("items[11].code", "'Test_Item' is not lower-case words joined by hyphens"),
    "missing-legal-basis": ("items[11].legal_basis", "missing"),
    "unknown-key": ("items[11].owner_kind", "unknown key"),
    "unknown-predicate": (
        "items[11].questions[0].predicate",
        "'blood-type-is-a' is not a predicate in predicates.toml",
    ),
    "personal-parameter-fixed": (
        "items[11].questions[0].parameters.name",
        "a value about a person is given when asking, never fixed",
    ),
    "bad-fixed-parameter": (
        "items[11].questions[0].parameters",
        "parameter 'class': not one of the allowed values",
    ),
    "no-fields-no-questions": (
        "items[11].fields",
        "missing: an item lists the fields it reads, the questions it asks, or both",
    ),
}


def test_every_item_fixture_is_tested() -> None:
    assert {path.stem for path in (FIXTURES / "items").glob("*.toml")} == set(BROKEN_ITEMS)


@pytest.mark.parametrize("case", sorted(BROKEN_ITEMS))
def test_a_broken_item_is_refused_naming_file_key_and_problem(
    case: str, policies: Path, licences: LicenceCatalogue
) -> None:
    before = len(tomllib.loads((policies / SERVICE_CATALOGUE_FILE).read_text(encoding="utf-8"))["items"])
    append(policies / SERVICE_CATALOGUE_FILE, FIXTURES / "items" / f"{case}.toml")
    key, problem = BROKEN_ITEMS[case]
    key = key.replace("items[11]", f"items[{before}]")  # the fixture is the item after the real ones

    with pytest.raises(CatalogueError) as caught:
        load_service_items(policies, licences)

    assert (caught.value.file, caught.value.key, caught.value.problem) == (SERVICE_CATALOGUE_FILE, key, problem)
    assert str(caught.value) == f"{SERVICE_CATALOGUE_FILE}: {key}: {problem}"
    assert isinstance(caught.value, PolicyError)


def test_a_department_that_never_requests_cannot_perform_items(policies: Path) -> None:
    departments = policies / "departments.toml"
    text = departments.read_text(encoding="utf-8")
    departments.write_text(text.replace('roles = ["requester"]', 'roles = ["issuer"]', 1), encoding="utf-8")

    with pytest.raises(CatalogueError, match=r"items\[8\].department: 'civil-affairs' does not request licences"):
        load_service_items(policies, load_catalogue(policies))


def test_a_missing_catalogue_file_is_named(policies: Path, licences: LicenceCatalogue) -> None:
    (policies / SERVICE_CATALOGUE_FILE).unlink()

    with pytest.raises(CatalogueError, match=f"^{SERVICE_CATALOGUE_FILE}: file not found$"):
        load_service_items(policies, licences)


def test_invalid_toml_is_named(policies: Path, licences: LicenceCatalogue) -> None:
    (policies / MANDATES_FILE).write_text("[[mandates]\n", encoding="utf-8")

    with pytest.raises(CatalogueError, match=f"^{MANDATES_FILE}: invalid TOML"):
        load_mandates(policies, licences)


# Broken mandates: appended to a copy of mandates.toml (each becomes mandates[3])

BROKEN_MANDATES = {
    "unknown-department": ("mandates[3].departments[1]", "'tax' is not a department in departments.toml"),
    "unknown-field": (
        "mandates[3].fields.household-register[1]",
        "'blood_type' is not a field of household-register",
    ),
    "negative-deferral": ("mandates[3].deferral_days", "must be between 0 and 3650"),
    "case-reference-not-boolean": ("mandates[3].requires_case_reference", "expected a boolean, got a string"),
    "bad-category": ("mandates[3].agency_categories[0]", "'Police' is not lower-case words joined by hyphens"),
    "duplicate-id": ("mandates[3].id", "'traffic-accident-handling' is listed twice"),
    "sensitive-under-fields": (
        "mandates[3].fields.resident-id-card[0]",
        "'photo' is biometric: list it under sensitive_fields",
    ),
    "ordinary-under-sensitive-fields": (
        "mandates[3].sensitive_fields.resident-id-card[0]",
        "'sex' is personal: list it under fields",
    ),
    "unanchored-case-pattern": ("mandates[3].case_pattern", "must be anchored: start with ^ and end with $"),
    "missing-case-pattern": (
        "mandates[3].case_pattern",
        "missing: a mandate that requires a case reference declares its format",
    ),
    "case-limit-over-client-limit": ("mandates[3].rate_limits.per_case", "must not exceed per_client"),
    "no-rate-limits": ("mandates[3].rate_limits", "missing"),
}


def test_every_mandate_fixture_is_tested() -> None:
    assert {path.stem for path in (FIXTURES / "mandates").glob("*.toml")} == set(BROKEN_MANDATES)


@pytest.mark.parametrize("case", sorted(BROKEN_MANDATES))
def test_a_broken_mandate_is_refused_naming_file_key_and_problem(
    case: str, policies: Path, licences: LicenceCatalogue
) -> None:
    append(policies / MANDATES_FILE, FIXTURES / "mandates" / f"{case}.toml")
    key, problem = BROKEN_MANDATES[case]

    with pytest.raises(CatalogueError) as caught:
        load_service_catalogue(policies, licences)

    assert (caught.value.file, caught.value.key, caught.value.problem) == (MANDATES_FILE, key, problem)
