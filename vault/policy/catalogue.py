"""The service catalogue (事项) and the legal mandates, declared as data under policies/ and checked when loaded.

policies/service_catalogue.toml lists the service items agencies ask consent for; policies/mandates.toml lists
the laws under which an agency may read without consent. Both name licence types, fields and departments, so
both are checked against the licence catalogue: a typo is a start-up error, not a silent denial later.
"""

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType

from vault.licences import masking
from vault.licences.errors import LicenceTypeError
from vault.licences.types import (
    _CODE,
    _CODE_SYNTAX,
    DEPARTMENTS_FILE,
    DepartmentRole,
    LicenceCatalogue,
    Sensitivity,
    _read_toml,
    _relative,
    _Table,
)
from vault.owners.models import OwnerKind
from vault.policy.errors import CatalogueError, UnknownMandate, UnknownPredicate, UnknownServiceItem
from vault.policy.predicates import BadParameters, ParameterValue, Predicate, load_predicates

SERVICE_CATALOGUE_FILE = "service_catalogue.toml"
MANDATES_FILE = "mandates.toml"
MAX_GRANT_DAYS = 366
MAX_DEFERRAL_DAYS = 3650
MAX_CASE_DAYS = 3650
MAX_OWNERS_PER_TOKEN = 20
MAX_WINDOW_HOURS = 24 * 31
DEFAULT_OFFICIAL_PATTERN = r"^[0-9A-Z]{4,20}$"

# licence type -> field names, in the order the data lists them
FieldsByType = Mapping[str, tuple[str, ...]]
# predicate id -> the parameters the service item fixes
Questions = Mapping[str, Mapping[str, ParameterValue]]


def field_ids(fields: Mapping[str, Iterable[str]]) -> Iterable[str]:
    """Every field as ``<licence-type>/<field>``, the id the Cedar policies know it by."""
    return (f"{licence_type}/{name}" for licence_type, names in fields.items() for name in names)


class ServiceUse(Enum):
    ONCE = "once"
    REPEATED = "repeated"


@dataclass(frozen=True)
class ServiceItem:
    code: str
    name_zh: str
    name_en: str
    department: str
    legal_basis: str
    purpose_zh: str
    purpose_en: str
    fields: FieldsByType
    max_grant_days: int
    use: ServiceUse
    masked: FieldsByType
    in_full: FieldsByType
    owner_kinds: frozenset[OwnerKind]
    questions: Questions = field(default_factory=lambda: MappingProxyType({}))

    def needs(self, licence_type: str, field: str) -> bool:
        return field in self.fields.get(licence_type, ())


@dataclass(frozen=True)
class RateLimits:
    """Reads allowed under a mandate per fixed window: per case, and per client across all its cases."""

    per_case: int
    per_client: int
    window_hours: int


@dataclass(frozen=True)
class Mandate:
    id: str
    name_zh: str
    name_en: str
    agency_categories: frozenset[str]
    departments: frozenset[str]
    legal_basis: str
    requires_case_reference: bool
    deferral_days: int
    fields: FieldsByType
    sensitive_fields: FieldsByType
    case_pattern: re.Pattern[str] | None
    official_pattern: re.Pattern[str]
    requires_registered_case: bool
    max_case_days: int
    max_owners_per_token: int
    rate_limits: RateLimits

    def covers(self, licence_type: str, field: str) -> bool:
        return field in self.fields.get(licence_type, ()) or self.is_sensitive(licence_type, field)

    def is_sensitive(self, licence_type: str, field: str) -> bool:
        """A sensitive or biometric field: released only to a token that names it (PIPL art. 28)."""
        return field in self.sensitive_fields.get(licence_type, ())

    def all_fields(self) -> dict[str, tuple[str, ...]]:
        types = dict.fromkeys([*self.fields, *self.sensitive_fields])
        return {t: (*self.fields.get(t, ()), *self.sensitive_fields.get(t, ())) for t in types}


@dataclass(frozen=True)
class ServiceCatalogue:
    items: Mapping[str, ServiceItem]
    mandates: Mapping[str, Mandate]
    predicates: Mapping[str, Predicate] = field(default_factory=lambda: MappingProxyType({}))

    def predicate(self, predicate_id: str) -> Predicate:
        """The predicate with this id; raise UnknownPredicate if there is none."""
        try:
            return self.predicates[predicate_id]
        except KeyError:
            raise UnknownPredicate(f"no predicate with id {predicate_id!r}") from None

    def item(self, code: str) -> ServiceItem:
        """The service item with this code; raise UnknownServiceItem if there is none."""
        try:
            return self.items[code]
        except KeyError:
            raise UnknownServiceItem(f"no service item with code {code!r}") from None

    def mandate(self, mandate_id: str) -> Mandate:
        """The legal mandate with this id; raise UnknownMandate if there is none."""
        try:
            return self.mandates[mandate_id]
        except KeyError:
            raise UnknownMandate(f"no legal mandate with id {mandate_id!r}") from None

    def items_of(self, department: str) -> tuple[ServiceItem, ...]:
        return tuple(item for item in self.items.values() if item.department == department)


def load_service_catalogue(policies_dir: Path, licences: LicenceCatalogue) -> ServiceCatalogue:
    """Read service_catalogue.toml and mandates.toml under ``policies_dir``, checked against ``licences``.

    Raises CatalogueError naming the file, the key and the problem for the first broken definition.
    """
    with _catalogue_errors():
        predicates = load_predicates(policies_dir, licences)
    return ServiceCatalogue(
        items=load_service_items(policies_dir, licences, predicates),
        mandates=load_mandates(policies_dir, licences),
        predicates=predicates,
    )


def load_service_items(
    policies_dir: Path, licences: LicenceCatalogue, predicates: Mapping[str, Predicate] | None = None
) -> Mapping[str, ServiceItem]:
    """The items of service_catalogue.toml by code; raises CatalogueError for the first broken one."""
    with _catalogue_errors():
        if predicates is None:
            predicates = load_predicates(policies_dir, licences)
        root = _root(policies_dir, SERVICE_CATALOGUE_FILE)
        root.check_keys(["items"])
        items: dict[str, ServiceItem] = {}
        for table in root.tables("items"):
            item = _load_item(table, licences, predicates)
            if item.code in items:
                raise table.error("code", f"{item.code!r} is listed twice")
            items[item.code] = item
        return MappingProxyType(items)


def load_mandates(policies_dir: Path, licences: LicenceCatalogue) -> Mapping[str, Mandate]:
    """The mandates of mandates.toml by id; raises CatalogueError for the first broken one."""
    with _catalogue_errors():
        root = _root(policies_dir, MANDATES_FILE)
        root.check_keys(["mandates"])
        mandates: dict[str, Mandate] = {}
        for table in root.tables("mandates"):
            mandate = _load_mandate(table, licences)
            if mandate.id in mandates:
                raise table.error("id", f"{mandate.id!r} is listed twice")
            mandates[mandate.id] = mandate
        return MappingProxyType(mandates)


# Loading reuses the licence-type reader, so both read the same way and their messages look alike.

_ITEM_KEYS = (
    "code",
    "name_zh",
    "name_en",
    "department",
    "legal_basis",
    "purpose_zh",
    "purpose_en",
    "max_grant_days",
    "use",
)
_MANDATE_KEYS = (
    "id",
    "name_zh",
    "name_en",
    "agency_categories",
    "departments",
    "legal_basis",
    "requires_case_reference",
    "deferral_days",
    "fields",
    "rate_limits",
)
_MANDATE_OPTIONAL = (
    "sensitive_fields",
    "case_pattern",
    "official_pattern",
    "requires_registered_case",
    "max_case_days",
    "max_owners_per_token",
)
_RATE_LIMIT_KEYS = ("per_case", "per_client", "window_hours")
_ORDINARY = (Sensitivity.PUBLIC, Sensitivity.PERSONAL)


@contextmanager
def _catalogue_errors() -> Iterator[None]:
    """Turn the shared reader's LicenceTypeError into this domain's CatalogueError."""
    try:
        yield
    except LicenceTypeError as error:
        raise CatalogueError(error.file, error.key, error.problem) from None


def _root(policies_dir: Path, name: str) -> _Table:
    path = policies_dir / name
    return _Table(_relative(policies_dir, path), "", _read_toml(policies_dir, path))


def _load_item(table: _Table, licences: LicenceCatalogue, predicates: Mapping[str, Predicate]) -> ServiceItem:
    table.check_keys(_ITEM_KEYS, optional=["fields", "masked", "in_full", "questions"])
    if "fields" not in table.data and "questions" not in table.data:
        raise table.error("fields", "missing: an item lists the fields it reads, the questions it asks, or both")
    code = table.text("code", _CODE, _CODE_SYNTAX)
    department = table.text("department")
    if department not in licences.departments:
        raise table.error("department", f"{department!r} is not a department in {DEPARTMENTS_FILE}")
    if DepartmentRole.REQUESTER not in licences.departments[department].roles:
        raise table.error("department", f"{department!r} does not request licences (its roles lack 'requester')")
    max_grant_days = table.positive_integer("max_grant_days")
    if max_grant_days is None or max_grant_days > MAX_GRANT_DAYS:
        raise table.error("max_grant_days", f"must be at most {MAX_GRANT_DAYS}")

    fields: FieldsByType = MappingProxyType({})
    if "fields" in table.data:
        fields = _fields_by_type(table, "fields", licences)
    for licence_type, names in fields.items():
        for index, name in enumerate(names):
            if licences.type(licence_type).field(name).sensitivity is Sensitivity.BIOMETRIC:
                raise table.error(
                    f"fields.{licence_type}[{index}]", f"{name!r} is biometric: it never leaves under consent"
                )
    questions = _questions(table, licences, predicates) if "questions" in table.data else MappingProxyType({})
    types = dict.fromkeys([*fields, *(predicates[p].licence_type for p in questions)])
    owner_kinds = frozenset.intersection(*(licences.type(code).holders for code in types))
    if not owner_kinds:
        raise table.error("fields", f"no owner can hold all of {', '.join(types)}")

    masked = _subset(table, "masked", fields, licences)
    for licence_type, names in masked.items():
        for index, name in enumerate(names):
            field = licences.type(licence_type).field(name)
            key = f"masked.{licence_type}[{index}]"
            if field.sensitivity not in _ORDINARY:
                raise table.error(key, f"{name!r} is {field.sensitivity.value} and goes out masked already")
            if masking.parse_mask_rule(field.mask).kind is masking.MaskKind.FULL:
                raise table.error(key, f"{name!r} has the mask rule 'full', so masking it would hide nothing")
    in_full = _subset(table, "in_full", fields, licences)
    for licence_type, names in in_full.items():
        for index, name in enumerate(names):
            sensitivity = licences.type(licence_type).field(name).sensitivity
            if sensitivity is not Sensitivity.SENSITIVE:
                raise table.error(
                    f"in_full.{licence_type}[{index}]",
                    f"{name!r} is {sensitivity.value}: only sensitive fields are listed in in_full",
                )

    return ServiceItem(
        code=code,
        name_zh=table.text("name_zh"),
        name_en=table.text("name_en"),
        department=department,
        legal_basis=table.text("legal_basis"),
        purpose_zh=table.text("purpose_zh"),
        purpose_en=table.text("purpose_en"),
        fields=fields,
        max_grant_days=max_grant_days,
        use=table.choice("use", ServiceUse),
        masked=masked,
        in_full=in_full,
        owner_kinds=owner_kinds,
        questions=questions,
    )


def _questions(table: _Table, licences: LicenceCatalogue, predicates: Mapping[str, Predicate]) -> Questions:
    """[[items.questions]]: predicate ids, each once, with the parameters the item fixes (checked like any)."""
    questions: dict[str, Mapping[str, ParameterValue]] = {}
    for sub in table.tables("questions"):
        sub.check_keys(["predicate"], optional=["parameters"])
        predicate_id = sub.text("predicate")
        if predicate_id not in predicates:
            raise sub.error("predicate", f"{predicate_id!r} is not a predicate in predicates.toml")
        if predicate_id in questions:
            raise sub.error("predicate", f"{predicate_id!r} is asked twice")
        fixed = sub.data.get("parameters", {})
        if not isinstance(fixed, dict):
            raise sub.error("parameters", "expected a table of parameter = value")
        predicate = predicates[predicate_id]
        for name in fixed:
            parameter = predicate.parameter(name)
            if parameter is None:
                raise sub.error(f"parameters.{name}", f"{predicate_id} has no parameter {name!r}")
            if parameter.personal:
                raise sub.error(f"parameters.{name}", "a value about a person is given when asking, never fixed")
        licence_type = licences.type(predicate.licence_type)
        try:
            checked = {name: predicate.check_value(licence_type, name, value) for name, value in fixed.items()}
        except BadParameters as error:
            raise sub.error("parameters", str(error)) from None
        questions[predicate_id] = MappingProxyType(checked)
    return MappingProxyType(questions)


def _load_mandate(table: _Table, licences: LicenceCatalogue) -> Mandate:
    table.check_keys(_MANDATE_KEYS, optional=_MANDATE_OPTIONAL)
    mandate_id = table.text("id", _CODE, _CODE_SYNTAX)
    categories = table.texts("agency_categories")
    for index, category in enumerate(categories):
        if not _CODE.fullmatch(category):
            raise table.error(f"agency_categories[{index}]", f"{category!r} is not {_CODE_SYNTAX}")
    departments = table.texts("departments")
    for index, department in enumerate(departments):
        if department not in licences.departments:
            raise table.error(f"departments[{index}]", f"{department!r} is not a department in {DEPARTMENTS_FILE}")
    deferral_days = table.data["deferral_days"]
    if isinstance(deferral_days, bool) or not isinstance(deferral_days, int):
        raise table.error("deferral_days", "expected an integer")
    if not 0 <= deferral_days <= MAX_DEFERRAL_DAYS:
        raise table.error("deferral_days", f"must be between 0 and {MAX_DEFERRAL_DAYS}")
    requires_case = table.boolean("requires_case_reference", default=True)
    case_pattern = _pattern(table, "case_pattern") if "case_pattern" in table.data else None
    if requires_case and case_pattern is None:
        raise table.error("case_pattern", "missing: a mandate that requires a case reference declares its format")
    official_pattern = (
        _pattern(table, "official_pattern")
        if "official_pattern" in table.data
        else re.compile(DEFAULT_OFFICIAL_PATTERN)
    )
    requires_registered = table.boolean("requires_registered_case", default=False)
    if requires_registered and not requires_case:
        raise table.error("requires_registered_case", "needs requires_case_reference = true")
    max_case_days = _bounded(table, "max_case_days", MAX_CASE_DAYS, default=366)
    max_owners = _bounded(table, "max_owners_per_token", MAX_OWNERS_PER_TOKEN, default=5)
    fields = _fields_by_type(table, "fields", licences)
    for licence_type, names in fields.items():
        for index, name in enumerate(names):
            sensitivity = licences.type(licence_type).field(name).sensitivity
            if sensitivity not in _ORDINARY:
                raise table.error(
                    f"fields.{licence_type}[{index}]",
                    f"{name!r} is {sensitivity.value}: list it under sensitive_fields",
                )
    sensitive: FieldsByType = MappingProxyType({})
    if "sensitive_fields" in table.data:
        sensitive = _fields_by_type(table, "sensitive_fields", licences)
        for licence_type, names in sensitive.items():
            for index, name in enumerate(names):
                sensitivity = licences.type(licence_type).field(name).sensitivity
                if sensitivity in _ORDINARY:
                    raise table.error(
                        f"sensitive_fields.{licence_type}[{index}]",
                        f"{name!r} is {sensitivity.value}: list it under fields",
                    )
    return Mandate(
        id=mandate_id,
        name_zh=table.text("name_zh"),
        name_en=table.text("name_en"),
        agency_categories=frozenset(categories),
        departments=frozenset(departments),
        legal_basis=table.text("legal_basis"),
        requires_case_reference=requires_case,
        deferral_days=deferral_days,
        fields=fields,
        sensitive_fields=sensitive,
        case_pattern=case_pattern,
        official_pattern=official_pattern,
        requires_registered_case=requires_registered,
        max_case_days=max_case_days,
        max_owners_per_token=max_owners,
        rate_limits=_rate_limits(table),
    )


def _pattern(table: _Table, key: str) -> re.Pattern[str]:
    """A regular expression anchored at both ends, so it describes the whole value."""
    source = table.text(key)
    if not source.startswith("^") or not source.endswith("$"):
        raise table.error(key, "must be anchored: start with ^ and end with $")
    try:
        return re.compile(source)
    except re.error as error:
        raise table.error(key, f"is not a valid regular expression: {error}") from None


def _bounded(table: _Table, key: str, most: int, *, default: int) -> int:
    value = table.positive_integer(key)
    if value is None:
        return default
    if value > most:
        raise table.error(key, f"must be at most {most}")
    return value


def _rate_limits(table: _Table) -> RateLimits:
    sub = _Table(table.file, table.key("rate_limits"), table.data["rate_limits"])
    if not isinstance(sub.data, dict):
        raise table.error("rate_limits", "expected a table with per_case, per_client and window_hours")
    sub.check_keys(_RATE_LIMIT_KEYS)
    per_case, per_client = sub.positive_integer("per_case"), sub.positive_integer("per_client")
    window = _bounded(sub, "window_hours", MAX_WINDOW_HOURS, default=24)
    assert per_case is not None and per_client is not None  # required keys, checked above
    if per_case > per_client:
        raise sub.error("per_case", "must not exceed per_client")
    return RateLimits(per_case=per_case, per_client=per_client, window_hours=window)


def _sub_table(table: _Table, key: str) -> _Table:
    data = table.data[key]
    if not isinstance(data, dict):
        raise table.error(key, "expected a table of licence type = [fields]")
    return _Table(table.file, table.key(key), data)


def _fields_by_type(table: _Table, key: str, licences: LicenceCatalogue) -> FieldsByType:
    """A table of licence type = [field, ...], every type and field checked against the licence catalogue."""
    sub = _sub_table(table, key)
    if not sub.data:
        raise table.error(key, "must name at least one licence type")
    fields: dict[str, tuple[str, ...]] = {}
    for licence_type in sub.data:
        if licence_type not in licences.types:
            raise sub.error(licence_type, f"{licence_type!r} is not a licence type under licence_types/")
        names = sub.texts(licence_type)
        known = licences.type(licence_type).field_names
        for index, name in enumerate(names):
            if name not in known:
                raise sub.error(f"{licence_type}[{index}]", f"{name!r} is not a field of {licence_type}")
        fields[licence_type] = names
    return MappingProxyType(fields)


def _subset(table: _Table, key: str, fields: FieldsByType, licences: LicenceCatalogue) -> FieldsByType:
    """An optional table of licence type = [field, ...] naming only fields the item lists under ``fields``."""
    if key not in table.data:
        return MappingProxyType({})
    subset = _fields_by_type(table, key, licences)
    for licence_type, names in subset.items():
        for index, name in enumerate(names):
            if name not in fields.get(licence_type, ()):
                raise table.error(f"{key}.{licence_type}[{index}]", f"{name!r} is not among the item's fields")
    return subset
