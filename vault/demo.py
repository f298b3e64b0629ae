"""The synthetic demo population: obviously fictional names, identifiers with valid check characters.

Deterministic: the same people, enterprises and links every time (keys and salts are random, as always).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import func, select

from vault import clock, demo_history
from vault.config import ConfigError, Settings
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


def _person_licences(p: DemoPerson, sex: str, birth: str, address: str) -> list[tuple[str, dict[str, object]]]:
    return [
        (
            "resident-id-card",
            {
                "name": p.name,
                "sex": sex,
                "ethnicity": "汉",
                "birth_date": birth,
                "address": address,
                "id_number": p.id_number,
                "issuing_authority": "演示市公安局演示分局",
                "valid_from": "2020-05-01",
                "valid_until": "2040-05-01",
                "photo": f"demo-photo:{p.key}",
            },
        ),
        (
            "household-register",
            {
                "household_number": f"DEMO{p.id_number[-6:]}",
                "household_type": "家庭户",
                "head_of_household_name": p.name,
                "registered_address": address,
                "name": p.name,
                "relationship": "户主",
                "sex": sex,
                "ethnicity": "汉",
                "birth_date": birth,
                "birthplace": "演示省演示市",
                "native_place": "演示省演示县",
                "id_number": p.id_number,
                "marital_status": "已婚",
                "registration_date": "2010-03-15",
            },
        ),
    ]


def demo_licences() -> list[tuple[str, str, dict[str, object]]]:
    """(owner key, licence type, values) for the demo population; every value obviously synthetic."""
    a, b, c = PERSONS
    transport = ENTERPRISES[0]
    result: list[tuple[str, str, dict[str, object]]] = []
    for person, sex, birth in ((a, "男", "1985-03-12"), (b, "女", "1990-07-01"), (c, "男", "1978-11-23")):
        address = f"演示市演示区示例路{ord(person.key) - 96}号"
        result += [(person.key, t, v) for t, v in _person_licences(person, sex, birth, address)]
    result.append(
        (
            "a",
            "driving-licence",
            {
                "licence_number": a.id_number,
                "name": a.name,
                "sex": "男",
                "nationality": "中国",
                "address": "演示市演示区示例路1号",
                "birth_date": "1985-03-12",
                "first_issue_date": "2006-08-20",
                "class": "C1",
                "valid_from": "2022-08-20",
                "valid_until": "2032-08-20",
                "file_number": "DEMO110100123456",
                "issuing_authority": "演示市公安局交通管理局",
                "photo": "demo-photo:a",
            },
        )
    )
    result.append(
        (
            "a",
            "vehicle-licence",
            {
                "plate_number": "演A·D0001",
                "vehicle_type": "K33",
                "owner_name": a.name,
                "address": "演示市演示区示例路1号",
                "use_character": "非营运",
                "brand_model": "演示牌DEMO7150",
                "vin": "LDEMO000000000001",
                "engine_number": "DEMO0001",
                "registration_date": "2021-06-01",
                "issue_date": "2021-06-01",
                "file_number": "DEMO000001",
                "approved_passengers": 5,
            },
        )
    )
    for enterprise in ENTERPRISES:
        result.append(
            (
                enterprise.key,
                "business-licence",
                {
                    "credit_code": enterprise.credit_code,
                    "name": enterprise.name,
                    "entity_type": "有限责任公司",
                    "legal_representative": a.name if enterprise is transport else c.name,
                    "registered_capital": "壹佰万元整",
                    "established_date": "2015-04-01",
                    "business_term": "长期",
                    "address": "演示市演示区示例大道100号",
                    "business_scope": "道路普通货物运输" if enterprise is transport else "软件开发；信息技术咨询服务",
                    "registration_authority": "演示市市场监督管理局",
                    "registration_date": "2015-04-01",
                },
            )
        )
    result.append(
        (
            "transport",
            "road-transport-permit",
            {
                "permit_number": "演交运管许可货字DEMO00001号",
                "holder_name": transport.name,
                "address": "演示市演示区示例大道100号",
                "business_scope": "普通货运",
                "valid_from": "2023-01-01",
                "valid_until": "2029-12-31",
                "issuing_authority": "演示市交通运输局",
                "issue_date": "2023-01-01",
            },
        )
    )
    return result


@dataclass(frozen=True)
class DemoAgency:
    client_id: str
    name_zh: str
    name_en: str
    category: str
    department: str
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]

    @property
    def secret(self) -> str:
        return f"demo-secret-{self.client_id}"


SAMPLE_AGENCY_URL = "http://127.0.0.1:8001"  # `make agency`: the demo redirect URI is its /callback
AGENCY_REDIRECT = f"{SAMPLE_AGENCY_URL}/callback"
AGENCIES = (
    DemoAgency(
        "traffic-police-vehicle-office",
        "演示市公安局交通管理局车辆管理所",
        "Demo City Traffic Police Vehicle Office",
        "traffic",
        "traffic-police",
        ("authorization_code", "refresh_token", "urn:openid:params:grant-type:ciba"),
        ("consent:request", "licences:read"),
    ),
    DemoAgency(
        "transport-bureau",
        "演示市交通运输局",
        "Demo City Transport Bureau",
        "transport",
        "transport",
        ("authorization_code", "refresh_token", "urn:openid:params:grant-type:ciba"),
        ("consent:request", "licences:read"),
    ),
    DemoAgency(
        "housing-bureau",
        "演示市住房和城乡建设局",
        "Demo City Housing Bureau",
        "housing",
        "housing",
        ("authorization_code", "refresh_token", "urn:openid:params:grant-type:ciba"),
        ("consent:request", "licences:read"),
    ),
    DemoAgency(
        "police-investigation",
        "演示市公安局刑事侦查支队",
        "Demo City Police Criminal Investigation",
        "police",
        "public-security",
        ("client_credentials",),
        ("licences:read", "licences:verify"),
    ),
    DemoAgency(
        "traffic-police-issuing",
        "演示市公安局交通管理局（发证）",
        "Demo City Traffic Police (issuing)",
        "issuer",
        "traffic-police",
        ("client_credentials",),
        ("licences:issue",),
    ),
    DemoAgency(  # a counter: starts requests itself (requestConsent), and verifies the QR codes people show
        "traffic-police-counter",
        "演示市公安局交通管理局车辆管理所（窗口）",
        "Demo City Vehicle Office counter",
        "traffic",
        "traffic-police",
        (
            "authorization_code",
            "refresh_token",
            "urn:openid:params:grant-type:ciba",
            "client_credentials",
        ),
        ("consent:request", "licences:read", "licences:verify"),
    ),
    DemoAgency(
        "approval-hall",
        "演示市政务服务中心",
        "Demo City Government Service Centre",
        "service-centre",
        "market-regulation",
        ("client_credentials",),
        ("licences:verify",),
    ),
)


def create_demo_agencies(vault: Vault, session: Any) -> None:
    for agency in AGENCIES:
        items = [i.code for i in vault.policy.catalogue.items_of(agency.department)]
        redirect = [AGENCY_REDIRECT] if "authorization_code" in agency.grant_types else []
        vault.agencies.register(
            session,
            client_id=agency.client_id,
            name_zh=agency.name_zh,
            name_en=agency.name_en,
            category=agency.category,
            department=agency.department,
            service_items=items if "consent:request" in agency.scopes else [],
            redirect_uris=redirect,
            grant_types=list(agency.grant_types),
            scopes=list(agency.scopes),
            auth_method="client_secret_basic",
            secret=agency.secret,
            actor=ACTOR,
        )


def create_demo(vault: Vault, *, only_if_empty: bool = False, history: bool = False) -> str:
    """Create the demo population; with only_if_empty, leave a database that has owners alone.

    With history, the population is created a hundred days ago and sixty days of requests, reads and revocations
    follow (vault.demo_history), so every page and chart has something to show. Refused in production mode
    (ConfigError): its logins and agency secrets are printed in the README.
    """
    if vault.settings.is_production:
        raise ConfigError("the demo population is refused in production mode (VAULT_MODE=production)")
    with vault.db.session() as session:
        if only_if_empty and session.scalar(select(func.count()).select_from(Owner)):
            return "demo population: database already has owners, left as it is"
        now = clock.utcnow()
        with clock.pinned_at(demo_history.start_of_history(now)) if history else contextlib.nullcontext():
            summary = _create_population(vault, session)
        if history:
            persons = {p.key: p.id_number for p in PERSONS}
            owners = demo_history.owners_of(vault, session, persons, ENTERPRISES[0].credit_code)
            events = demo_history.write_history(vault, session, owners, now)
            summary += f", {demo_history.DAYS} days of history ({events} access events)"
        vault.audit.sequence(session, limit=10_000_000)  # the demo's history, integrated and signed at once
    return f"demo population: {summary}"


def _create_population(vault: Vault, session: Any) -> str:
    accounts = AccountService(vault.keys)
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
    create_demo_agencies(vault, session)
    owners = {**persons, **enterprises}
    licences = demo_licences()
    for owner_key, type_code, values in licences:
        issuer = vault.catalogue.type(type_code).issuer
        vault.licences.issue(
            session, issuer_code=issuer, owner_id=owners[owner_key].id, type_code=type_code, values=values
        )
    return (
        f"{len(PERSONS)} persons, {len(ENTERPRISES)} enterprises, {len(REPRESENTATIVES)} representatives, "
        f"{len(licences)} licences"
    )


def banner(settings: Settings) -> str:
    """What `make run` prints: where each user goes and the demo logins."""
    url = settings.public_url
    lines = [
        "",
        f"Consent Vault ({settings.mode.value} mode) on {url}",
        f"  citizens and enterprise representatives   {url}/",
        f"  compliance console                        {url}/console",
        f"  OAuth metadata (agencies)                 {url}/.well-known/oauth-authorization-server",
        f"  GraphQL API                               {url}/graphql",
        f"  health                                    {url}/healthz   readiness {url}/readyz",
        "",
    ]
    if settings.is_production:
        return "\n".join(lines)  # never the demo credentials: production refuses the demo population
    lines += [
        "Demo logins (synthetic people; every citizen's password is " + repr(CITIZEN_PASSWORD) + "):",
    ]
    reps = {p: f"{r.value.replace('_', ' ')} of {e}" for e, p, r in REPRESENTATIVES}
    for p in PERSONS:
        extra = f"  ({reps[p.key]})" if p.key in reps else ""
        lines.append(f"  citizen   {p.id_number}  {p.name}{extra}")
    lines.append(f"  staff     {STAFF_LOGIN} / {STAFF_PASSWORD}")
    lines.append("")
    lines.append("Demo agencies (OAuth clients, client_secret_basic; secret = demo-secret-<client id>):")
    for agency in AGENCIES:
        lines.append(f"  {agency.client_id:<30} {agency.name_en}")
    lines.append(f"  sample agency (`make agency`, built on sdk/python)   {SAMPLE_AGENCY_URL}/")
    lines.append("  integrators: docs/quickstart.md; `vault agencies list --verbose` for grants and redirect URIs")
    lines.append("")
    return "\n".join(lines)
