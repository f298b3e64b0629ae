import datetime
import shutil
from pathlib import Path

import pytest

from vault.licences.errors import (
    InvalidFieldValue,
    LicenceError,
    LicenceTypeError,
    UnknownLicenceField,
    UnknownLicenceType,
)
from vault.licences.types import (
    FieldDef,
    FieldType,
    LicenceCatalogue,
    OwnerKind,
    Sensitivity,
    load_catalogue,
)

POLICIES = Path(__file__).resolve().parents[3] / "policies"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

DEFAULT_NUMBER_FIELDS = {
    "resident-id-card": "id_number",
    "household-register": "household_number",
    "driving-licence": "licence_number",
    "vehicle-licence": "plate_number",
    "road-transport-permit": "permit_number",
    "business-licence": "credit_code",
}


@pytest.fixture(scope="module")
def catalogue() -> LicenceCatalogue:
    return load_catalogue(POLICIES)


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """A copy of the real policies directory that a test may change."""
    copy = tmp_path / "policies"
    shutil.copytree(POLICIES, copy)
    return copy


# The shipped catalogue


def test_the_six_default_types_load(catalogue: LicenceCatalogue) -> None:
    assert {code: t.number_field for code, t in catalogue.types.items()} == DEFAULT_NUMBER_FIELDS


def test_issuers_are_issuing_departments(catalogue: LicenceCatalogue) -> None:
    issuers = {t.code: t.issuer for t in catalogue.types.values()}
    assert issuers == {
        "resident-id-card": "public-security",
        "household-register": "public-security",
        "driving-licence": "traffic-police",
        "vehicle-licence": "traffic-police",
        "road-transport-permit": "transport",
        "business-licence": "market-regulation",
    }
    assert all(catalogue.departments[code].is_issuer for code in issuers.values())


def test_some_departments_only_request(catalogue: LicenceCatalogue) -> None:
    requesters_only = {code for code, d in catalogue.departments.items() if not d.is_issuer}
    assert {"civil-affairs", "human-resources-social-security", "housing"} <= requesters_only
    assert catalogue.departments["public-security"].name_zh == "公安局"


def test_holders(catalogue: LicenceCatalogue) -> None:
    assert catalogue.type("resident-id-card").holders == {OwnerKind.PERSON}
    assert catalogue.type("business-licence").holders == {OwnerKind.ENTERPRISE}
    assert catalogue.type("road-transport-permit").holders == {OwnerKind.PERSON, OwnerKind.ENTERPRISE}


def test_field_definitions_are_read(catalogue: LicenceCatalogue) -> None:
    id_card = catalogue.type("resident-id-card")
    assert id_card.field_names[:3] == ("name", "sex", "ethnicity")
    photo = id_card.field("photo")
    assert (photo.type, photo.sensitivity, photo.mask) == (FieldType.IMAGE_REF, Sensitivity.BIOMETRIC, "redact")
    assert id_card.field("valid_until").required is False
    assert id_card.field("name").label_zh == "姓名"
    assert "C1" in catalogue.type("driving-licence").field("class").values
    assert catalogue.type("vehicle-licence").field("approved_passengers").type is FieldType.INTEGER


def test_vct_finds_each_type(catalogue: LicenceCatalogue) -> None:
    for licence_type in catalogue.types.values():
        assert catalogue.by_vct(licence_type.vct) is licence_type
    assert catalogue.type("resident-id-card").vct == "urn:cn:licence:resident-id-card:1"


def test_unknown_code_and_vct_are_refused(catalogue: LicenceCatalogue) -> None:
    with pytest.raises(UnknownLicenceType, match="no licence type with code 'passport'"):
        catalogue.type("passport")
    with pytest.raises(UnknownLicenceType, match="no licence type with vct"):
        catalogue.by_vct("urn:cn:licence:passport:1")


def test_unknown_field_is_refused(catalogue: LicenceCatalogue) -> None:
    with pytest.raises(UnknownLicenceField, match="resident-id-card has no field 'blood_type'"):
        catalogue.type("resident-id-card").field("blood_type")


def test_catalogue_cannot_be_changed(catalogue: LicenceCatalogue) -> None:
    with pytest.raises(TypeError):
        catalogue.types["passport"] = catalogue.type("resident-id-card")  # type: ignore[index]


def test_sensitivity_is_ordered() -> None:
    assert Sensitivity.PUBLIC < Sensitivity.PERSONAL < Sensitivity.SENSITIVE < Sensitivity.BIOMETRIC
    assert Sensitivity.BIOMETRIC >= Sensitivity.SENSITIVE > Sensitivity.PUBLIC
    assert Sensitivity.PERSONAL <= Sensitivity.PERSONAL
    assert max(Sensitivity) is Sensitivity.BIOMETRIC
    assert sorted([Sensitivity.SENSITIVE, Sensitivity.PUBLIC]) == [Sensitivity.PUBLIC, Sensitivity.SENSITIVE]
    with pytest.raises(TypeError):
        assert Sensitivity.PUBLIC < "personal"


# Adding a type is a data change


def test_a_seventh_type_is_added_as_a_file(policies: Path) -> None:
    shutil.copy(FIXTURES / "food-business-licence.toml", policies / "licence_types")

    catalogue = load_catalogue(policies)

    assert len(catalogue.types) == 7
    food = catalogue.by_vct("urn:cn:licence:food-business-licence:1")
    assert food is catalogue.type("food-business-licence")
    assert food.issuer == "market-regulation"
    assert food.validity_years == 5
    assert food.field("business_form").values == ("食品销售经营者", "餐饮服务经营者", "单位食堂")


def test_a_type_with_a_new_department_is_added_as_data(policies: Path) -> None:
    departments = policies / "departments.toml"
    departments.write_text(
        departments.read_text(encoding="utf-8")
        + '\n[[departments]]\ncode = "agriculture"\nname_zh = "农业农村局"\n'
        + 'name_en = "Agriculture and Rural Affairs Bureau"\nroles = ["issuer"]\n',
        encoding="utf-8",
    )
    fishing = (FIXTURES / "food-business-licence.toml").read_text(encoding="utf-8")
    fishing = fishing.replace("food-business-licence", "fishing-licence").replace("market-regulation", "agriculture")
    (policies / "licence_types" / "fishing-licence.toml").write_text(fishing, encoding="utf-8")

    assert load_catalogue(policies).type("fishing-licence").issuer == "agriculture"


# Broken definitions: each fixture under fixtures/broken/ breaks one rule

BROKEN = {
    "bad-field-name.toml": "fields[1].name: 'HolderName' is not lower-case words joined by underscores",
    "bad-mask-syntax.toml": ("fields[0].mask: 'keep:3' is not a mask rule (full, redact, year or keep:<first>:<last>)"),
    "bad-vct.toml": "vct: 'test permit 1' is not a URI such as urn:cn:licence:<code>:<version>",
    "biometric-not-redacted.toml": "fields[3].mask: image and biometric fields must be masked with 'redact'",
    "boolean-validity.toml": "validity_years: expected an integer, got a boolean",
    "code-mismatch.toml": "code: 'fishing-permit' does not match the file name 'code-mismatch'",
    "duplicate-enum-value.toml": "fields[2].values[2]: '男' is listed twice",
    "duplicate-field-name.toml": "fields[2].name: 'holder_name' is already the name of an earlier field",
    "duplicate-vct.toml": (
        "vct: 'urn:cn:licence:business-licence:1' is also the vct of licence_types/business-licence.toml"
    ),
    "empty-name.toml": "name_zh: must not be empty",
    "enum-without-values.toml": "fields[2].values: missing (an enum field lists its allowed values)",
    "fields-not-tables.toml": "fields[0]: expected a table, got a string",
    "full-mask-on-sensitive.toml": "fields[0].mask: 'full' would show a sensitive field unmasked",
    "missing-fields.toml": "fields: missing",
    "missing-label.toml": "fields[1].label_en: missing",
    "missing-vct.toml": "vct: missing",
    "number-field-not-a-field.toml": "number_field: 'permit_number' is not one of the fields",
    "number-field-optional.toml": "number_field: 'licence_number' must be a required string field",
    "requester-as-issuer.toml": "issuer: 'civil-affairs' does not issue licences (its roles lack 'issuer')",
    "unknown-field-key.toml": "fields[0].colour: unknown key",
    "unknown-field-type.toml": "fields[1].type: 'text' is not one of string, date, enum, integer, image_ref",
    "unknown-holder.toml": "holders[1]: 'robot' is not one of person, enterprise",
    "unknown-issuer.toml": "issuer: 'tax' is not a department in departments.toml",
    "unknown-sensitivity.toml": (
        "fields[2].sensitivity: 'secret' is not one of public, personal, sensitive, biometric"
    ),
    "unknown-top-level-key.toml": "owner: unknown key",
    "values-on-string.toml": "fields[1].values: only enum fields take values, and this is a string field",
    "wrong-type-required.toml": "fields[1].required: expected a boolean, got a string",
    "wrong-type-validity.toml": "validity_years: expected an integer, got a string",
    "year-mask-on-string.toml": "fields[1].mask: 'year' masks dates only, and this is a string field",
    "zero-validity.toml": "validity_years: must be at least 1",
}


def test_every_broken_fixture_has_an_expected_message() -> None:
    fixtures = {path.name for path in (FIXTURES / "broken").glob("*.toml")} - {"invalid-toml.toml"}
    assert fixtures == set(BROKEN)


@pytest.mark.parametrize(("name", "problem"), sorted(BROKEN.items()))
def test_a_broken_definition_names_file_key_and_problem(policies: Path, name: str, problem: str) -> None:
    shutil.copy(FIXTURES / "broken" / name, policies / "licence_types")

    with pytest.raises(LicenceTypeError) as raised:
        load_catalogue(policies)

    assert str(raised.value) == f"licence_types/{name}: {problem}"
    assert raised.value.file == f"licence_types/{name}"


def test_invalid_toml_names_the_file_and_the_position(policies: Path) -> None:
    shutil.copy(FIXTURES / "broken" / "invalid-toml.toml", policies / "licence_types")

    with pytest.raises(LicenceTypeError) as raised:
        load_catalogue(policies)

    assert str(raised.value).startswith("licence_types/invalid-toml.toml: invalid TOML: ")
    assert "line 4" in str(raised.value)
    assert raised.value.key is None


def test_a_file_that_is_not_utf8_is_refused(policies: Path) -> None:
    (policies / "licence_types" / "latin1.toml").write_bytes('name_zh = "身份证"'.encode("gb18030"))

    with pytest.raises(LicenceTypeError, match=r"^licence_types/latin1\.toml: not valid UTF-8$"):
        load_catalogue(policies)


@pytest.mark.parametrize(
    ("departments", "problem"),
    [
        ("", "departments: missing"),
        ('departments = "public-security"', "departments: expected an array of tables, got a string"),
        (
            '[[departments]]\ncode = "public-security"\nname_zh = "公安局"\nname_en = "PSB"\n',
            "departments[0].roles: missing",
        ),
        (
            '[[departments]]\ncode = "public-security"\nname_zh = "公安局"\nname_en = "PSB"\nroles = ["judge"]\n',
            "departments[0].roles[0]: 'judge' is not one of issuer, requester",
        ),
        (
            '[[departments]]\ncode = "Public Security"\nname_zh = "公安局"\nname_en = "PSB"\nroles = ["issuer"]\n',
            "departments[0].code: 'Public Security' is not lower-case words joined by hyphens",
        ),
        (
            '[[departments]]\ncode = "transport"\nname_zh = "交通运输局"\nname_en = "Transport"\nroles = ["issuer"]\n'
            '[[departments]]\ncode = "transport"\nname_zh = "交通局"\nname_en = "Transport"\nroles = ["issuer"]\n',
            "departments[1].code: 'transport' is listed twice",
        ),
    ],
)
def test_a_broken_departments_file_names_key_and_problem(policies: Path, departments: str, problem: str) -> None:
    (policies / "departments.toml").write_text(departments, encoding="utf-8")

    with pytest.raises(LicenceTypeError) as raised:
        load_catalogue(policies)

    assert str(raised.value) == f"departments.toml: {problem}"


def test_missing_files_are_named(policies: Path) -> None:
    shutil.rmtree(policies / "licence_types")
    with pytest.raises(LicenceTypeError, match=r"^licence_types: directory not found$"):
        load_catalogue(policies)

    (policies / "departments.toml").unlink()
    with pytest.raises(LicenceTypeError, match=r"^departments\.toml: file not found$"):
        load_catalogue(policies)


def test_licence_type_errors_are_licence_errors() -> None:
    assert issubclass(LicenceTypeError, LicenceError)
    assert issubclass(UnknownLicenceType, LicenceError)
    assert issubclass(InvalidFieldValue, LicenceError)


# Field values


def _field(field_type: FieldType, *, required: bool = True, values: tuple[str, ...] = ()) -> FieldDef:
    return FieldDef(
        name="example",
        label_zh="示例",
        label_en="Example",
        type=field_type,
        sensitivity=Sensitivity.PERSONAL,
        mask="keep:1:0",
        required=required,
        values=values,
    )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (_field(FieldType.STRING), "张三", "张三"),
        (_field(FieldType.DATE), "1990-05-17", "1990-05-17"),
        (_field(FieldType.DATE), datetime.date(1990, 5, 17), "1990-05-17"),
        (_field(FieldType.ENUM, values=("男", "女")), "女", "女"),
        (_field(FieldType.INTEGER), 5, 5),
        (_field(FieldType.INTEGER), 0, 0),
        (_field(FieldType.IMAGE_REF), "blob:sha256:ab12", "blob:sha256:ab12"),
        (_field(FieldType.STRING, required=False), None, None),
        (_field(FieldType.DATE, required=False), "", None),
    ],
)
def test_valid_values_are_returned(field: FieldDef, value: object, expected: object) -> None:
    assert field.validate_value(value) == expected


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        (_field(FieldType.STRING), None, "a value is required"),
        (_field(FieldType.STRING), "  ", "a value is required"),
        (_field(FieldType.STRING), 110101, "not a string"),
        (_field(FieldType.DATE), "1990-02-30", "not a calendar date written yyyy-mm-dd"),
        (_field(FieldType.DATE), "19900517", "not a calendar date written yyyy-mm-dd"),
        (_field(FieldType.DATE), "1990-5-17", "not a calendar date written yyyy-mm-dd"),
        (_field(FieldType.DATE), datetime.datetime(1990, 5, 17, 8, 0), "not a calendar date written yyyy-mm-dd"),
        (_field(FieldType.ENUM, values=("男", "女")), "未知", "not one of the allowed values"),
        (_field(FieldType.INTEGER), "5", "not an integer"),
        (_field(FieldType.INTEGER), True, "not an integer"),
        (_field(FieldType.INTEGER), 5.0, "not an integer"),
        (_field(FieldType.IMAGE_REF), "blob: 1", "an image reference cannot contain whitespace"),
    ],
)
def test_invalid_values_name_field_and_rule_but_not_the_value(field: FieldDef, value: object, rule: str) -> None:
    with pytest.raises(InvalidFieldValue) as raised:
        field.validate_value(value)

    assert str(raised.value) == f"field 'example': {rule}"
    assert (raised.value.field, raised.value.rule) == ("example", rule)
    if value is not None and str(value).strip():
        assert str(value) not in str(raised.value)


def test_driving_class_must_be_a_known_class(catalogue: LicenceCatalogue) -> None:
    driving_class = catalogue.type("driving-licence").field("class")
    assert driving_class.validate_value("C1") == "C1"
    with pytest.raises(InvalidFieldValue, match=r"^field 'class': not one of the allowed values$"):
        driving_class.validate_value("Z9")


def test_a_whole_licence_is_validated(catalogue: LicenceCatalogue) -> None:
    id_card = catalogue.type("resident-id-card")
    values: dict[str, object] = {
        "name": "张三",
        "sex": "男",
        "ethnicity": "汉",
        "birth_date": "1990-03-07",
        "address": "北京市东城区示例路1号",
        "id_number": "11010119900307123X",
        "issuing_authority": "北京市公安局东城分局",
        "valid_from": datetime.date(2020, 1, 1),
        "valid_until": None,
        "photo": "blob:sha256:ab12",
    }

    checked = id_card.validate_values(values)

    assert checked["valid_from"] == "2020-01-01"
    assert "valid_until" not in checked
    with pytest.raises(InvalidFieldValue, match=r"^field 'photo': a value is required$"):
        id_card.validate_values({**values, "photo": None})
    with pytest.raises(UnknownLicenceField, match="has no field 'blood_type'"):
        id_card.validate_values({**values, "blood_type": "A"})


def test_masked_uses_the_field_rule(catalogue: LicenceCatalogue) -> None:
    id_card = catalogue.type("resident-id-card")
    assert id_card.field("name").masked("张三") == "张*"
    assert id_card.field("id_number").masked("11010119900307123X") == "110***********123X"
    assert id_card.field("birth_date").masked("1990-03-07") == "1990-**-**"
    assert id_card.field("address").masked("北京市东城区示例路1号") == "***"
    assert catalogue.type("vehicle-licence").field("approved_passengers").masked(5) == "5"
