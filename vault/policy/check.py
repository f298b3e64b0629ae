"""Checking policies/: licence types, service catalogue, mandates, the Cedar schema and every Cedar policy.

``check`` is what `vault policy check` runs; ``read_cedar`` is what the policy engine loads with. Cedar itself
reports no positions, only messages (and, for a validation error, the positional id of the policy), so lines
are worked out here: each file is split into its policies, a parse error is placed on the first line whose
prefix no longer parses as an unfinished policy, and a validation error on the line naming what the message
quotes, else on the first line of its policy.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import cedarpy

from vault.licences.errors import LicenceTypeError
from vault.licences.types import LicenceCatalogue, load_catalogue
from vault.policy.catalogue import load_mandates, load_service_items
from vault.policy.errors import CatalogueError, PolicyError, PolicyValidationError

SCHEMA_FILE = "schema.cedarschema"
POLICY_GLOB = "*.cedar"

_POLICY_ID = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_QUOTED = re.compile(r"`([^`]+)`")
_POSITIONAL_ID = re.compile(r"policy([0-9]+)")
_END_OF_INPUT = "unexpected end of input"
# Validation errors that often follow from another one in the same policy.
_CONSEQUENTIAL = ("unable to guarantee safety of access", "unable to find an applicable action")


def check(policies_dir: Path) -> list[str]:
    """Every problem found under ``policies_dir`` as ``<file>:<line>: <message>``; empty when all is well.

    ``<file>`` is ``policies_dir`` joined with the file's name; a problem with a whole file (a missing one) has
    no ``:<line>``. Within a TOML file only its first problem is reported (the loaders stop there); every Cedar
    error is. The service catalogue and mandates are checked only once the licence types load, and the
    catalogues are built into Cedar entities (as at start-up) only once everything else passes.
    """
    problems: list[str] = []
    licences: LicenceCatalogue | None = None
    try:
        licences = load_catalogue(policies_dir)
    except LicenceTypeError as error:
        problems.append(_toml_problem(policies_dir, error.file, error.key, error.problem))
    if licences is not None:
        for load in (load_service_items, load_mandates):
            try:
                load(policies_dir, licences)
            except CatalogueError as error:
                problems.append(_toml_problem(policies_dir, error.file, error.key, error.problem))
    _, cedar_problems = read_cedar(policies_dir)
    problems.extend(str(problem) for problem in cedar_problems)
    if licences is not None and not problems:
        # Last, what only start-up would find: the catalogues as Cedar entities must fit the schema.
        from vault.policy.engine import PolicyEngine  # the engine loads through this module

        try:
            PolicyEngine.load(policies_dir, licences)
        except PolicyError as error:
            problems.append(str(error))
    return problems


# Cedar


@dataclass(frozen=True)
class CedarPolicies:
    """Every policy under policies/, validated: the text of all files in file-name order, and their @id."""

    schema: cedarpy.Schema
    schema_file: str
    text: str
    ids: tuple[str, ...]


@dataclass(frozen=True)
class _Statement:
    """One policy (or schema declaration) of a file: its text and where it starts, lines 1-based."""

    text: str
    line: int

    @property
    def last_line(self) -> int:
        return self.line + self.text.count("\n")


def read_cedar(policies_dir: Path) -> tuple[CedarPolicies | None, list[PolicyValidationError]]:
    """Parse the schema and validate every policies/*.cedar file against it.

    Returns the policies when there is no problem, else None and every problem found, each naming its file
    and line. Every policy must carry a unique ``@id("kebab-case")``: decisions are reported by it.
    """
    schema_path = policies_dir / SCHEMA_FILE
    schema, problems = _read_schema(_display(schema_path))
    paths = sorted(policies_dir.glob(POLICY_GLOB))
    if not paths:
        problems.append(PolicyValidationError(_display(policies_dir), None, f"no {POLICY_GLOB} policy files"))
    texts: list[str] = []
    ids: list[str] = []
    first_file: dict[str, str] = {}
    for path in paths:
        file = _display(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            problems.append(PolicyValidationError(file, None, "not valid UTF-8"))
            continue
        statements = _split(text)
        file_ids: list[str] = []
        file_problems = _parse_problems(file, statements)
        if not file_problems:
            file_ids, file_problems = _annotation_problems(file, text, statements, first_file)
        if not file_problems and schema is not None:
            file_problems = _validation_problems(file, text, statements, file_ids, schema)
        ids.extend(file_ids)
        problems.extend(file_problems)
        texts.append(text)
    if problems or schema is None:
        return None, problems
    return CedarPolicies(schema, _display(schema_path), "\n".join(texts), tuple(ids)), []


def _display(path: Path) -> str:
    return path.as_posix()


def _read_schema(file: str) -> tuple[cedarpy.Schema | None, list[PolicyValidationError]]:
    try:
        text = Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [PolicyValidationError(file, None, "file not found")]
    except UnicodeDecodeError:
        return None, [PolicyValidationError(file, None, "not valid UTF-8")]
    try:
        return cedarpy.Schema.from_str(text), []
    except ValueError as error:
        message = str(error)
    return None, [PolicyValidationError(file, _schema_error_line(text, message), message)]


def _schema_error_line(text: str, message: str) -> int:
    if message.startswith("failed to resolve type"):
        # Forward references are allowed, so an unknown type is placed where it is first used.
        names = message.split(":", 1)[1].split(",")
        return _first_line_naming(text, 1, [name.strip() for name in names]) or 1
    lines = text.split("\n")
    for count in range(1, len(lines) + 1):
        prefix = "\n".join(lines[:count])
        if _in_string(prefix):
            continue
        try:
            cedarpy.Schema.from_str(prefix)
        except ValueError as error:
            if _END_OF_INPUT not in str(error) and not str(error).startswith("failed to resolve type"):
                return count
    return len(lines)


def _parse_problems(file: str, statements: list[_Statement]) -> list[PolicyValidationError]:
    """The first policy of the file that does not parse, placed on its line; Cedar stops at the first too."""
    for statement in statements:
        try:
            cedarpy.PolicySet.from_str(statement.text)
        except ValueError as error:
            message = str(error)
            if _in_string(statement.text):
                message = f"{message} (a string is never closed)"
            elif message == _END_OF_INPUT:
                message = f"{message} (does the policy end with ';'?)"
            return [PolicyValidationError(file, _parse_error_line(statement, message), message)]
    return []


def _parse_error_line(statement: _Statement, message: str) -> int:
    kinds, unterminated = _scan(statement.text)
    if unterminated:
        opening = max(offset for offset, kind in enumerate(kinds) if kind == "s" and kinds[offset - 1 : offset] != "s")
        return statement.line + statement.text.count("\n", 0, opening)
    # Cedar's parser is LR: every prefix ending before the offending token is an unfinished policy.
    lines = statement.text.split("\n")
    for count in range(1, len(lines) + 1):
        prefix = "\n".join(lines[:count])
        if _in_string(prefix):
            continue
        try:
            cedarpy.PolicySet.from_str(prefix)
        except ValueError as error:
            if str(error) != _END_OF_INPUT:
                found = statement.line + count - 1
                break
    else:
        found = statement.last_line
    if found == statement.last_line and not message.startswith(("unexpected", "invalid token")):
        # Errors found after parsing (an unknown function, a duplicate annotation) name what is wrong.
        return _first_line_naming(statement.text, statement.line, _quoted(message)) or statement.line
    return found


def _annotation_problems(
    file: str, text: str, statements: list[_Statement], first_file: dict[str, str]
) -> tuple[list[str], list[PolicyValidationError]]:
    """Each policy's @id, in order, and the problems with them: missing, malformed, or used twice."""
    problems: list[PolicyValidationError] = []
    parsed = json.loads(cedarpy.policies_to_json_str(text))
    ids: list[str] = []
    static, templates = parsed.get("staticPolicies", {}), parsed.get("templates", {})
    for position, statement in enumerate(statements):
        policy = static.get(f"policy{position}") or templates.get(f"policy{position}", {})
        policy_id = policy.get("annotations", {}).get("id")
        if f"policy{position}" in templates:
            message = "policy templates (?principal, ?resource) are not used here: write a static policy"
            problems.append(PolicyValidationError(file, statement.line, message))
        elif policy_id is None:
            problems.append(PolicyValidationError(file, statement.line, 'every policy needs an @id("...")'))
        elif not _POLICY_ID.fullmatch(policy_id):
            problems.append(
                PolicyValidationError(file, statement.line, f"@id {policy_id!r} is not lower-case words and hyphens")
            )
        elif policy_id in first_file:
            message = f"@id {policy_id!r} is already used in {first_file[policy_id]}"
            problems.append(PolicyValidationError(file, statement.line, message))
        else:
            first_file[policy_id] = file
        ids.append(policy_id or "")
    return ids, problems


def _validation_problems(
    file: str, text: str, statements: list[_Statement], policy_ids: list[str], schema: cedarpy.Schema
) -> list[PolicyValidationError]:
    found: dict[tuple[int, str], tuple[int, bool]] = {}
    for error in cedarpy.validate_policies(text, schema).errors:
        match = _POSITIONAL_ID.fullmatch(error.policy_id)
        message = re.sub(r"^for policy `policy[0-9]+`, ", "", error.error)
        position = int(match[1]) if match else len(statements)
        if position >= len(statements):
            line = 1
        else:
            statement = statements[position]
            line = _first_line_naming(statement.text, statement.line, _quoted(message)) or statement.line
            message = f"{policy_ids[position]}: {message}"
        found.setdefault((line, message), (position, any(phrase in message for phrase in _CONSEQUENTIAL)))
    # Cedar lists a policy's errors in no fixed order; put the cause before what follows from it.
    ordered = sorted(found, key=lambda problem: (*found[problem], problem[0]))
    return [PolicyValidationError(file, line, message) for line, message in ordered]


def _quoted(message: str) -> list[str]:
    return [name for name in _QUOTED.findall(message) if not _POSITIONAL_ID.fullmatch(name)]


def _first_line_naming(text: str, first_line: int, names: list[str]) -> int | None:
    """The line of the first of ``names`` that occurs in code (not comments) of ``text``, by the order given."""
    code_lines = [_without_comment(line) for line in text.split("\n")]
    for name in names:
        if not name:
            continue
        pattern = re.compile(rf"(?<![\w]){re.escape(name)}(?![\w])")
        for offset, line in enumerate(code_lines):
            if pattern.search(line):
                return first_line + offset
    return None


# A small scanner: Cedar's only comments are // to the end of the line, and strings may hold ';' or '//'.


def _scan(text: str) -> tuple[str, bool]:
    """Classify each character of ``text``: "c" code, "s" string (quotes too), "/" comment.

    Returns the classes as a string as long as ``text``, and whether the text ends inside a string.
    """
    kinds: list[str] = []
    state = "c"
    escaped = False
    for offset, char in enumerate(text):
        if state == "s":
            kinds.append("s")
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                state = "c"
        elif state == "/" and char != "\n":
            kinds.append("/")
        elif char == '"':
            state = "s"
            kinds.append("s")
        elif char == "/" and text.startswith("//", offset):
            state = "/"
            kinds.append("/")
        else:
            state = "c"
            kinds.append("c")
    return "".join(kinds), state == "s"


def _in_string(text: str) -> bool:
    return _scan(text)[1]


def _without_comment(line: str) -> str:
    kinds, _ = _scan(line)
    return "".join(char for char, kind in zip(line, kinds, strict=True) if kind != "/")


def _split(text: str) -> list[_Statement]:
    """The file's policies (or declarations), each from its first token to its ';', comments before it left out."""
    statements: list[_Statement] = []
    kinds, _ = _scan(text)
    start: int | None = None
    for offset, (char, kind) in enumerate(zip(text, kinds, strict=True)):
        if kind == "/" or (start is None and char.isspace()):
            continue
        if start is None:
            start = offset
        if kind == "c" and char == ";":
            statements.append(_Statement(text[start : offset + 1], text.count("\n", 0, start) + 1))
            start = None
    if start is not None:
        statements.append(_Statement(text[start:].rstrip(), text.count("\n", 0, start) + 1))
    return statements


# TOML: the loaders name file and key; the line is found by walking the key path through the text.

_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[[0-9]+\])*)")
_TOML_LINE = re.compile(r"at line ([0-9]+)")
_TOML_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"' + r"|'[^'\n]*'|#.*|\]")


def _toml_problem(policies_dir: Path, file: str, key: str | None, problem: str) -> str:
    path = policies_dir / file
    line: int | None = None
    found = _TOML_LINE.search(problem)
    if found:
        line = int(found[1])
    elif key:
        try:
            line = locate_key(path.read_text(encoding="utf-8"), key)
        except (OSError, UnicodeDecodeError):
            line = None
    where = f"{_display(path)}:{line}" if line is not None else _display(path)
    return f"{where}: {key}: {problem}" if key else f"{where}: {problem}"


def locate_key(text: str, key: str) -> int | None:
    """The 1-based line where a key path such as ``items[3].fields.resident-id-card[1]`` is written.

    Follows ``[[name]]`` headers for array-of-tables indexes, table headers and ``key =`` lines for names, and
    counts string items for an index into an array value. A key that is missing from the text (the loader says
    so) is placed on the line of the table that should hold it; None if not even the first part is found.
    """
    lines = text.split("\n")
    position, end = 0, len(lines)
    found: int | None = None
    for name, indexes in _SEGMENT.findall(key):
        indices = [int(index) for index in re.findall(r"[0-9]+", indexes)]
        header = re.compile(rf"^\s*\[\[\s*(?:[\w\"-]+\.)*\"?{re.escape(name)}\"?\s*\]\]")
        headers = [number for number in range(position, end) if header.match(lines[number])]
        if headers:
            index = indices[0] if indices else 0
            if index >= len(headers):
                return found
            position = headers[index]
            end = next((number for number in headers if number > position), end)
            found = position + 1
            continue
        assignment = re.compile(
            rf"^\s*(\[\s*(?:[\w\"-]+\.)*\"?{re.escape(name)}\"?\s*\]\s*$|\"?{re.escape(name)}\"?\s*=)"
        )
        line = next((number for number in range(position, end) if assignment.match(lines[number])), None)
        if line is None:
            return found
        position, found = line, line + 1
        if indices:
            item = _array_item_line(lines, line, indices[0])
            return item if item is not None else found
    return found


def _array_item_line(lines: list[str], line: int, index: int) -> int | None:
    """The 1-based line of string item ``index`` (0-based) of the array assigned on ``line`` (0-based)."""
    count = 0
    for number in range(line, len(lines)):
        text = lines[number].split("=", 1)[1] if number == line else lines[number]
        for token in _TOML_TOKEN.finditer(text):
            if token[0].startswith("#"):
                break
            if token[0] == "]":
                return None
            if count == index:
                return number + 1
            count += 1
    return None
