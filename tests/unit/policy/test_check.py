import shutil
from pathlib import Path

import pytest

from vault.policy.check import check, locate_key, read_cedar

POLICIES = Path(__file__).resolve().parents[3] / "policies"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """A copy of the real policies directory that a test may change."""
    copy = tmp_path / "policies"
    shutil.copytree(POLICIES, copy)
    return copy


def line_of(path: Path, text: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line of ``path`` containing ``text``."""
    found = [number for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1) if text in line]
    return found[occurrence - 1]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_the_shipped_policies_pass() -> None:
    assert check(POLICIES) == []


def test_the_shipped_policies_load_with_an_id_each() -> None:
    policies, problems = read_cedar(POLICIES)
    assert problems == []
    assert policies is not None
    assert policies.ids[:2] == ("request-consent-for-own-item", "consent-read")  # consent.cedar comes first


# Cedar: each fixture is copied next to the real policies; the message names the file and the line.

BROKEN_CEDAR = {
    "syntax-error": (7, "unexpected token `&&`"),
    "unknown-attribute": (10, "broken-attribute: attribute `suspendd` on entity type `Agency` not found"),
    "unknown-entity-type": (4, "broken-entity-type: unrecognized entity type `Officer`"),
    "missing-semicolon": (6, "unexpected token `@`"),
    "unclosed-string": (4, "invalid token (a string is never closed)"),
    "missing-id": (6, 'every policy needs an @id("...")'),
    "duplicate-id": (2, "@id 'consent-read' is already used in {policies}/consent.cedar"),
}


def test_every_cedar_fixture_is_tested() -> None:
    assert {path.stem for path in (FIXTURES / "cedar").glob("*.cedar")} == set(BROKEN_CEDAR)


@pytest.mark.parametrize("case", sorted(BROKEN_CEDAR))
def test_a_broken_policy_is_reported_with_file_and_line(case: str, policies: Path) -> None:
    shutil.copy(FIXTURES / "cedar" / f"{case}.cedar", policies)
    line, message = BROKEN_CEDAR[case]

    problems = check(policies)

    expected = f"{policies.as_posix()}/{case}.cedar:{line}: {message.format(policies=policies.as_posix())}"
    assert problems[0] == expected


def test_every_validation_error_is_reported(policies: Path) -> None:
    shutil.copy(FIXTURES / "cedar" / "unknown-attribute.cedar", policies)
    edit(policies / "guards.cedar", "when { principal.suspended };", "when { principal.suspendedd };")

    problems = check(policies)

    guards_line = line_of(policies / "guards.cedar", "principal.suspendedd")
    assert [problem.split(": ")[0] for problem in problems] == [
        f"{policies.as_posix()}/guards.cedar:{guards_line}",
        f"{policies.as_posix()}/unknown-attribute.cedar:10",
    ]


def test_a_type_error_is_placed_on_its_policy(policies: Path) -> None:
    edit(policies / "masking.cedar", 'resource.sensitivity == "sensitive"', "resource.sensitivity == 3")

    problems = check(policies)

    where = f"{policies.as_posix()}/masking.cedar:{line_of(policies / 'masking.cedar', 'full-sensitive-field')}"
    assert f"{where}: full-sensitive-field-needed-by-item: the types Long and String are not compatible" in problems


def test_an_unknown_action_is_named(policies: Path) -> None:
    edit(policies / "consent.cedar", 'Action::"readField"', 'Action::"readFields"')

    problems = check(policies)

    line = line_of(policies / "consent.cedar", 'Action::"readFields"')
    assert problems[0] == (
        f'{policies.as_posix()}/consent.cedar:{line}: consent-read: unrecognized action `Action::"readFields"`'
    )


def test_a_schema_syntax_error_is_reported_with_its_line(policies: Path) -> None:
    schema = policies / "schema.cedarschema"
    edit(schema, "  suspended: Bool,", "  suspended: Bool")

    [problem] = check(policies)

    # The missing comma is noticed at the next token, on the next line.
    line = line_of(schema, "suspended: Bool") + 1
    assert problem == f"{schema.as_posix()}:{line}: error parsing schema: unexpected token `services`"


def test_an_unknown_schema_type_is_placed_where_it_is_used(policies: Path) -> None:
    schema = policies / "schema.cedarschema"
    edit(schema, "item: ServiceItem,", "item: ServiceItme,")

    [problem] = check(policies)

    assert problem == f"{schema.as_posix()}:{line_of(schema, 'ServiceItme')}: failed to resolve type: ServiceItme"


def test_a_schema_the_catalogues_do_not_fit_is_reported(policies: Path) -> None:
    edit(policies / "schema.cedarschema", "licenceType: String,", "licenceType: Long,")  # no policy reads it

    [problem] = check(policies)

    assert problem.startswith(f"{(policies / 'schema.cedarschema').as_posix()}: the catalogues do not fit the schema")


def test_missing_schema_and_policies_are_reported(policies: Path) -> None:
    (policies / "schema.cedarschema").unlink()
    for path in policies.glob("*.cedar"):
        path.unlink()

    assert check(policies) == [
        f"{policies.as_posix()}/schema.cedarschema: file not found",
        f"{policies.as_posix()}: no *.cedar policy files",
    ]


def test_policies_still_parse_checked_when_the_schema_is_broken(policies: Path) -> None:
    (policies / "schema.cedarschema").write_text("entity Agency = {", encoding="utf-8")
    shutil.copy(FIXTURES / "cedar" / "syntax-error.cedar", policies)

    problems = check(policies)

    assert len(problems) == 2
    assert problems[1] == f"{policies.as_posix()}/syntax-error.cedar:7: unexpected token `&&`"


# TOML: the catalogues' errors name the key; check adds the line.


def test_a_catalogue_item_naming_an_unknown_field_is_reported_with_its_line(policies: Path) -> None:
    catalogue = policies / "service_catalogue.toml"
    before = catalogue.read_text(encoding="utf-8").count("[[items]]")
    with catalogue.open("a", encoding="utf-8") as stream:
        stream.write("\n" + (FIXTURES / "items" / "unknown-field.toml").read_text(encoding="utf-8"))

    [problem] = check(policies)

    assert problem == (
        f"{catalogue.as_posix()}:{line_of(catalogue, 'blood_type')}: items[{before}].fields.resident-id-card[1]: "
        "'blood_type' is not a field of resident-id-card"
    )


def test_catalogue_and_mandate_problems_are_both_reported(policies: Path) -> None:
    edit(policies / "service_catalogue.toml", 'department = "housing"', 'department = "tax"')
    edit(policies / "mandates.toml", "deferral_days = 90", "deferral_days = -90")

    problems = check(policies)

    catalogue_line = line_of(policies / "service_catalogue.toml", 'department = "tax"')
    mandates_line = line_of(policies / "mandates.toml", "deferral_days = -90")
    assert problems == [
        f"{policies.as_posix()}/service_catalogue.toml:{catalogue_line}: items[9].department: "
        "'tax' is not a department in departments.toml",
        f"{policies.as_posix()}/mandates.toml:{mandates_line}: mandates[0].deferral_days: must be between 0 and 3650",
    ]


def test_a_broken_licence_type_is_reported_with_its_line(policies: Path) -> None:
    licence = policies / "licence_types" / "driving-licence.toml"
    edit(licence, 'sensitivity = "biometric"', 'sensitivity = "secret"')

    [problem] = check(policies)

    line = line_of(licence, '"secret"')
    assert problem == (
        f"{licence.as_posix()}:{line}: fields[12].sensitivity: "
        "'secret' is not one of public, personal, sensitive, biometric"
    )


def test_invalid_toml_is_reported_with_tomls_own_line(policies: Path) -> None:
    (policies / "mandates.toml").write_text('[[mandates]]\nid = "x"\nname_zh = \n', encoding="utf-8")

    [problem] = check(policies)

    assert problem.startswith(f"{policies.as_posix()}/mandates.toml:3: invalid TOML")


@pytest.mark.parametrize(
    ("key", "line"),
    [
        ("items", 1),
        ("items[1]", 7),
        ("items[1].code", 8),
        ("items[1].fields", 10),
        ("items[1].fields.resident-id-card", 11),
        ("items[1].fields.resident-id-card[2]", 13),
        ("items[1].fields.resident-id-card[3]", 11),
        ("items[1].masked.vehicle-licence[0]", 16),
        ("items[1].legal_basis", 7),
        ("items[2]", None),
        ("mandates", None),
    ],
)
def test_locate_key(key: str, line: int | None) -> None:
    text = "\n".join(
        [
            "[[items]]",  # 1
            'code = "a"',
            "",
            "[items.fields]",
            '"resident-id-card" = ["name"]',
            "",
            "[[items]]",  # 7
            'code = "b"  # comment',
            "",
            "[items.fields]",  # 10
            '"resident-id-card" = [',
            '    "name", "sex",  # "not an item"',
            '    "id_number",',  # 13
            "]",
            "[items.masked]",
            '"vehicle-licence" = ["owner_name"]',  # 16
        ]
    )
    assert locate_key(text, key) == line


def test_a_mandates_case_pattern_is_checked_with_its_line(policies: Path) -> None:
    edit(policies / "mandates.toml", "case_pattern = '^SG-\\d{4}-\\d{6}$'", "case_pattern = 'SG-\\d{4}-\\d{6}'")

    problems = check(policies)

    line = line_of(policies / "mandates.toml", "case_pattern = 'SG-")
    assert problems == [
        f"{policies.as_posix()}/mandates.toml:{line}: mandates[1].case_pattern: "
        "must be anchored: start with ^ and end with $"
    ]
