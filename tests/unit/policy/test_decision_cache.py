"""The engine's decision cache: a cached decision is the one Cedar would make, whatever changed in between."""

import dataclasses
import itertools
from datetime import timedelta
from pathlib import Path

import pytest

from tests.unit.policy.test_engine import (
    CASE,
    NOW,
    OWNER,
    POLICIES,
    PUBLIC_SECURITY,
    TRAFFIC_POLICE,
    transfer_grant,
)
from vault.licences.types import load_catalogue
from vault.policy.engine import AgencyInfo, GrantInfo, MandateInfo, PolicyEngine, cacheable

FIELDS = {"resident-id-card": ["name", "id_number", "address", "photo"], "vehicle-licence": ["plate_number", "vin"]}


def engines() -> tuple[PolicyEngine, PolicyEngine]:
    cached = PolicyEngine.load(POLICIES, load_catalogue(POLICIES))
    uncached = PolicyEngine.load(POLICIES, load_catalogue(POLICIES))
    uncached._cacheable = False
    return cached, uncached


def decisions(engine: PolicyEngine, agency: AgencyInfo, owner: str, **kwargs: object) -> object:
    return engine.decide_reads(agency, owner_id=owner, owner_kind="person", fields=FIELDS, **kwargs)  # type: ignore[arg-type]


def test_the_project_policies_are_cacheable() -> None:
    assert cacheable("\n".join(p.read_text(encoding="utf-8") for p in POLICIES.glob("*.cedar")))


@pytest.mark.parametrize(
    "policy",
    [
        "permit (principal, action, resource) when { context.now < 1700000000000 };",  # office hours, a deadline
        'forbid (principal, action, resource) when { context.owner == Owner::"someone" };',
    ],
)
def test_a_policy_using_the_time_or_an_owner_otherwise_turns_the_cache_off(policy: str) -> None:
    assert not cacheable(policy)


def test_cached_decisions_equal_cedar_across_every_change_that_matters() -> None:
    cached, uncached = engines()
    suspended = dataclasses.replace(TRAFFIC_POLICE, suspended=True)
    grants: list[GrantInfo] = [
        transfer_grant(),
        transfer_grant(uses_left=0),
        transfer_grant(uses_left=None),
        transfer_grant(state="revoked"),
        transfer_grant(owner_id="owner-2"),  # a grant of another owner
        transfer_grant(grant_id="grant-2", fields={"resident-id-card": ("name",)}),
    ]
    times = [NOW - timedelta(days=2), NOW, NOW + timedelta(days=19), NOW + timedelta(days=30)]
    owners = [OWNER, "owner-3"]
    seen, sizes = 0, []
    for _ in range(2):  # the second round answers from the cache
        for agency, grant, now, owner in itertools.product([TRAFFIC_POLICE, suspended], grants, times, owners):
            kwargs = {"purpose": grant.purpose, "grant": grant, "mandate": None, "now": now}
            assert decisions(cached, agency, owner, **kwargs) == decisions(uncached, agency, owner, **kwargs)
            seen += 1
        for agency, case, owner in itertools.product([PUBLIC_SECURITY, suspended], [CASE, None], owners):
            mandate = MandateInfo(mandate_id="police-criminal-investigation", case_reference=case)
            kwargs = {"purpose": "mandate", "grant": None, "mandate": mandate, "now": NOW}
            assert decisions(cached, agency, owner, **kwargs) == decisions(uncached, agency, owner, **kwargs)
            seen += 1
        sizes.append(len(cached._decided))
    # owners stand in by their relation to the grant, times by where they fall against its validity
    assert 0 < sizes[0] == sizes[1] < seen / 2 * 0.75
    assert not uncached._decided


def test_a_grant_revoked_or_used_up_is_decided_afresh() -> None:
    cached, _ = engines()
    grant = transfer_grant()
    kwargs = {"purpose": grant.purpose, "mandate": None, "now": NOW}
    before = decisions(cached, TRAFFIC_POLICE, OWNER, grant=grant, **kwargs)
    assert before["resident-id-card"]["name"].read.allowed  # type: ignore[index]
    for changed in (transfer_grant(uses_left=0), transfer_grant(state="revoked")):
        after = decisions(cached, TRAFFIC_POLICE, OWNER, grant=changed, **kwargs)
        assert not after["resident-id-card"]["name"].read.allowed  # type: ignore[index]


def test_policies_reloaded_are_a_new_engine_with_an_empty_cache(tmp_path: Path) -> None:
    cached, _ = engines()
    grant = transfer_grant()
    decisions(cached, TRAFFIC_POLICE, OWNER, purpose=grant.purpose, grant=grant, mandate=None, now=NOW)
    assert cached._decided
    assert not PolicyEngine.load(POLICIES, load_catalogue(POLICIES))._decided


def test_the_cache_stays_within_its_size_and_keeps_deciding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vault.policy.engine.DECISION_CACHE_SIZE", 3)
    cached, uncached = engines()
    kwargs = {"purpose": transfer_grant().purpose, "mandate": None, "now": NOW}
    for uses_left in range(1, 11):  # each use left is another key, as in a grant read again and again
        grant = transfer_grant(uses_left=uses_left)
        made = decisions(cached, TRAFFIC_POLICE, OWNER, grant=grant, **kwargs)
        assert made == decisions(uncached, TRAFFIC_POLICE, OWNER, grant=grant, **kwargs)
        assert 1 <= len(cached._decided) <= 3


def test_cached_entries_share_their_decisions() -> None:
    cached, _ = engines()
    kwargs = {"purpose": transfer_grant().purpose, "mandate": None, "now": NOW}
    for uses_left in range(1, 6):
        decisions(cached, TRAFFIC_POLICE, OWNER, grant=transfer_grant(uses_left=uses_left), **kwargs)
    entries = list(cached._decided.values())
    assert len(entries) == 5 and all(len(made) == len(entries[0]) for made in entries)
    for pairs in zip(*entries, strict=True):  # a field's equal decisions in five entries: one object
        assert len({id(pair) for pair in pairs}) == len(set(pairs)) < len(pairs)
