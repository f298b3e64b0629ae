"""The synthetic demo population: obviously fictional names, identifiers with valid check characters.

Deterministic: the same people, enterprises and links every time (keys and salts are random, as always).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import func, select

from vault.config import Settings
from vault.owners.accounts import AccountService
from vault.owners.identifiers import synthetic_credit_code, synthetic_resident_id
from vault.owners.models import AccountRole, Owner, RepresentativeRole
from vault.wiring import Vault

ACTOR = "system:demo"
CITIZEN_PASSWORD = "demo-citizen"  # noqa: S105 -- published demo login, printed by `make run`
STAFF_LOGIN = "compliance"
STAFF_PASSWORD = "demo-compliance"  # noqa: S105 -- published demo login


@dataclass(frozen=True)
class DemoPerson:
    key: str
    name: str
    id_number: str


@dataclass(frozen=True)
class DemoEnterprise:
    key: str
    name: str
    credit_code: str


PERSONS = (
    DemoPerson("a", "演示居民甲", synthetic_resident_id("110105", date(1985, 3, 12), 123)),
    DemoPerson("b", "演示居民乙", synthetic_resident_id("310104", date(1990, 7, 1), 456)),
    DemoPerson("c", "演示居民丙", synthetic_resident_id("440305", date(1978, 11, 23), 789)),
)
ENTERPRISES = (
    DemoEnterprise("transport", "演示道路运输有限公司", synthetic_credit_code("9", "1", "110105", "MA0DEM001")),
    DemoEnterprise("tech", "演示科技有限公司", synthetic_credit_code("9", "1", "310104", "MA0DEM002")),
)
# (enterprise, person, role)
REPRESENTATIVES = (
    ("transport", "a", RepresentativeRole.LEGAL_REPRESENTATIVE),
    ("tech", "c", RepresentativeRole.LEGAL_REPRESENTATIVE),
    ("tech", "b", RepresentativeRole.AUTHORISED_AGENT),
)


def create_demo(vault: Vault, *, only_if_empty: bool = False) -> str:
    """Create the demo population; with only_if_empty, leave a database that has owners alone."""
    accounts = AccountService(vault.keys)
    with vault.db.session() as session:
        if only_if_empty and session.scalar(select(func.count()).select_from(Owner)):
            return "demo population: database already has owners, left as it is"
        persons = {
            p.key: vault.owners.add_person(session, id_number=p.id_number, name=p.name, actor=ACTOR) for p in PERSONS
        }
        enterprises = {
            e.key: vault.owners.add_enterprise(session, credit_code=e.credit_code, name=e.name, actor=ACTOR)
            for e in ENTERPRISES
        }
        for enterprise, person, role in REPRESENTATIVES:
            vault.owners.add_representative(
                session,
                enterprise_id=enterprises[enterprise].id,
                person_id=persons[person].id,
                role=role,
                valid_from=date(2024, 1, 1),
                valid_until=None,
                actor=ACTOR,
            )
        for p in PERSONS:
            accounts.create(
                session,
                login=p.id_number,
                password=CITIZEN_PASSWORD,
                role=AccountRole.CITIZEN,
                owner_id=persons[p.key].id,
            )
        accounts.create(session, login=STAFF_LOGIN, password=STAFF_PASSWORD, role=AccountRole.STAFF)
        vault.audit.checkpoint(session)
    counts = f"{len(PERSONS)} persons, {len(ENTERPRISES)} enterprises, {len(REPRESENTATIVES)} representatives"
    return f"demo population: {counts}"


def banner(settings: Settings) -> str:
    """What `make run` prints: where each user goes and the demo logins."""
    url = settings.public_url
    lines = [
        "",
        f"Consent Vault ({settings.mode.value} mode) on {url}",
        f"  health            {url}/healthz   readiness {url}/readyz",
        "",
        "Demo logins (synthetic people; every citizen's password is " + repr(CITIZEN_PASSWORD) + "):",
    ]
    reps = {p: f"{r.value.replace('_', ' ')} of {e}" for e, p, r in REPRESENTATIVES}
    for p in PERSONS:
        extra = f"  ({reps[p.key]})" if p.key in reps else ""
        lines.append(f"  citizen   {p.id_number}  {p.name}{extra}")
    lines.append(f"  staff     {STAFF_LOGIN} / {STAFF_PASSWORD}")
    lines.append("")
    return "\n".join(lines)
