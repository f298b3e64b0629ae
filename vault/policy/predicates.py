"""Predicates (可用不可见): questions about an owner's licences the vault answers yes or no, releasing no value.

policies/predicates.toml declares each predicate beside the licence types' fields: its id, its question in both
languages, the licence type and fields it reads, how it is decided (its test) and the parameters the agency or the
service item supplies. Like the service catalogue, everything is checked against the licence catalogue when it is
loaded, so a typo is a start-up error.

    id               stable, kebab-case: service items, grants, answers and access events refer to it
    question_zh/_en  the question as the owner and the agency read it; {parameter} is replaced by its value
    licence_type     the licence type it reads
    fields           the fields its test reads (never biometric); none is ever released
    test             "in-force": a licence of the type is in force today
                     "equals": a licence's fields equal the parameters bound to them
                     "age-at-least": the holder is at least `years` old today, by the `birth_date` field
    in_force         whether only a licence in force today can answer yes (default true)
    [[parameters]]   name, label_zh, label_en, and either `field` (the value must be a valid value of that field;
                     the equals test compares it) or type = "integer" with `min` and `max`
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import Enum
from pathlib import Path
from types import MappingProxyType

from vault.licences.errors import InvalidFieldValue
from vault.licences.types import (
    _CODE,
    _CODE_SYNTAX,
    FieldType,
    LicenceCatalogue,
    LicenceType,
    Sensitivity,
    _read_toml,
    _relative,
    _Table,
)

PREDICATES_FILE = "predicates.toml"
MAX_PARAMETERS = 8
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
ParameterValue = str | int


class PredicateTest(Enum):
    IN_FORCE = "in-force"
    EQUALS = "equals"
    AGE_AT_LEAST = "age-at-least"


class BadParameters(ValueError):
    """The parameters of a question are wrong; the message names the parameter and the rule, never the value."""


@dataclass(frozen=True)
class Parameter:
    name: str
    label_zh: str
    label_en: str
    field: str | None  # bound to this field of the licence type: valid values are the field's
    minimum: int | None = None
    maximum: int | None = None
    personal: bool = False  # a free-text value about a person: never written to the access log

    @property
    def is_integer(self) -> bool:
        return self.field is None


@dataclass(frozen=True)
class Predicate:
    id: str
    question_zh: str
    question_en: str
    licence_type: str
    fields: tuple[str, ...]
    test: PredicateTest
    in_force: bool
    parameters: tuple[Parameter, ...]

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def question(self, lang: str, values: Mapping[str, ParameterValue]) -> str:
        """The question in `lang`, each placeholder replaced by its value, or by its label when it has none."""
        text = self.question_en if lang == "en" else self.question_zh

        def filled(match: re.Match[str]) -> str:
            name = match[1]
            if name in values:
                return str(values[name])
            parameter = self.parameter(name)
            label = "" if parameter is None else parameter.label_en if lang == "en" else parameter.label_zh
            return f"[{label}]" if lang == "en" else f"（{label}）"

        return _PLACEHOLDER.sub(filled, text)

    def check_parameters(
        self, licence_type: LicenceType, given: Mapping[str, object], fixed: Mapping[str, ParameterValue]
    ) -> dict[str, ParameterValue]:
        """The parameters of one question: those the service item fixed, and the rest as given, each checked.

        Raises BadParameters for an unknown or missing parameter, a value of the wrong kind, out of range or not a
        valid value of its field, and for a value that differs from the one the service item fixed.
        """
        unknown = sorted(set(given) - {p.name for p in self.parameters})
        if unknown:
            known = ", ".join(p.name for p in self.parameters) or "none"
            raise BadParameters(f"{self.id} has no parameter {unknown[0]!r} (its parameters: {known})")
        values: dict[str, ParameterValue] = {}
        for parameter in self.parameters:
            if parameter.name in given:
                value = self.check_value(licence_type, parameter.name, given[parameter.name])
                if parameter.name in fixed and value != fixed[parameter.name]:
                    raise BadParameters(
                        f"parameter {parameter.name!r} is fixed by the service item consented to: "
                        f"it must be {fixed[parameter.name]!r} or left out"
                    )
                values[parameter.name] = value
            elif parameter.name in fixed:
                values[parameter.name] = fixed[parameter.name]
            else:
                raise BadParameters(f"{self.id} needs the parameter {parameter.name!r}")
        return values

    def check_value(self, licence_type: LicenceType, name: str, raw: object) -> ParameterValue:
        """One parameter's value, checked (an integer given as digits is taken); raises BadParameters."""
        parameter = self.parameter(name)
        if parameter is None:
            raise BadParameters(f"{self.id} has no parameter {name!r}")
        if parameter.is_integer:
            if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
                raw = int(raw.strip())
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise BadParameters(f"parameter {parameter.name!r} must be an integer")
            assert parameter.minimum is not None and parameter.maximum is not None
            if not parameter.minimum <= raw <= parameter.maximum:
                raise BadParameters(
                    f"parameter {parameter.name!r} must be between {parameter.minimum} and {parameter.maximum}"
                )
            return raw
        assert parameter.field is not None
        if not isinstance(raw, str):
            raise BadParameters(f"parameter {parameter.name!r} must be a string")
        try:
            value = licence_type.field(parameter.field).validate_value(raw)
        except InvalidFieldValue as error:
            raise BadParameters(f"parameter {parameter.name!r}: {error.rule}") from None
        if value is None:
            raise BadParameters(f"parameter {parameter.name!r} must not be empty")
        return value


def same_value(stored: object, asked: ParameterValue) -> bool:
    """Equal as the vault compares: NFC, surrounding space ignored, letters in either case (an ID number's X)."""

    def norm(value: object) -> str:
        return unicodedata.normalize("NFC", str(value)).strip().upper()

    return stored is not None and norm(stored) == norm(asked)


def age_on(birth: date, today: date) -> int:
    """Full years from `birth` to `today`; someone born on 29 February turns a year older on 1 March."""
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


_PREDICATE_KEYS = ("id", "question_zh", "question_en", "licence_type", "fields", "test")
_PARAMETER_KEYS = ("name", "label_zh", "label_en")


def load_predicates(policies_dir: Path, licences: LicenceCatalogue) -> Mapping[str, Predicate]:
    """The predicates of predicates.toml by id (none if the file is absent).

    Raises LicenceTypeError (the loader's shared error, turned into CatalogueError by the caller) for the first
    broken definition, naming the file, key and problem.
    """
    path = policies_dir / PREDICATES_FILE
    if not path.exists():
        return MappingProxyType({})
    root = _Table(_relative(policies_dir, path), "", _read_toml(policies_dir, path))
    root.check_keys(["predicates"])
    predicates: dict[str, Predicate] = {}
    for table in root.tables("predicates"):
        predicate = _load_predicate(table, licences)
        if predicate.id in predicates:
            raise table.error("id", f"{predicate.id!r} is listed twice")
        predicates[predicate.id] = predicate
    return MappingProxyType(predicates)


def _load_predicate(table: _Table, licences: LicenceCatalogue) -> Predicate:
    table.check_keys(_PREDICATE_KEYS, optional=["in_force", "parameters"])
    predicate_id = table.text("id", _CODE, _CODE_SYNTAX)
    code = table.text("licence_type")
    if code not in licences.types:
        raise table.error("licence_type", f"{code!r} is not a licence type under licence_types/")
    licence_type = licences.type(code)
    fields = table.texts("fields")
    for index, name in enumerate(fields):
        if name not in licence_type.field_names:
            raise table.error(f"fields[{index}]", f"{name!r} is not a field of {code}")
        if licence_type.field(name).sensitivity is Sensitivity.BIOMETRIC:
            raise table.error(f"fields[{index}]", f"{name!r} is biometric: no predicate reads it")
    test = table.choice("test", PredicateTest)
    parameters = tuple(
        _load_parameter(sub, licence_type, fields)
        for sub in (table.tables("parameters") if "parameters" in table.data else [])
    )
    if len(parameters) > MAX_PARAMETERS:
        raise table.error("parameters", f"at most {MAX_PARAMETERS}")
    names = [p.name for p in parameters]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise table.error(f"parameters[{index}].name", f"{name!r} is listed twice")
    if test is PredicateTest.EQUALS and not any(p.field for p in parameters):
        raise table.error("parameters", "the equals test needs a parameter bound to a field")
    if test is PredicateTest.AGE_AT_LEAST:
        if "birth_date" not in fields:
            raise table.error("fields", "the age-at-least test reads the field 'birth_date'")
        if [p.name for p in parameters if p.is_integer] != ["years"]:
            raise table.error("parameters", "the age-at-least test takes one integer parameter 'years'")
    if test is PredicateTest.IN_FORCE and parameters:
        raise table.error("parameters", "the in-force test takes no parameters")
    predicate = Predicate(
        id=predicate_id,
        question_zh=table.text("question_zh"),
        question_en=table.text("question_en"),
        licence_type=code,
        fields=fields,
        test=test,
        in_force=table.boolean("in_force", default=True),
        parameters=parameters,
    )
    for key in ("question_zh", "question_en"):
        for name in _PLACEHOLDER.findall(str(table.data[key])):
            if name not in names:
                raise table.error(key, f"{{{name}}} names no parameter")
    return predicate


def _load_parameter(table: _Table, licence_type: LicenceType, fields: tuple[str, ...]) -> Parameter:
    table.check_keys(_PARAMETER_KEYS, optional=["field", "type", "min", "max"])
    name = table.text("name", re.compile(r"[a-z_][a-z0-9_]*"), "lower-case letters, digits and underscores")
    label_zh, label_en = table.text("label_zh"), table.text("label_en")
    if "field" in table.data:
        if "type" in table.data or "min" in table.data or "max" in table.data:
            raise table.error("field", "a parameter bound to a field takes its type from the field")
        field = table.text("field")
        if field not in fields:
            raise table.error("field", f"{field!r} is not among the fields the predicate reads")
        definition = licence_type.field(field)
        personal = definition.type is not FieldType.ENUM and definition.sensitivity is not Sensitivity.PUBLIC
        return Parameter(name, label_zh, label_en, field, personal=personal)
    if table.data.get("type") != "integer":
        raise table.error("type", 'a parameter is bound to a field, or has type = "integer" with min and max')
    bounds = []
    for key in ("min", "max"):
        value = table.data.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise table.error(key, "expected an integer")
        bounds.append(value)
    if bounds[0] > bounds[1]:
        raise table.error("min", "must not exceed max")
    return Parameter(name, label_zh, label_en, None, minimum=bounds[0], maximum=bounds[1])
