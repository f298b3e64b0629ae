"""Mandate counters hold under parallel workers, and owner-scoped free text is clean, encrypted and shredded."""

from __future__ import annotations

import dataclasses
import json
import unicodedata
import uuid

import pytest
from sqlmodel import select

from tests.concurrency.race import race
from vault import clock
from vault.mandates.errors import RateLimited
from vault.mandates.models import MandateCounter
from vault.mandates.services import MandateClaim, MandateService
from vault.owners.errors import InvalidText
from vault.owners.free_text import clean_text
from vault.policy.catalogue import RateLimits
from vault.wiring import Vault

MANDATE = "police-criminal-investigation"


def test_parallel_reads_never_exceed_the_case_limit(vault: Vault) -> None:
    """Eight workers at once against a limit of three: exactly three counted, five refused with RateLimited."""
    mandate = dataclasses.replace(
        vault.policy.catalogue.mandate(MANDATE), rate_limits=RateLimits(per_case=3, per_client=100, window_hours=1)
    )
    service = MandateService(vault.keys, vault.audit, vault.policy.catalogue)
    claim = MandateClaim(MANDATE, "ab" * 32, frozenset({"cd" * 32}), "012345")
    now = clock.utcnow()

    outcome = race(vault.db, lambda session, i: service.count_read(session, mandate, claim, "police", now))

    assert len(outcome.won) == 3 and len(outcome.lost) == 5
    assert outcome.errors_of(RateLimited) == []
    with vault.db.session() as session, pytest.raises(RateLimited) as caught:
        service.count_read(session, mandate, claim, "police", now)
    assert caught.value.scope == "case"
    with vault.db.session() as session:  # the client's count was given back for every refused read
        counts = {row.key.split(":")[0]: row.count for row in session.scalars(select(MandateCounter))}
    assert counts == {"client": 3, "case": 3}


def test_the_client_limit_spans_its_cases(vault: Vault) -> None:
    mandate = dataclasses.replace(
        vault.policy.catalogue.mandate(MANDATE), rate_limits=RateLimits(per_case=2, per_client=3, window_hours=1)
    )
    service = MandateService(vault.keys, vault.audit, vault.policy.catalogue)
    now = clock.utcnow()
    with vault.db.session() as session:
        for case in ("aa", "aa", "bb"):
            service.count_read(session, mandate, MandateClaim(MANDATE, case * 32, frozenset(), "1"), "police", now)
        with pytest.raises(RateLimited) as caught:
            service.count_read(session, mandate, MandateClaim(MANDATE, "cc" * 32, frozenset(), "1"), "police", now)
    assert caught.value.scope == "client" and 0 < caught.value.retry_after <= 3600


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "must not be empty"),
        ("x" * 11, "at most 10 characters"),
        ("a\u202eb", "U+202E"),  # right-to-left override
        ("a\x1b[31m", "U+001B"),  # ANSI escape
        ("a\x00b", "U+0000"),
        ("a\u200bb", "U+200B"),  # zero width space
        ("\ud800", "lone surrogate"),
        (42, "must be a string"),
    ],
)
def test_free_text_is_bounded_and_clean(text: object, problem: str) -> None:
    with pytest.raises(InvalidText) as caught:
        clean_text(text, field="note", max_length=10)
    assert caught.value.field == "note" and problem in str(caught.value)


def test_free_text_is_normalised_to_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "Café")
    assert clean_text(f"  {decomposed} ", field="note", max_length=10) == unicodedata.normalize("NFC", "Café")


def test_a_case_text_is_sealed_under_each_named_owner_and_gone_with_their_key(vault: Vault) -> None:
    from vault.crypto.free_text import OwnerTexts
    from vault.crypto.models import OwnerText
    from vault.mandates.services import MandateRequest

    service = MandateService(vault.keys, vault.audit, vault.policy.catalogue)
    mandate = vault.policy.catalogue.mandate(MANDATE)
    with vault.db.session() as session:
        owner = vault.owners.add_person(session, id_number="11010519491231002X", name="测试", actor="test")
        request = MandateRequest("XS-2026-000123", ("11010519491231002X",), "012345", "张警官")
        claim = service.claim(session, mandate, request, clock.utcnow())
        [case_note, name_note] = [uuid.UUID(n) for n in next(iter(claim.notes.values()))]
        assert "XS-2026-000123" not in json.dumps(claim.details())  # the token holds hashes and note ids only
        row = session.get(OwnerText, case_note)
        assert row is not None and b"XS-2026-000123" not in row.text_ct
        texts = OwnerTexts(vault.keys)
        assert texts.open(session, case_note) == "XS-2026-000123" and texts.open(session, name_note) == "张警官"
        vault.keys.destroy_owner_key(session, owner.id)
        assert texts.open(session, case_note) is None
