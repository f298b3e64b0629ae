"""The vault's GraphQL operations (graphql/operations/*.graphql, shipped in this package) as typed methods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any, TypedDict

from vault_sdk.client import Tokens, VaultClient


class LicenceFields(TypedDict):
    type: str
    names: list[str]


class FieldValue(TypedDict):
    name: str
    value: str


class LicenceRow(TypedDict):
    owner: str  # resident ID number or unified social credit code
    type: str
    values: list[FieldValue]


@cache
def document(name: str) -> str:
    """The text of one shipped operation, e.g. "agency-read-licences"."""
    return (resources.files("vault_sdk") / "operations" / f"{name}.graphql").read_text(encoding="utf-8")


def names() -> list[str]:
    return sorted(p.name.removesuffix(".graphql") for p in (resources.files("vault_sdk") / "operations").iterdir())


def _vars(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class Operations:
    """`Operations(client, tokens).read_licences(...)`: each method runs one shipped document with its variables."""

    def __init__(self, client: VaultClient, tokens: Tokens) -> None:
        self.client = client
        self.tokens = tokens

    def _run(self, name: str, **variables: Any) -> dict[str, Any]:
        return self.client.graphql(self.tokens, document(name), _vars(**variables))

    # agencies

    def read_licences(
        self, types: Sequence[str] | None = None, names: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        data = self._run("agency-read-licences", types=_list(types), names=_list(names))
        return list(data["licences"])

    def read_under_mandate(
        self, owner: str, types: Sequence[str] | None = None, names: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        data = self._run("agency-read-under-mandate", owner=owner, types=_list(types), names=_list(names))
        return list(next(iter(data.values())))

    def request_consent(
        self,
        owner: str,
        service_item: str,
        fields: Sequence[LicenceFields] | None = None,
        binding_message: str | None = None,
        questions: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        data = self._run(
            "agency-request-consent",
            owner=owner,
            serviceItem=service_item,
            fields=_list(fields),
            bindingMessage=binding_message,
            questions=_list(questions),
        )
        result: dict[str, Any] = data["requestConsent"]
        return result

    def check(self, predicate: str, parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Ask a question the grant covers: a signed yes or no (`signed`, see VaultClient.verify_answer), no value."""
        given = [{"name": k, "value": v} for k, v in (parameters or {}).items()] or None
        return _only(self._run("agency-check", predicate=predicate, parameters=given))

    def verify_licence(self, presentation: str) -> dict[str, Any]:
        return _only(self._run("agency-verify-licence", presentation=presentation))

    def verify_licences(self, presentations: Sequence[str]) -> list[dict[str, Any]]:
        return list(_only(self._run("agency-verify-licences", presentations=list(presentations))))

    # issuing departments

    def issue_licence(
        self, owner: str, type: str, values: Sequence[FieldValue], official: str | None = None
    ) -> dict[str, Any]:
        return _only(self._run("issuer-issue-licence", owner=owner, type=type, values=list(values), official=official))

    def issue_licences(self, rows: Sequence[LicenceRow], official: str | None = None) -> dict[str, Any]:
        """Issue up to 1,000 licences in one request: `issued`, `alreadyIssued`, `invalid` and a result per row
        (an invalid row carries its problems and writes nothing; the valid ones are committed together)."""
        return _only(self._run("issuer-issue-licences", input=[dict(row) for row in rows], official=official))

    def renew_licence(self, id: str, changes: Sequence[FieldValue], official: str | None = None) -> dict[str, Any]:
        return _only(self._run("issuer-renew-licence", id=id, changes=list(changes), official=official))

    def suspend_licence(self, id: str, reason: str, official: str | None = None) -> dict[str, Any]:
        return _only(self._run("issuer-suspend-licence", id=id, reason=reason, official=official))

    def reinstate_licence(self, id: str, reason: str | None = None, official: str | None = None) -> dict[str, Any]:
        return _only(self._run("issuer-reinstate-licence", id=id, reason=reason, official=official))

    def revoke_licence(self, id: str, reason: str, official: str | None = None) -> dict[str, Any]:
        return _only(self._run("issuer-revoke-licence", id=id, reason=reason, official=official))

    def set_legal_representative(self, licence: str, person: str) -> dict[str, Any]:
        return _only(self._run("issuer-set-legal-representative", licence=licence, person=person))


def _list(values: Sequence[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)


def _only(data: Mapping[str, Any]) -> Any:
    """The one top-level field an operation selects."""
    return next(iter(data.values()))
