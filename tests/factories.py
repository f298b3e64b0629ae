"""Test data factories: owners and licences with valid synthetic identifiers and values."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from vault.licences.models import Licence
from vault.owners.identifiers import synthetic_credit_code, synthetic_resident_id
from vault.owners.models import Owner
from vault.wiring import Vault

_sequence = itertools.count(1)


def person(vault: Vault, session: Any, name: str = "测试居民") -> Owner:
    number = synthetic_resident_id("110101", date(1990, 1, 1), next(_sequence) % 1000)
    return vault.owners.add_person(session, id_number=number, name=name, actor="test")


def enterprise(vault: Vault, session: Any, name: str = "测试有限公司") -> Owner:
    body = f"MA{next(_sequence):07d}"
    return vault.owners.add_enterprise(
        session, credit_code=synthetic_credit_code("9", "1", "110101", body), name=name, actor="test"
    )


def driving_licence_values(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "licence_number": synthetic_resident_id("110101", date(1990, 1, 1), next(_sequence) % 1000),
        "name": "测试居民",
        "sex": "女",
        "nationality": "中国",
        "address": "测试市测试路1号",
        "birth_date": "1990-01-01",
        "first_issue_date": "2010-01-01",
        "class": "C1",
        "valid_from": "2020-01-01",
        "valid_until": "2032-01-01",
        "file_number": "TEST0001",
        "issuing_authority": "测试市公安局交通管理局",
        "photo": "test-photo:1",
    }
    values.update(changes)
    return values


def driving_licence(vault: Vault, session: Any, owner: Owner, **changes: Any) -> Licence:
    """A driving licence in the owner's own name (the holder's name must match the owner's record)."""
    changes.setdefault("name", vault.owners.details(session, owner).name)
    return vault.licences.issue(
        session,
        issuer_code="traffic-police",
        owner_id=owner.id,
        type_code="driving-licence",
        values=driving_licence_values(**changes),
    )
