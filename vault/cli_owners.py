"""`vault owners enrol` and `vault owners representatives ...`: sign-in for people added by an operator, and who
may act for an enterprise. Every change is recorded in the access log, where the company sees it."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from vault.owners.accounts import Enrolments
from vault.owners.models import OwnerKind, RepresentativeRole
from vault.owners.services import owner_label
from vault.wiring import Vault

OPERATOR = "operator:cli"
Handler = Callable[[Vault, argparse.Namespace], int]


def owners_enrol(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        owner = vault.owners.resolve(session, args.owner)
        issued = Enrolments(vault.keys, vault.audit).issue(session, owner.id, actor=OPERATOR)
    print(f"activation code for owner {owner.id}: {issued.code}")
    print(f"valid until {issued.expires_at:%Y-%m-%d %H:%M} UTC, once; the person redeems it at /activate")
    return 0


def _enterprise(vault: Vault, session: Any, reference: str) -> uuid.UUID:
    owner = vault.owners.resolve(session, reference)
    if owner.kind != OwnerKind.ENTERPRISE:
        raise ValueError("representatives are listed for an enterprise: name one by id or credit code")
    return owner.id


def representatives_list(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        links = vault.owners.links(session, _enterprise(vault, session, args.enterprise))
        on = date.today()
        for link in links:
            state = "ended" if link.ended_at else "in force" if link.in_force(on) else "not in force"
            until = link.valid_until.isoformat() if link.valid_until else "-"
            person = owner_label(vault.owners, session, link.person_id)
            print(f"{link.id}  {link.role:<21}  {person}  {link.valid_from}..{until}  {state}")
    return 0


def representatives_add(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        enterprise = _enterprise(vault, session, args.enterprise)
        person = vault.owners.resolve(session, args.person)
        link = vault.owners.add_representative(
            session,
            enterprise_id=enterprise,
            person_id=person.id,
            role=RepresentativeRole(args.role),
            valid_from=args.valid_from,
            valid_until=args.valid_until,
            actor=OPERATOR,
        )
    print(link.id)
    return 0


def representatives_set_legal(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        enterprise = _enterprise(vault, session, args.enterprise)
        person = vault.owners.resolve(session, args.person)
        link = vault.owners.set_legal_representative(
            session, enterprise_id=enterprise, person_id=person.id, valid_from=args.valid_from, actor=OPERATOR
        )
    print(link.id)
    return 0


def representatives_end(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        link = vault.owners.end_representative(session, uuid.UUID(args.link), actor=OPERATOR)
    print(f"representative link {link.id} ended")
    return 0


def representatives_limit(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        link = vault.owners.limit_representative(session, uuid.UUID(args.link), args.until, actor=OPERATOR)
    print(f"representative link {link.id} in force until {link.valid_until}")
    return 0


def add_parsers(
    owners: argparse._SubParsersAction[argparse.ArgumentParser],
    wrap: Callable[[Handler], Callable[[argparse.Namespace], int]],
    a_date: Callable[[str], date],
) -> None:
    """The enrolment and representatives commands, under `vault owners`."""
    enrol = owners.add_parser("enrol", help="a one-time activation code with which a person sets a password")
    enrol.add_argument("owner", help="owner id or resident ID number")
    enrol.set_defaults(run=wrap(owners_enrol))

    reps = owners.add_parser("representatives", help="who may act for an enterprise").add_subparsers(
        dest="representatives_command", required=True
    )
    listing = reps.add_parser("list", help="every link of an enterprise, ended ones too")
    listing.add_argument("enterprise", help="owner id or credit code")
    listing.set_defaults(run=wrap(representatives_list))
    add = reps.add_parser("add", help="let a person act for an enterprise")
    add.add_argument("--enterprise", required=True, help="owner id or credit code")
    add.add_argument("--person", required=True, help="owner id or resident ID number")
    add.add_argument("--role", required=True, choices=[r.value for r in RepresentativeRole])
    add.add_argument("--valid-from", type=a_date, default=date.today())
    add.add_argument("--valid-until", type=a_date, default=None)
    add.set_defaults(run=wrap(representatives_add))
    legal = reps.add_parser("set-legal", help="make a person the legal representative, ending the previous one")
    legal.add_argument("--enterprise", required=True, help="owner id or credit code")
    legal.add_argument("--person", required=True, help="owner id or resident ID number")
    legal.add_argument("--valid-from", type=a_date, default=date.today())
    legal.set_defaults(run=wrap(representatives_set_legal))
    end = reps.add_parser("end", help="end a link now")
    end.add_argument("link", help="link id (see `list`)")
    end.set_defaults(run=wrap(representatives_end))
    limit = reps.add_parser("limit", help="set the last day a link is in force")
    limit.add_argument("link", help="link id (see `list`)")
    limit.add_argument("--until", required=True, type=a_date)
    limit.set_defaults(run=wrap(representatives_limit))
