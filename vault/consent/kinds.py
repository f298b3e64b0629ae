"""Whether a request fits the owner it is sent to: a person holds ID cards, an enterprise a business licence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vault.consent.errors import InvalidAuthorizationDetails
from vault.licences.types import LicenceCatalogue
from vault.owners.models import OwnerKind
from vault.policy.catalogue import ServiceItem


def check_fits(
    licences: LicenceCatalogue, item: ServiceItem, fields: Mapping[str, Sequence[str]], kind: OwnerKind
) -> None:
    """Raise InvalidAuthorizationDetails naming what an owner of `kind` cannot hold, if anything."""
    foreign = sorted(t for t in fields if kind not in licences.type(t).holders)
    named = ("an " if kind is OwnerKind.ENTERPRISE else "a ") + kind.value
    if foreign:
        raise InvalidAuthorizationDetails(
            f"the owner named by login_hint is {named}, which holds no {', '.join(foreign)}"
        )
    if kind not in item.owner_kinds:
        kinds = " or ".join(sorted(k.value for k in item.owner_kinds))
        raise InvalidAuthorizationDetails(f"service item {item.code} is not for {named}: it is for a {kinds}")
