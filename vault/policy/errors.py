"""Errors of the policy domain: broken definitions under policies/, and lookups of things that do not exist."""


class PolicyError(Exception):
    """Base class of every error raised by the policy domain."""


class CatalogueError(PolicyError):
    """The service catalogue or the mandates under policies/ are broken.

    The message names the file (relative to the policies directory), the key and the problem, e.g.
    ``service_catalogue.toml: items[3].fields.resident-id-card[1]: 'blood_type' is not a field of ...``.
    """

    def __init__(self, file: str, key: str | None, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}")


class PolicyValidationError(PolicyError):
    """A Cedar policy or the Cedar schema does not parse or does not validate.

    ``file`` is the path as found under the policies directory; ``line`` is 1-based, None for a problem with the
    file as a whole (e.g. it is missing).
    """

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")


class UnknownServiceItem(PolicyError):
    """No service item has the code asked for."""


class UnknownMandate(PolicyError):
    """No legal mandate has the id asked for."""


class UnknownPredicate(PolicyError):
    """No predicate has the id asked for."""
