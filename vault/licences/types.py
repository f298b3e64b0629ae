"""Licence types and departments, declared as data under policies/ and checked when loaded.

policies/departments.toml lists the departments; policies/licence_types/<code>.toml declares one licence type
each. Adding a licence type is adding a file: nothing here names a type.
"""

import datetime
import functools
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from vault.crypto.free_text import TextProblem, check_text
from vault.licences import masking
from vault.licences.errors import (
    InvalidFieldValue,
    InvalidValues,
    LicenceTypeError,
    UnknownLicenceField,
    UnknownLicenceType,
)
from vault.owners.models import OwnerKind

DEPARTMENTS_FILE = "departments.toml"
LICENCE_TYPES_DIR = "licence_types"

FieldValue = str | int


class FieldType(Enum):
    STRING = "string"
    DATE = "date"
    ENUM = "enum"
    INTEGER = "integer"
    IMAGE_REF = "image_ref"


class Sensitivity(Enum):
    """How much harm disclosure does, ordered: public < personal < sensitive < biometric."""

    PUBLIC = "public"
    PERSONAL = "personal"
    SENSITIVE = "sensitive"
    BIOMETRIC = "biometric"

    @property
    def rank(self) -> int:
        return list(Sensitivity).index(self)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Sensitivity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Sensitivity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Sensitivity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Sensitivity):
            return NotImplemented
        return self.rank >= other.rank


class DepartmentRole(Enum):
    ISSUER = "issuer"
    REQUESTER = "requester"


@dataclass(frozen=True)
class Department:
    code: str
    name_zh: str
    name_en: str
    roles: frozenset[DepartmentRole]

    @property
    def is_issuer(self) -> bool:
        return DepartmentRole.ISSUER in self.roles


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# characters a value may have when its definition declares no max_length
DEFAULT_MAX_LENGTH = {FieldType.STRING: 200, FieldType.ENUM: 100, FieldType.IMAGE_REF: 500, FieldType.DATE: 10}
MAX_INTEGER = 10**18 - 1
# (earlier, later): dates that must not be the wrong way round when a licence has both
DATE_ORDER = (
    ("valid_from", "valid_until"),
    ("birth_date", "first_issue_date"),
    ("established_date", "registration_date"),
)


@dataclass(frozen=True)
class FieldDef:
    name: str
    label_zh: str
    label_en: str
    type: FieldType
    sensitivity: Sensitivity
    mask: str
    required: bool = True
    values: tuple[str, ...] = ()
    max_length: int | None = None

    def validate_value(self, value: object) -> FieldValue | None:
        """Return ``value`` if it fits this field, a date object as its ISO string; raise InvalidFieldValue.

        None and blank strings count as absent: an error for a required field, None for an optional one.
        Error messages name the field and the rule broken, never the value.
        """
        if value is None or (isinstance(value, str) and not value.strip()):
            if self.required:
                raise InvalidFieldValue(self.name, "a value is required")
            return None
        if self.type is FieldType.INTEGER:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidFieldValue(self.name, "not an integer")
            if abs(value) > MAX_INTEGER:
                raise InvalidFieldValue(self.name, f"at most {len(str(MAX_INTEGER))} digits")
            return value
        if isinstance(value, str):
            try:
                value = check_text(value, max_length=self.max_length or DEFAULT_MAX_LENGTH[self.type])
            except TextProblem as problem:
                raise InvalidFieldValue(self.name, str(problem)) from None
        if self.type is FieldType.DATE:
            return _iso_date(self.name, value)
        if not isinstance(value, str):
            raise InvalidFieldValue(self.name, "not a string")
        if self.type is FieldType.ENUM and value not in self.values:
            raise InvalidFieldValue(self.name, "not one of the allowed values")
        if self.type is FieldType.IMAGE_REF and any(char.isspace() for char in value):
            raise InvalidFieldValue(self.name, "an image reference cannot contain whitespace")
        return value

    def masked(self, value: FieldValue) -> str:
        """The value as shown masked, e.g. on consent screens and in the compliance console."""
        return masking.mask(str(value), self.mask)


def _iso_date(field: str, value: object) -> str:
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            datetime.date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    raise InvalidFieldValue(field, "not a calendar date written yyyy-mm-dd")


@dataclass(frozen=True)
class LicenceType:
    code: str
    vct: str
    name_zh: str
    name_en: str
    issuer: str
    holders: frozenset[OwnerKind]
    number_field: str
    fields: tuple[FieldDef, ...]
    validity_years: int | None = None
    holder_name_field: str | None = None  # must equal the owner's name on record
    holder_id_field: str | None = None  # must equal the owner's resident ID number or credit code

    @functools.cached_property
    def field_names(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields)

    @functools.cached_property
    def _by_name(self) -> dict[str, FieldDef]:
        return {field.name: field for field in self.fields}

    def field(self, name: str) -> FieldDef:
        """The field called ``name``; raise UnknownLicenceField if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownLicenceField(f"{self.code} has no field {name!r}") from None

    def validate_values(self, values: Mapping[str, object]) -> dict[str, FieldValue]:
        """Check a whole licence's values against this type: no unknown fields, every required one present.

        Returns the validated values, absent optional fields left out; raises UnknownLicenceField for a name the
        type does not have, else InvalidValues carrying every problem found (see check_values).
        """
        for name in values:
            self.field(name)
        checked, problems = self.check_values(values)
        if problems:
            raise InvalidValues(problems)
        return checked

    def check_values(self, values: Mapping[str, object]) -> tuple[dict[str, FieldValue], list[InvalidFieldValue]]:
        """The values that pass (NFC-normalised), and one problem per field that does not, dates in order included.

        Names the type does not have are left out here; validate_values refuses them.
        """
        checked: dict[str, FieldValue] = {}
        problems: list[InvalidFieldValue] = []
        for field in self.fields:
            try:
                value = field.validate_value(values.get(field.name))
            except InvalidFieldValue as problem:
                problems.append(problem)
                continue
            if value is not None:
                checked[field.name] = value
        for earlier, later in DATE_ORDER:
            first, last = checked.get(earlier), checked.get(later)
            if isinstance(first, str) and isinstance(last, str) and last < first:  # ISO dates sort as dates
                problems.append(InvalidFieldValue(later, f"is before {earlier}"))
                del checked[later]
        return checked, problems


@dataclass(frozen=True)
class LicenceCatalogue:
    types: Mapping[str, LicenceType]
    departments: Mapping[str, Department]

    def type(self, code: str) -> LicenceType:
        """The licence type with this code; raise UnknownLicenceType if there is none."""
        try:
            return self.types[code]
        except KeyError:
            raise UnknownLicenceType(f"no licence type with code {code!r}") from None

    def by_vct(self, vct: str) -> LicenceType:
        """The licence type with this verifiable-credential type; raise UnknownLicenceType if there is none."""
        for licence_type in self.types.values():
            if licence_type.vct == vct:
                return licence_type
        raise UnknownLicenceType(f"no licence type with vct {vct!r}")


def load_catalogue(policies_dir: Path) -> LicenceCatalogue:
    """Read departments.toml and every licence_types/*.toml under ``policies_dir``.

    Raises LicenceTypeError naming the file, the key and the problem for the first broken definition.
    """
    departments = _load_departments(policies_dir, policies_dir / DEPARTMENTS_FILE)
    types_dir = policies_dir / LICENCE_TYPES_DIR
    if not types_dir.is_dir():
        raise LicenceTypeError(LICENCE_TYPES_DIR, None, "directory not found")
    types: dict[str, LicenceType] = {}
    vct_files: dict[str, str] = {}
    for path in sorted(types_dir.glob("*.toml")):
        licence_type = _load_licence_type(policies_dir, path, departments)
        file = _relative(policies_dir, path)
        if licence_type.vct in vct_files:
            raise LicenceTypeError(
                file, "vct", f"{licence_type.vct!r} is also the vct of {vct_files[licence_type.vct]}"
            )
        vct_files[licence_type.vct] = file
        types[licence_type.code] = licence_type
    return LicenceCatalogue(MappingProxyType(types), MappingProxyType(departments))


# Loading: every check below names the file and key, so a data author can fix a definition from the message.

_CODE = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_CODE_SYNTAX = "lower-case words joined by hyphens"
_FIELD_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
_FIELD_NAME_SYNTAX = "lower-case words joined by underscores"
_VCT = re.compile(r"[a-z][a-z0-9+.-]*:[^\s]+")
_VCT_SYNTAX = "a URI such as urn:cn:licence:<code>:<version>"

_TYPE_KEYS = ("code", "vct", "name_zh", "name_en", "issuer", "holders", "number_field", "fields")
_FIELD_KEYS = ("name", "label_zh", "label_en", "type", "sensitivity", "mask")
_DEPARTMENT_KEYS = ("code", "name_zh", "name_en", "roles")

_E = TypeVar("_E", bound=Enum)


def _relative(policies_dir: Path, path: Path) -> str:
    return path.relative_to(policies_dir).as_posix()


def _read_toml(policies_dir: Path, path: Path) -> dict[str, Any]:
    file = _relative(policies_dir, path)
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except FileNotFoundError:
        raise LicenceTypeError(file, None, "file not found") from None
    except UnicodeDecodeError:
        raise LicenceTypeError(file, None, "not valid UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise LicenceTypeError(file, None, f"invalid TOML: {error}") from None


def _describe(value: object) -> str:
    kinds: tuple[tuple[type, str], ...] = (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
        (datetime.datetime, "a date-time"),
        (datetime.date, "a date"),
        (datetime.time, "a time"),
    )
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


@dataclass(frozen=True)
class _Table:
    """One TOML table being read, with the file and key path its errors are reported against."""

    file: str
    path: str
    data: Mapping[str, Any]

    def key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str) -> LicenceTypeError:
        return LicenceTypeError(self.file, self.key(key), problem)

    def check_keys(self, required: Iterable[str], optional: Iterable[str] = ()) -> None:
        required = tuple(required)
        allowed = {*required, *optional}
        for key in self.data:
            if key not in allowed:
                raise self.error(key, "unknown key")
        for key in required:
            if key not in self.data:
                raise self.error(key, "missing")

    def _typed(self, key: str, kind: type, description: str) -> Any:
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(key, f"expected {description}, got {_describe(value)}")
        return value

    def text(self, key: str, pattern: re.Pattern[str] | None = None, syntax: str = "") -> str:
        value: str = self._typed(key, str, "a string")
        if not value.strip():
            raise self.error(key, "must not be empty")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.error(key, f"{value!r} is not {syntax}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.data:
            return default
        value: bool = self._typed(key, bool, "a boolean")
        return value

    def positive_integer(self, key: str) -> int | None:
        if key not in self.data:
            return None
        value: int = self._typed(key, int, "an integer")
        if value < 1:
            raise self.error(key, "must be at least 1")
        return value

    def choice(self, key: str, enum: type[_E]) -> _E:
        return _choice(self, key, self.text(key), enum)

    def texts(self, key: str) -> tuple[str, ...]:
        items: list[Any] = self._typed(key, list, "an array")
        if not items:
            raise self.error(key, "must not be empty")
        values: list[str] = []
        for index, item in enumerate(items):
            item_key = f"{key}[{index}]"
            if not isinstance(item, str):
                raise self.error(item_key, f"expected a string, got {_describe(item)}")
            if not item.strip():
                raise self.error(item_key, "must not be empty")
            if item in values:
                raise self.error(item_key, f"{item!r} is listed twice")
            values.append(item)
        return tuple(values)

    def choices(self, key: str, enum: type[_E]) -> frozenset[_E]:
        return frozenset(_choice(self, f"{key}[{index}]", item, enum) for index, item in enumerate(self.texts(key)))

    def tables(self, key: str) -> list["_Table"]:
        items: list[Any] = self._typed(key, list, "an array of tables")
        if not items:
            raise self.error(key, "must not be empty")
        tables = []
        for index, item in enumerate(items):
            item_path = self.key(f"{key}[{index}]")
            if not isinstance(item, dict):
                raise LicenceTypeError(self.file, item_path, f"expected a table, got {_describe(item)}")
            tables.append(_Table(self.file, item_path, item))
        return tables


def _choice(table: _Table, key: str, value: str, enum: type[_E]) -> _E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise table.error(key, f"{value!r} is not one of {allowed}") from None


def _load_departments(policies_dir: Path, path: Path) -> dict[str, Department]:
    root = _Table(_relative(policies_dir, path), "", _read_toml(policies_dir, path))
    root.check_keys(["departments"])
    departments: dict[str, Department] = {}
    for table in root.tables("departments"):
        table.check_keys(_DEPARTMENT_KEYS)
        code = table.text("code", _CODE, _CODE_SYNTAX)
        if code in departments:
            raise table.error("code", f"{code!r} is listed twice")
        departments[code] = Department(
            code=code,
            name_zh=table.text("name_zh"),
            name_en=table.text("name_en"),
            roles=table.choices("roles", DepartmentRole),
        )
    return departments


def _load_licence_type(policies_dir: Path, path: Path, departments: Mapping[str, Department]) -> LicenceType:
    root = _Table(_relative(policies_dir, path), "", _read_toml(policies_dir, path))
    root.check_keys(_TYPE_KEYS, optional=["validity_years", "holder_name_field", "holder_id_field"])
    code = root.text("code", _CODE, _CODE_SYNTAX)
    if code != path.stem:
        raise root.error("code", f"{code!r} does not match the file name {path.stem!r}")
    vct = root.text("vct", _VCT, _VCT_SYNTAX)
    name_zh = root.text("name_zh")
    name_en = root.text("name_en")
    issuer = root.text("issuer")
    if issuer not in departments:
        raise root.error("issuer", f"{issuer!r} is not a department in {DEPARTMENTS_FILE}")
    if not departments[issuer].is_issuer:
        raise root.error("issuer", f"{issuer!r} does not issue licences (its roles lack 'issuer')")
    holders = root.choices("holders", OwnerKind)
    number_field = root.text("number_field")
    validity_years = root.positive_integer("validity_years")

    fields: list[FieldDef] = []
    for table in root.tables("fields"):
        field = _load_field(table)
        if field.name in (earlier.name for earlier in fields):
            raise table.error("name", f"{field.name!r} is already the name of an earlier field")
        fields.append(field)

    number = next((field for field in fields if field.name == number_field), None)
    if number is None:
        raise root.error("number_field", f"{number_field!r} is not one of the fields")
    if number.type is not FieldType.STRING or not number.required:
        raise root.error("number_field", f"{number_field!r} must be a required string field")

    holder: dict[str, str | None] = {}
    for key in ("holder_name_field", "holder_id_field"):
        holder[key] = root.text(key) if key in root.data else None
        named = next((f for f in fields if f.name == holder[key]), None)
        if holder[key] is not None and (named is None or named.type is not FieldType.STRING or not named.required):
            raise root.error(key, f"{holder[key]!r} is not a required string field")

    return LicenceType(
        code=code,
        vct=vct,
        name_zh=name_zh,
        name_en=name_en,
        issuer=issuer,
        holders=holders,
        number_field=number_field,
        fields=tuple(fields),
        validity_years=validity_years,
        holder_name_field=holder["holder_name_field"],
        holder_id_field=holder["holder_id_field"],
    )


def _load_field(table: _Table) -> FieldDef:
    table.check_keys(_FIELD_KEYS, optional=["values", "required", "max_length"])
    name = table.text("name", _FIELD_NAME, _FIELD_NAME_SYNTAX)
    label_zh = table.text("label_zh")
    label_en = table.text("label_en")
    field_type = table.choice("type", FieldType)
    values: tuple[str, ...] = ()
    if field_type is FieldType.ENUM:
        if "values" not in table.data:
            raise table.error("values", "missing (an enum field lists its allowed values)")
        values = table.texts("values")
    elif "values" in table.data:
        raise table.error("values", f"only enum fields take values, and this is a {field_type.value} field")
    sensitivity = table.choice("sensitivity", Sensitivity)
    mask = table.text("mask")
    try:
        rule = masking.parse_mask_rule(mask)
    except ValueError as error:
        raise table.error("mask", str(error)) from None
    if rule.kind is masking.MaskKind.YEAR and field_type is not FieldType.DATE:
        raise table.error("mask", f"'year' masks dates only, and this is a {field_type.value} field")
    if rule.kind is not masking.MaskKind.REDACT and (
        field_type is FieldType.IMAGE_REF or sensitivity is Sensitivity.BIOMETRIC
    ):
        raise table.error("mask", "image and biometric fields must be masked with 'redact'")
    if rule.kind is masking.MaskKind.FULL and sensitivity >= Sensitivity.SENSITIVE:
        raise table.error("mask", f"'full' would show a {sensitivity.value} field unmasked")
    return FieldDef(
        name=name,
        label_zh=label_zh,
        label_en=label_en,
        type=field_type,
        sensitivity=sensitivity,
        mask=mask,
        required=table.boolean("required", default=True),
        values=values,
        max_length=table.positive_integer("max_length"),
    )
