"""Licences end to end in the service layer: issue, lifecycle, presentation, verification, status lists."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from tests import factories
from vault.audit.models import AuditEvent
from vault.crypto.jws import b64url_decode
from vault.licences.errors import DuplicateLicence, HolderNotAllowed, IllegalTransition, InvalidFieldValue, NotTheIssuer
from vault.licences.lifecycle import Step
from vault.licences.models import LicenceField, LicenceVersion
from vault.licences.sdjwt import UnknownField, decode_disclosure, split
from vault.wiring import Vault


def _actions(vault: Vault) -> list[str]:
    with vault.db.session() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def test_issue_stores_only_ciphertext_and_presents_exactly_the_chosen_fields(vault: Vault) -> None:
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        licence = factories.driving_licence(vault, session, owner, address="金丝雀路99号")
    with vault.db.session() as session:
        stored = session.scalars(select(LicenceField).where(LicenceField.owner_id == owner.id)).all()
        assert len(stored) == 13 and all("金丝雀".encode() not in f.disclosure_ct for f in stored)
        presentation = vault.licences.present(session, licence.id, ["name", "class"], actor="test")
        _, disclosures = split(presentation)
        assert sorted(decode_disclosure(d)[1] for d in disclosures) == ["class", "name"]
        result = vault.licences.verify(session, presentation)
        assert result.ok and result.claims == {"name": "测试居民", "class": "C1"}
        with pytest.raises(UnknownField):
            vault.licences.present(session, licence.id, ["name", "blood_type"], actor="test")
    assert _actions(vault)[-2:] == ["licence.issued", "licence.presented"]


def test_only_the_types_issuer_may_issue_and_holders_are_checked(vault: Vault) -> None:
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        company = factories.enterprise(vault, session)
        with pytest.raises(NotTheIssuer, match="traffic-police does"):
            vault.licences.issue(
                session,
                issuer_code="transport",
                owner_id=owner.id,
                type_code="driving-licence",
                values=factories.driving_licence_values(),
            )
        with pytest.raises(HolderNotAllowed):
            factories.driving_licence(vault, session, company)


def test_bad_values_are_refused_naming_the_field_not_the_value(vault: Vault) -> None:
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        with pytest.raises(InvalidFieldValue) as caught:
            factories.driving_licence(vault, session, owner, **{"class": "Z9"})
        assert "class" in str(caught.value) and "Z9" not in str(caught.value)
        with pytest.raises(InvalidFieldValue, match="valid_from"):
            factories.driving_licence(vault, session, owner, valid_from="2020-02-30")


def test_duplicate_licence_number_is_refused(vault: Vault) -> None:
    values = factories.driving_licence_values()
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        factories.driving_licence(vault, session, owner, licence_number=values["licence_number"])
        with pytest.raises(DuplicateLicence) as caught:
            factories.driving_licence(vault, session, owner, licence_number=values["licence_number"])
        assert values["licence_number"] not in str(caught.value)


def test_suspend_reinstate_revoke_change_the_status_bit_at_once(vault: Vault) -> None:
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        licence = factories.driving_licence(vault, session, owner)
        shown = vault.licences.present(session, licence.id, ["name"], actor="test")
    for step, expected in [
        (Step.SUSPEND, "suspended"),
        (Step.REINSTATE, "ok"),
        (Step.SUSPEND, "suspended"),
        (Step.REVOKE, "revoked"),
    ]:
        with vault.db.session() as session:
            vault.licences.change(session, licence.id, step, issuer_code="traffic-police", reason="test")
        with vault.db.session() as session:
            assert vault.licences.verify(session, shown).reason == expected
    with pytest.raises(IllegalTransition, match="that is revoked"), vault.db.session() as session:
        vault.licences.change(session, licence.id, Step.REINSTATE, issuer_code="traffic-police")
    with pytest.raises(NotTheIssuer), vault.db.session() as session:
        vault.licences.change(session, licence.id, Step.SUSPEND, issuer_code="public-security")
    assert _actions(vault)[-4:] == ["licence.suspended", "licence.reinstated", "licence.suspended", "licence.revoked"]


def test_renewal_supersedes_the_old_version(vault: Vault) -> None:
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        licence = factories.driving_licence(vault, session, owner)
        old = vault.licences.present(session, licence.id, ["class"], actor="test")
        vault.licences.renew(
            session, licence.id, issuer_code="traffic-police", changes={"class": "B2", "valid_until": "2038-01-01"}
        )
    with vault.db.session() as session:
        new = vault.licences.present(session, licence.id, ["class", "valid_until"], actor="test")
        assert vault.licences.verify(session, old).reason == "revoked"
        result = vault.licences.verify(session, new)
        assert result.ok and result.claims == {"class": "B2", "valid_until": "2038-01-01"}
        versions = session.scalars(select(LicenceVersion).where(LicenceVersion.licence_id == licence.id)).all()
        assert sorted(v.version for v in versions) == [1, 2]
        assert [v.superseded_at is not None for v in sorted(versions, key=lambda v: v.version)] == [True, False]
        with pytest.raises(ValueError, match="licence_number"):
            vault.licences.renew(session, licence.id, issuer_code="traffic-police", changes={"licence_number": "X"})


def test_a_licence_past_its_end_is_expired_on_read_and_by_the_sweep(vault: Vault) -> None:
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        stale = factories.driving_licence(vault, session, owner, valid_until=yesterday)
        other = factories.driving_licence(vault, session, owner, valid_until=yesterday)
        shown = vault.licences.present(session, stale.id, ["name"], actor="test")
    with vault.db.session() as session:
        assert vault.licences.verify(session, shown).reason == "expired"
        assert vault.licences.get(session, stale.id).state == "expired"
        assert vault.licences.expire_due(session) == 1
        assert vault.licences.get(session, other.id).state == "expired"
    assert _actions(vault).count("licence.expired") == 2


def test_a_licence_valid_from_the_future_is_issued_not_active(vault: Vault) -> None:
    later = (date.today() + timedelta(days=3)).isoformat()
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        licence = factories.driving_licence(vault, session, owner, valid_from=later)
        assert licence.state == "issued"
        assert vault.licences.expire_due(session, today=date.today() + timedelta(days=3)) == 0
        assert vault.licences.get(session, licence.id).state == "active"


def test_status_indexes_do_not_reveal_issue_order(vault: Vault) -> None:
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        for _ in range(20):
            factories.driving_licence(vault, session, owner)
        indexes = [v.status_idx for v in session.scalars(select(LicenceVersion).order_by(LicenceVersion.issued_at))]
    assert len(set(indexes)) == 20
    assert indexes != sorted(indexes) and max(indexes) - min(indexes) > 1000


def test_issuer_key_rotation_keeps_old_licences_verifiable(vault: Vault) -> None:
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        old = factories.driving_licence(vault, session, owner)
        old_shown = vault.licences.present(session, old.id, ["name"], actor="test")
        new_kid = vault.issuers.rotate_key(session, "traffic-police")
        new = factories.driving_licence(vault, session, owner)
        new_shown = vault.licences.present(session, new.id, ["name"], actor="test")
    with vault.db.session() as session:
        metadata = vault.issuers.metadata(session, "traffic-police")
        assert len(metadata["jwks"]["keys"]) == 2  # type: ignore[index]
        assert vault.licences.verify(session, old_shown).ok and vault.licences.verify(session, new_shown).ok
    header = json.loads(b64url_decode(new_shown.split(".")[0]))
    assert header["kid"] == new_kid


def test_forged_and_altered_presentations_are_caught(vault: Vault) -> None:
    with vault.db.session() as session:
        owner = factories.person(vault, session)
        licence = factories.driving_licence(vault, session, owner)
        shown = vault.licences.present(session, licence.id, ["class"], actor="test")
    from vault.licences.sdjwt import make_disclosure

    jwt, _ = split(shown)
    altered = jwt + "~" + make_disclosure("class", "A1") + "~"  # a value the issuer never signed
    with vault.db.session() as session:
        assert vault.licences.verify(session, altered).reason == "digest_mismatch"
        head, payload, signature = jwt.split(".")
        flipped = head + "." + payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:] + "~"
        assert vault.licences.verify(session, flipped).reason == "bad_signature"
        assert vault.licences.verify(session, shown, now=int(time.time()) + 40 * 365 * 86400).reason == "expired"


def test_disclosures_are_read_by_version_not_by_owner(vault: Vault) -> None:
    """An owner's fields of many licences are not scanned to read a few: the query goes by (version_id, name)."""
    from vault.licences.services import _DISCLOSURES

    if not vault.db.is_sqlite:
        pytest.skip("SQLite's query plan")
    ids = [uuid.uuid4() for _ in range(3)]
    query = _DISCLOSURES.statement.params(owner_id=ids[0], versions=ids[1:], names=["name", "class"])
    with vault.db.engine.connect() as conn:
        sql = query.compile(conn, compile_kwargs={"literal_binds": True})
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
    assert [row[-1] for row in plan] == [
        "SEARCH licence_fields USING INDEX sqlite_autoindex_licence_fields_2 (version_id=? AND name=?)"
    ]
