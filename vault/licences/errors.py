"""Errors of the licences domain. Messages never contain a licence's field values: they are personal data."""


class LicenceError(Exception):
    """Base class of every error raised by the licences domain."""


class LicenceTypeError(LicenceError):
    """A licence-type or department definition under policies/ is broken.

    The message names the file (relative to the policies directory), the key and the problem, e.g.
    ``licence_types/driving-licence.toml: fields[3].sensitivity: 'secret' is not one of ...``.
    """

    def __init__(self, file: str, key: str | None, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}")


class UnknownLicenceType(LicenceError):
    """No licence type has the code or vct asked for."""


class UnknownLicenceField(LicenceError):
    """A licence type has no field of the name asked for."""


class InvalidFieldValue(LicenceError):
    """A value does not satisfy its field definition. The message names the field and the rule, not the value."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"field {field!r}: {rule}")


class InvalidValues(InvalidFieldValue):
    """Several values break their rules: every problem, one per field, found at once (the first is the main one)."""

    def __init__(self, problems: list[InvalidFieldValue]) -> None:
        assert problems
        self.problems = problems
        LicenceError.__init__(self, "; ".join(str(p) for p in problems))
        self.field = problems[0].field
        self.rule = problems[0].rule


class HolderErased(LicenceError):
    """The licence's holder was erased: nothing more can be issued to them or renewed."""


class IllegalTransition(LicenceError):
    """A lifecycle step that the licence's current state does not allow; the message names the state."""


class LicenceNotFound(LicenceError):
    """No licence has that id (or it is not visible to the caller)."""


class NotTheIssuer(LicenceError):
    """An issuer acted on a licence type that another department issues."""


class DuplicateLicence(LicenceError):
    """A licence of that type with that number already exists; the message never repeats the number."""


class HolderNotAllowed(LicenceError):
    """The owner is of a kind (person or enterprise) that cannot hold this licence type."""


class StatusListFull(LicenceError):
    """The issuer's status list has no free slot left."""


class BatchStale(LicenceError):
    """A batch prepared outside its write transaction no longer holds when written (an owner was erased since)."""
