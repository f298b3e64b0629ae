"""Policy decisions: the Cedar policies under policies/ decide who may ask for consent and who may read what.

Decisions are pure: the caller passes plain data (the agency, the owner, the grant or mandate, the time) and
gets back a Decision naming the policies that made it, which is the reason the access log records. Nothing here
reads the database. The model the policies see is in policies/schema.cedarschema and docs/policies.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import cedarpy

from vault.licences.types import LicenceCatalogue
from vault.policy.catalogue import ServiceCatalogue, field_ids, load_service_catalogue
from vault.policy.check import CedarPolicies, read_cedar
from vault.policy.errors import PolicyValidationError

REQUEST_CONSENT = {"type": "Action", "id": "requestConsent"}
READ_FIELD = {"type": "Action", "id": "readField"}
RELEASE_IN_FULL = {"type": "Action", "id": "releaseInFull"}
ASK_PREDICATE = {"type": "Action", "id": "askPredicate"}
DEFAULT_DENY = "default deny"
_MILLIS_PER_DAY = 86_400_000
DECISION_CACHE_SIZE = 1_024  # entries of 2-3 kB (a grant with uses left is a new key at each use); emptied when full
# The only ways a policy may look at the time or name an owner for its decisions to be cached (see decide_reads):
# the time against the grant's validity, the owner against the grant's owner and the licence type's holders.
_TIME_AGAINST_VALIDITY = re.compile(
    r"context\.grant\.validFrom\s*<=\s*context\.now|context\.now\s*<\s*context\.grant\.validUntil"
    r"|context\.now\s*<\s*context\.grant\.validFrom|context\.grant\.validUntil\s*<=\s*context\.now"
)


def cacheable(policies_text: str) -> bool:
    """Whether a decision depends on the time only through the grant's validity and on the owner only through
    their kind and whether the grant is theirs: then it may be cached per (grant or mandate, agency, owner's kind
    and relation to the grant, where the time stands against the grant's validity, fields asked)."""
    without = _TIME_AGAINST_VALIDITY.sub("", policies_text)
    return "context.now" not in without and "Owner::" not in policies_text


@dataclass(frozen=True, kw_only=True)
class AgencyInfo:
    """The requesting agency (an OAuth client of a department), as registered."""

    client_id: str
    category: str
    department: str
    suspended: bool
    service_items: Collection[str]


@dataclass(frozen=True, kw_only=True)
class GrantInfo:
    """An owner's consent to an agency, as the consent domain holds it when a read is decided.

    ``fields`` maps licence type to the granted fields; ``valid_until`` is exclusive; ``uses_left`` None means no
    use limit. Times must be timezone-aware.
    """

    grant_id: str
    owner_id: str
    agency_client_id: str
    service_item: str
    fields: Mapping[str, Collection[str]]
    purpose: str
    valid_from: datetime
    valid_until: datetime
    uses_left: int | None
    state: str
    questions: Collection[str] = ()


@dataclass(frozen=True, kw_only=True)
class MandateInfo:
    """A legal mandate invoked for a read: its id in mandates.toml and the case it is for.

    ``case_reference`` is the case's keyed hash (the token never holds the text); ``named_fields`` the sensitive
    fields (``<licence-type>/<field>``) the token names explicitly. ``legal_basis`` is what the official cites,
    recorded with the read; the mandate's own is in the catalogue.
    """

    mandate_id: str
    case_reference: str | None
    legal_basis: str | None = None
    named_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """Allowed or not, and why: the @id of each policy that decided (none for a default deny)."""

    allowed: bool
    policy_ids: tuple[str, ...]
    reason: str
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldDecision:
    """Whether a field may be read, and whether it goes out masked; ``release`` says why it is (not) masked."""

    read: Decision
    masked: bool
    release: Decision


class PolicyEngine:
    """The Cedar policies, the schema they were validated against, and the catalogue entities they reason on."""

    def __init__(self, licences: LicenceCatalogue, catalogue: ServiceCatalogue, policies: CedarPolicies) -> None:
        self.licences = licences
        self.catalogue = catalogue
        self.policy_ids = policies.ids
        self._schema = policies.schema
        self._policies = cedarpy.PolicySet.from_str(policies.text)
        # decisions of this policy set (an engine is one version of the policies: a reload makes a new engine)
        self._cacheable = cacheable(policies.text)
        self._decided: dict[tuple[Any, ...], tuple[tuple[Decision, Decision], ...]] = {}
        self._pairs: dict[tuple[Decision, Decision], tuple[Decision, Decision]] = {}
        self._agencies: dict[AgencyInfo, str] = {}  # each agency's entity as JSON: the biggest part of every request
        try:
            self._entities = cedarpy.Entities.from_json_str(json.dumps(self._catalogue_entities()), self._schema)
        except ValueError as error:
            message = f"the catalogues do not fit the schema: {error}"
            raise PolicyValidationError(policies.schema_file, None, message) from None

    @classmethod
    def load(cls, policies_dir: Path, licences: LicenceCatalogue) -> PolicyEngine:
        """Load the service catalogue, mandates, schema and every policies/*.cedar file, all validated.

        Raises CatalogueError for a broken service item or mandate, PolicyValidationError naming the file and
        line of the first Cedar problem.
        """
        catalogue = load_service_catalogue(policies_dir, licences)
        policies, problems = read_cedar(policies_dir)
        if policies is None:  # then there is at least one problem
            raise problems[0]
        return cls(licences, catalogue, policies)

    def may_request_consent(self, agency: AgencyInfo, item_code: str) -> Decision:
        """May ``agency`` ask an owner to consent to the service item? Raises UnknownServiceItem for a bad code."""
        self.catalogue.item(item_code)
        entities = self._entities.with_added_json_str(json.dumps([_agency_entity(agency)]))
        request = {
            "principal": _uid("Agency", agency.client_id),
            "action": REQUEST_CONSENT,
            "resource": _uid("ServiceItem", item_code),
            "context": "{}",
        }
        [result] = cedarpy.is_authorized_batch([request], self._policies, entities, self._schema)
        return _decision(result, self.policy_ids)

    def decide_fields(
        self,
        agency: AgencyInfo,
        *,
        owner_id: str,
        owner_kind: str,
        licence_type: str,
        fields: Sequence[str],
        purpose: str,
        grant: GrantInfo | None,
        mandate: MandateInfo | None,
        now: datetime,
    ) -> dict[str, FieldDecision]:
        """Decide, field by field, whether ``agency`` may read ``fields`` of the owner's licence of one type.

        See decide_reads, which this calls for a single licence type.
        """
        return self.decide_reads(
            agency,
            owner_id=owner_id,
            owner_kind=owner_kind,
            fields={licence_type: fields},
            purpose=purpose,
            grant=grant,
            mandate=mandate,
            now=now,
        )[licence_type]

    def decide_reads(
        self,
        agency: AgencyInfo,
        *,
        owner_id: str,
        owner_kind: str,
        fields: Mapping[str, Sequence[str]],
        purpose: str,
        grant: GrantInfo | None,
        mandate: MandateInfo | None,
        now: datetime,
    ) -> dict[str, dict[str, FieldDecision]]:
        """Decide every requested field of several licence types, licence type -> field -> FieldDecision.

        A read is under a grant or a mandate (neither: every field is denied by default); passing both raises
        ValueError, as does a naive datetime. Unknown licence types or fields, an unknown grant service item or
        mandate are denied with that reason. All fields are decided in one Cedar batch.
        """
        if grant is not None and mandate is not None:
            raise ValueError("a read is under a grant or under a mandate, not both")
        now_millis = _millis(now)
        decisions: dict[str, dict[str, FieldDecision]] = {licence_type: {} for licence_type in fields}
        refusal = self._refusal(grant, mandate)
        keys: list[tuple[str, str]] = []
        for licence_type, names in fields.items():
            known = self.licences.types.get(licence_type)
            for name in names:
                if refusal is None and known is not None and name in known.field_names:
                    keys.append((licence_type, name))
                else:
                    reason = refusal or f"no field {name!r} in licence type {licence_type!r}"
                    denied = Decision(False, (), reason)
                    decisions[licence_type][name] = FieldDecision(denied, True, denied)
        if not keys:
            return decisions

        delta = [self._agency_json(agency), json.dumps(_entity("Owner", owner_id, {"kind": owner_kind}))]
        context: dict[str, Any] = {"owner": _ref("Owner", owner_id), "purpose": purpose, "now": now_millis}
        if grant is not None:
            delta.append(json.dumps(_grant_entity(grant)))
            context["grant"] = _ref("Grant", grant.grant_id)
        if mandate is not None:
            context["mandate"] = _ref("Mandate", mandate.mandate_id)
            if mandate.case_reference and mandate.case_reference.strip():
                context["caseReference"] = mandate.case_reference.strip()
            context["namedFields"] = [_ref("Field", name) for name in sorted(set(mandate.named_fields))]
        delta_json = f"[{', '.join(delta)}]"  # as json.dumps(list) writes it
        context_json = json.dumps(context)  # once: the wrapper would serialise a dict again for every request
        cache_key = self._cache_key(delta_json, context_json, owner_id, grant, now_millis, keys)
        made = self._decided.get(cache_key) if cache_key is not None else None
        if made is None:
            made = self._decide_batch(agency, delta_json, context_json, keys)
            if cache_key is not None and not any(read.errors or release.errors for read, release in made):
                if len(self._decided) >= DECISION_CACHE_SIZE:
                    self._decided.clear()
                    self._pairs.clear()
                # a field's pair of decisions is one of a few (which policies decided): stored once, not per entry
                made = tuple(self._pairs.setdefault(pair, pair) for pair in made)
                self._decided[cache_key] = made
        for (licence_type, name), (read, release) in zip(keys, made, strict=True):
            decisions[licence_type][name] = FieldDecision(read, not (read.allowed and release.allowed), release)
        return decisions

    def _agency_json(self, agency: AgencyInfo) -> str:
        found = self._agencies.get(agency)
        if found is None:
            if len(self._agencies) >= DECISION_CACHE_SIZE:
                self._agencies.clear()
            found = self._agencies[agency] = json.dumps(_agency_entity(agency))
        return found

    def _cache_key(
        self,
        delta_json: str,
        context_json: str,
        owner_id: str,
        grant: GrantInfo | None,
        now_millis: int,
        keys: list[tuple[str, str]],
    ) -> tuple[Any, ...] | None:
        """What the decisions depend on, the owner and the time left out where (see `cacheable`) they do not.

        The owner's id is replaced by a placeholder (the grant's owner, when the same, too: whether the grant is
        the owner's still shows); the time is replaced by where it stands against the grant's validity. Everything
        else the policies see (agency with its suspension, grant with its state and uses left, mandate, case,
        purpose, fields) is in the key as Cedar gets it. None: not cacheable.
        """
        if not self._cacheable:
            return None
        context_json = context_json.replace(f'"now": {now_millis}', '"now": 0', 1)
        phase = None
        if grant is not None:
            phase = (now_millis < _millis(grant.valid_from), now_millis < _millis(grant.valid_until))
        anonymous = "\x00owner\x00"
        return (delta_json.replace(owner_id, anonymous), context_json.replace(owner_id, anonymous), phase, tuple(keys))

    def _decide_batch(
        self, agency: AgencyInfo, delta_json: str, context_json: str, keys: list[tuple[str, str]]
    ) -> tuple[tuple[Decision, Decision], ...]:
        entities = self._entities.with_added_json_str(delta_json)
        principal = _uid("Agency", agency.client_id)
        requests = [
            {"principal": principal, "action": action, "resource": _uid("Field", f"{t}/{n}"), "context": context_json}
            for t, n in keys
            for action in (READ_FIELD, RELEASE_IN_FULL)
        ]
        results = cedarpy.is_authorized_batch(requests, self._policies, entities, self._schema)
        return tuple(
            (_decision(results[2 * index], self.policy_ids), _decision(results[2 * index + 1], self.policy_ids))
            for index in range(len(keys))
        )

    def decide_question(
        self,
        agency: AgencyInfo,
        *,
        owner_id: str,
        owner_kind: str,
        predicate_id: str,
        purpose: str,
        grant: GrantInfo | None,
        now: datetime,
    ) -> Decision:
        """May ``agency`` ask the question ``predicate_id`` about the owner, under ``grant``?

        Decided like a field (askPredicate, deny by default); an unknown predicate or a read under no grant is
        denied with that reason. Raises ValueError for a naive datetime.
        """
        now_millis = _millis(now)
        if predicate_id not in self.catalogue.predicates:
            return Decision(False, (), f"no predicate {predicate_id!r}")
        refusal = self._refusal(grant, None) if grant is not None else "a question is asked under a consent grant"
        if refusal is not None:
            return Decision(False, (), refusal)
        assert grant is not None
        delta = [
            _agency_entity(agency),
            _entity("Owner", owner_id, {"kind": owner_kind}),
            _grant_entity(grant),
        ]
        context = {
            "owner": _ref("Owner", owner_id),
            "purpose": purpose,
            "now": now_millis,
            "grant": _ref("Grant", grant.grant_id),
        }
        request = {
            "principal": _uid("Agency", agency.client_id),
            "action": ASK_PREDICATE,
            "resource": _uid("Predicate", predicate_id),
            "context": json.dumps(context),
        }
        entities = self._entities.with_added_json_str(json.dumps(delta))
        [result] = cedarpy.is_authorized_batch([request], self._policies, entities, self._schema)
        return _decision(result, self.policy_ids)

    def _refusal(self, grant: GrantInfo | None, mandate: MandateInfo | None) -> str | None:
        if grant is not None and grant.service_item not in self.catalogue.items:
            return f"the grant is for an unknown service item {grant.service_item!r}"
        if mandate is not None and mandate.mandate_id not in self.catalogue.mandates:
            return f"unknown mandate {mandate.mandate_id!r}"
        return None

    def _catalogue_entities(self) -> list[dict[str, Any]]:
        entities: list[dict[str, Any]] = []
        for licence_type in self.licences.types.values():
            holders = sorted(kind.value for kind in licence_type.holders)
            for field in licence_type.fields:
                attrs: dict[str, Any] = {
                    "licenceType": licence_type.code,
                    "name": field.name,
                    "sensitivity": field.sensitivity.value,
                    "holders": holders,
                }
                entities.append(_entity("Field", f"{licence_type.code}/{field.name}", attrs))
        for predicate in self.catalogue.predicates.values():
            licence_type = self.licences.type(predicate.licence_type)
            attrs = {
                "licenceType": predicate.licence_type,
                "fields": _field_refs({predicate.licence_type: predicate.fields}),
                "holders": sorted(kind.value for kind in licence_type.holders),
            }
            entities.append(_entity("Predicate", predicate.id, attrs))
        for item in self.catalogue.items.values():
            attrs = {
                "department": item.department,
                "use": item.use.value,
                "maxGrantMillis": item.max_grant_days * _MILLIS_PER_DAY,
                "fields": _field_refs(item.fields),
                "masked": _field_refs(item.masked),
                "inFull": _field_refs(item.in_full),
                "questions": [_ref("Predicate", p) for p in item.questions],
            }
            entities.append(_entity("ServiceItem", item.code, attrs))
        for mandate in self.catalogue.mandates.values():
            attrs = {
                "categories": sorted(mandate.agency_categories),
                "departments": sorted(mandate.departments),
                "fields": _field_refs(mandate.all_fields()),
                "requiresCaseReference": mandate.requires_case_reference,
            }
            entities.append(_entity("Mandate", mandate.id, attrs))
        return entities


def _entity(entity_type: str, entity_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
    return {"uid": _uid(entity_type, entity_id), "attrs": attrs, "parents": []}


def _uid(entity_type: str, entity_id: str) -> dict[str, str]:
    return {"type": entity_type, "id": entity_id}


def _ref(entity_type: str, entity_id: str) -> dict[str, dict[str, str]]:
    return {"__entity": _uid(entity_type, entity_id)}


def _field_refs(fields: Mapping[str, Collection[str]]) -> list[dict[str, dict[str, str]]]:
    return [_ref("Field", key) for key in field_ids(fields)]


def _millis(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("times given to the policy engine must be timezone-aware")
    return int(moment.timestamp() * 1000)


def _agency_entity(agency: AgencyInfo) -> dict[str, Any]:
    attrs = {
        "category": agency.category,
        "department": agency.department,
        "suspended": agency.suspended,
        "services": [_ref("ServiceItem", code) for code in sorted(agency.service_items)],
    }
    return _entity("Agency", agency.client_id, attrs)


def _grant_entity(grant: GrantInfo) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "agency": _ref("Agency", grant.agency_client_id),
        "owner": _ref("Owner", grant.owner_id),
        "item": _ref("ServiceItem", grant.service_item),
        "fields": _field_refs(grant.fields),
        "questions": [_ref("Predicate", p) for p in sorted(grant.questions)],
        "purpose": grant.purpose,
        "validFrom": _millis(grant.valid_from),
        "validUntil": _millis(grant.valid_until),
        "state": str(grant.state),
    }
    if grant.uses_left is not None:
        attrs["usesLeft"] = grant.uses_left
    return _entity("Grant", grant.grant_id, attrs)


_POSITIONAL = re.compile(r"\bpolicy([0-9]+)\b")


def _decision(result: cedarpy.AuthzResult, policy_ids: Sequence[str]) -> Decision:
    def named(match: re.Match[str]) -> str:
        position = int(match[1])
        return policy_ids[position] if position < len(policy_ids) else match[0]

    diagnostics = result.diagnostics
    deciding = tuple(_POSITIONAL.sub(named, policy) for policy in sorted(diagnostics.reasons, key=_position))
    errors = tuple(_POSITIONAL.sub(named, str(error)) for error in diagnostics.errors)
    if errors:
        # Cedar skips a policy that fails to evaluate, even a forbid: deny rather than trust what is left.
        return Decision(False, deciding, "denied: a policy failed to evaluate", errors)
    if result.allowed:
        return Decision(True, deciding, "permit: " + ", ".join(deciding))
    if deciding:
        return Decision(False, deciding, "forbid: " + ", ".join(deciding))
    return Decision(False, (), DEFAULT_DENY)


def _position(policy: str) -> int:
    match = _POSITIONAL.fullmatch(policy)
    return int(match[1]) if match else -1
