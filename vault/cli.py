"""`vault`: the operator's command line. Every command reads the same VAULT_* settings as the server."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from sqlalchemy.engine import make_url

from vault import cli_owners
from vault.audit import publishing
from vault.audit.events import Action, Event
from vault.audit.services import AuditError
from vault.config import ConfigError, Settings, load_settings
from vault.consent.errors import ConsentError
from vault.crypto.errors import CryptoError
from vault.crypto.free_text import check_text
from vault.db import SchemaError, current_revision, head_revision, upgrade
from vault.licences.errors import LicenceError
from vault.logs import configure
from vault.mandates.errors import MandateError
from vault.oauth.errors import AgencyError
from vault.owners.errors import OwnerError
from vault.owners.models import RepresentativeRole
from vault.policy.errors import PolicyError
from vault.portability.errors import ExportError
from vault.wiring import Vault, build_vault
from vault.witness import cli as witness_cli

OPERATOR = "operator:cli"
EXPECTED_ERRORS = (
    ConfigError,
    SchemaError,
    CryptoError,
    OwnerError,
    MandateError,
    AuditError,
    LicenceError,
    AgencyError,
    PolicyError,
    ConsentError,
    ExportError,
    ValueError,
    OSError,
)

Handler = Callable[[Vault, argparse.Namespace], int]


def _open(check: bool = True, *, initialise: bool = False) -> Vault:
    """The vault the settings name; unless `initialise`, one that exists (never a second, empty one by mistake)."""
    settings = load_settings()
    if not initialise:
        _refuse_missing_vault(settings)
    configure(settings.log_level, settings.log_dir)
    return build_vault(settings, check=check)


def _refuse_missing_vault(settings: Settings) -> None:
    missing = []
    if settings.master_keys is None and not settings.key_file.exists():
        missing.append(f"no key file {settings.key_file}")
    database = make_url(settings.database_url).database
    if settings.database_url.startswith("sqlite") and database and not Path(database).exists():
        missing.append(f"no database {database}")
    if missing:
        raise ConfigError(
            f"there is no vault here ({' and '.join(missing)}): check VAULT_DATA_DIR, "
            "or create a new vault with `vault db upgrade`"
        )


# db


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    vault = _open(check=False, initialise=True)
    try:
        upgrade(vault.db.engine)
        print(f"database at revision {current_revision(vault.db.engine)}")
    finally:
        vault.close()
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    vault = _open(check=False)
    try:
        print(f"current: {current_revision(vault.db.engine) or '(empty)'}  head: {head_revision()}")
    finally:
        vault.close()
    return 0


# keys


def keys_status(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        status = vault.keys.status(session)
    print(f"primary master key: {vault.keyring.primary_id}")
    for kek_id in vault.keyring.key_ids() + sorted(set(status.deks) - set(vault.keyring.key_ids())):
        held = "" if kek_id in vault.keyring.key_ids() else "  (NOT IN KEYRING)"
        deks, system = status.deks.get(kek_id, 0), status.system_keys.get(kek_id, 0)
        print(f"{kek_id}: {deks} owner data keys, {system} system keys{held}")
    print(f"destroyed owner data keys: {status.destroyed}")
    return 0


def keys_rotate(vault: Vault, args: argparse.Namespace) -> int:
    old = vault.keyring.primary_id
    if not args.rewrap_only:
        new = vault.keyring.add_primary()
        print(f"new primary master key {new} (was {old})")
    moved = vault.keys.rewrap_all(vault.db.session)
    with vault.db.session() as session:
        vault.audit.append(
            session,
            Event(Action.KEYS_ROTATED, OPERATOR, detail={"primary": vault.keyring.primary_id, "rewrapped": moved}),
        )
    print(f"re-wrapped {moved} keys under {vault.keyring.primary_id}")
    return keys_status(vault, args)


def keys_retire(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        vault.keys.retire(session, args.kek_id)
        vault.audit.append(session, Event(Action.KEYS_RETIRED, OPERATOR, detail={"kek": args.kek_id}))
    print(f"retired master key {args.kek_id}")
    return 0


# owners


def owners_add_person(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        owner = vault.owners.add_person(session, id_number=args.id_number, name=args.name, actor=OPERATOR)
    print(owner.id)
    return 0


def owners_add_enterprise(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        owner = vault.owners.add_enterprise(session, credit_code=args.credit_code, name=args.name, actor=OPERATOR)
    print(owner.id)
    return 0


def owners_add_representative(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        enterprise = vault.owners.resolve(session, args.enterprise)
        person = vault.owners.resolve(session, args.person)
        link = vault.owners.add_representative(
            session,
            enterprise_id=enterprise.id,
            person_id=person.id,
            role=RepresentativeRole(args.role),
            valid_from=args.valid_from,
            valid_until=args.valid_until,
            actor=OPERATOR,
        )
    print(link.id)
    return 0


def owners_list(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        rows = vault.owners.summaries(session)
    for row in rows:
        print(f"{row.id}  {row.kind:<10}  {row.masked_identifier:<18}  {row.state}")
    return 0


def owners_erase(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        owner = vault.owners.resolve(session, args.owner)
        owner = vault.owners.request_erasure(session, owner.id, actor=OPERATOR, now=args.now)
    vault.db.checkpoint_wal()
    if owner.erased_at:
        print(f"owner {owner.id} erased: data key and identifier indexes destroyed")
    else:
        print(
            f"owner {owner.id} will be erased after {owner.erase_after:%Y-%m-%d %H:%M} UTC (`vault owners erase-due`)"
        )
    return 0


def owners_erase_due(vault: Vault, args: argparse.Namespace) -> int:
    from vault.maintenance import erase_due

    count = erase_due(vault)  # owner by owner: one failure is logged and the others still go
    print(f"erased {count} owners whose grace period ended")
    return 0


# audit


def audit_verify(vault: Vault, args: argparse.Namespace) -> int:
    report = vault.audit.verify(vault.db.engine, full=args.full)
    for line in report.notes:
        print(f"note: {line}", file=sys.stderr)
    if report.problem:
        print(f"FAILED at event {report.problem.position}: {report.problem.what}", file=sys.stderr)
        return 1
    against = "; ".join(report.anchors) or "no witness or published checkpoint"
    print(
        f"ok: {report.size} events ({report.size - report.start} read), {report.checkpoints} signed checkpoints "
        f"verified, {report.pending} pending; checked against {against}"
    )
    return 0


def audit_checkpoint(vault: Vault, args: argparse.Namespace) -> int:
    """Integrate what is pending, sign, publish, and ask the witnesses to cosign (what the leader does)."""
    publishing.sequence_step(vault.audit, vault.db)
    with vault.db.session() as session:
        signed = vault.audit.checkpoint(session)  # a tree without a checkpoint yet (a restored backup, say)
    if signed is not None:
        publishing.publish(vault.audit, vault.db)
    publishing.witness_step(vault.audit, vault.db)
    with vault.db.session() as session:
        row = vault.audit.latest_checkpoint(session)
        print(vault.audit.cosigned_note(session, row) if row else "the log is empty", end="" if row else "\n")
    return 0


def audit_key(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        print(vault.audit.log_key(session))
    return 0


def audit_prove(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        proof = vault.audit.prove(session, uuid.UUID(args.event))
    print(json.dumps(proof.as_json(), indent=2, ensure_ascii=False))
    return 0


# licences and issuers


def _set_values(items: list[str] | None) -> dict[str, object]:
    values: dict[str, object] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set takes name=value, got {name or item!r}")
        values[name] = int(value) if value.isdigit() and name in ("approved_passengers", "gross_mass_kg") else value
    return values


def licences_list(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        owner = vault.owners.resolve(session, args.owner)
        rows = vault.licences.list_for_owner(session, owner.id)
    for row in rows:
        until = row.valid_until.isoformat() if row.valid_until else "long-term"
        print(f"{row.id}  {row.type_code:<22}  {row.state:<9}  v{row.version}  until {until}  by {row.issuer_code}")
    return 0


def licences_issue(vault: Vault, args: argparse.Namespace) -> int:
    values = json.loads(Path(args.json).read_text(encoding="utf-8")) if args.json else {}
    values.update(_set_values(args.set))
    with vault.db.session() as session:
        owner = vault.owners.resolve(session, args.owner)
        issuer = vault.catalogue.type(args.type).issuer
        licence = vault.licences.issue(
            session, issuer_code=issuer, owner_id=owner.id, type_code=args.type, values=values, actor=OPERATOR
        )
    print(licence.id)
    return 0


NOT_IN_FORCE = ("suspended", "revoked", "expired")


def licences_present(vault: Vault, args: argparse.Namespace) -> int:
    fields = [f.strip() for f in args.fields.split(",") if f.strip()]
    with vault.db.session() as session:
        state = str(vault.licences.get(session, args.licence).state)
        if state in NOT_IN_FORCE:
            print(f"warning: licence {args.licence} is {state}: a verifier will refuse it", file=sys.stderr)
            if not args.force:
                print("not presented; pass --force to present it anyway", file=sys.stderr)
                return 3
        print(vault.licences.present(session, args.licence, fields, actor=OPERATOR))
    return 0


def licences_verify(vault: Vault, args: argparse.Namespace) -> int:
    from vault.licences.verify import explain

    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    with vault.db.session() as session:
        result = vault.licences.verify(session, text.strip())
    if not result.ok:
        print(f"NOT VALID: {explain(result)} ({result.reason})")
        return 1
    licence_type = vault.catalogue.by_vct(result.vct or "")
    print(f"genuine and in force: {licence_type.name_en} ({licence_type.name_zh}) issued by {result.issuer}")
    for name, value in result.claims.items():
        print(f"  {licence_type.field(name).label_en}: {value}")
    return 0


def licences_change(vault: Vault, args: argparse.Namespace) -> int:
    from vault.licences.lifecycle import Step

    with vault.db.session() as session:
        licence = vault.licences.get(session, args.licence)
        if args.step == "renew":
            vault.licences.renew(session, licence.id, issuer_code=licence.issuer_code, changes=_set_values(args.set))
        else:
            reason = check_text(args.reason or "", max_length=500, multiline=True) or None
            vault.licences.change(session, licence.id, Step(args.step), issuer_code=licence.issuer_code, reason=reason)
    print(f"licence {licence.id} is {licence.state} (version {licence.current_version})")
    return 0


def licences_import(vault: Vault, args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from vault.licences.bulk import BulkIssuer
    from vault.licences.importing import Progress, count_rows, format_of, import_file
    from vault.licences.pipeline import Pipeline, WorkerSetup, tune_gc_for_import

    path = Path(args.file)
    if not path.is_file():
        print(f"error: no file {path}", file=sys.stderr)
        return 2
    fmt = format_of(path, args.format)
    report_path = Path(args.report) if args.report else path.with_name(path.name + ".errors.csv")
    total = count_rows(path, fmt)
    tune_gc_for_import()
    issuer = BulkIssuer(vault.licences)
    settings = vault.settings
    setup = WorkerSetup(settings.database_url, settings.policies_dir, settings.public_url, vault.keyring.in_memory())
    pipeline = Pipeline(issuer, vault.db, setup, workers=args.workers) if args.workers else None
    workers = f"{args.workers} worker processes preparing" if args.workers else "prepared in this process"
    print(
        f"importing {total:,} rows from {path.name} ({fmt}), {args.batch} per transaction, {workers}",
        file=sys.stderr,
    )
    with report_path.open("w", encoding="utf-8", newline="") as report, pipeline or nullcontext():
        result = import_file(
            path,
            fmt,
            issuer=issuer,
            unit_of_work=vault.db.session,
            report=report,
            progress=Progress(sys.stderr, total),
            actor=OPERATOR,
            batch_size=args.batch,
            pipeline=pipeline,
        )
    rate = result.total / result.seconds if result.seconds else 0.0
    print(
        f"{result.issued} issued, {result.already_issued} already issued, {result.invalid} invalid "
        f"of {result.total} rows in {result.seconds:.1f} s ({rate:,.0f} rows/s)"
    )
    if result.invalid:
        print(f"the invalid rows and why are in {report_path}", file=sys.stderr)
    return 1 if result.invalid else 0


def licences_expire(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        count = vault.licences.expire_due(session)
    print(f"expired {count} licences past their validity")
    return 0


def issuers_list(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        for code in vault.issuers.codes():
            kids = ", ".join(sorted(vault.issuers.verify_keys(session, code))) or "(no key yet)"
            print(f"{code:<20} {vault.issuers.issuer_id(code)}  keys: {kids}")
    return 0


def issuers_rotate_key(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        kid = vault.issuers.rotate_key(session, args.code)
        vault.audit.append(session, Event(Action.KEYS_ROTATED, OPERATOR, detail={"issuer": args.code, "kid": kid}))
    print(f"{args.code} now signs with {kid}; earlier keys stay published")
    return 0


# policy and agencies


def cmd_policy_check(args: argparse.Namespace) -> int:
    from vault.config import PROJECT_ROOT
    from vault.policy.check import check

    directory = Path(args.directory) if args.directory else PROJECT_ROOT / "policies"
    problems = check(directory)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"ok: licence types, service catalogue, mandates and Cedar policies in {directory} are valid")
    return 0


def agencies_add(vault: Vault, args: argparse.Namespace) -> int:
    jwks = json.loads(Path(args.jwks).read_text(encoding="utf-8")) if args.jwks else None
    with vault.db.session() as session:
        agency, secret = vault.agencies.register(
            session,
            client_id=args.client_id,
            name_zh=args.name_zh,
            name_en=args.name_en,
            category=args.category,
            department=args.department,
            service_items=args.service_item or [],
            redirect_uris=args.redirect_uri or [],
            grant_types=args.grant_type or [],
            scopes=args.scope or [],
            auth_method="private_key_jwt" if jwks else "client_secret_basic",
            jwks=jwks,
            actor=OPERATOR,
        )
    print(f"registered {agency.client_id}")
    if secret:
        print(f"client secret (shown once, stored hashed): {secret}")
    return 0


def agencies_list(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        for agency in vault.agencies.all(session):
            state = "SUSPENDED" if agency.suspended_at else "active"
            print(f"{agency.client_id:<32} {agency.category:<14} {agency.department:<20} {state:<9} {agency.name_en}")
            if getattr(args, "verbose", False):
                print(f"    auth method:   {agency.auth_method}")
                print(f"    grant types:   {', '.join(agency.grant_types) or '-'}")
                print(f"    scopes:        {', '.join(agency.scopes) or '-'}")
                print(f"    redirect URIs: {', '.join(agency.redirect_uris) or '-'}")
                print(f"    service items: {', '.join(agency.service_items) or '-'}")
    return 0


def agencies_suspend(vault: Vault, args: argparse.Namespace) -> int:
    with vault.db.session() as session:
        if args.reinstate:
            vault.agencies.reinstate(session, args.client_id, actor=OPERATOR)
        else:
            vault.agencies.suspend(session, args.client_id, actor=OPERATOR, reason=args.reason)
    print(f"{args.client_id} {'reinstated' if args.reinstate else 'suspended'}")
    return 0


def mandates_register_case(vault: Vault, args: argparse.Namespace) -> int:
    from vault.clock import utcnow
    from vault.mandates.services import MandateService, registration_end

    service = MandateService(vault.keys, vault.audit, vault.policy.catalogue)
    with vault.db.session() as session:
        case = service.register_case(
            session,
            mandate=vault.policy.catalogue.mandate(args.mandate),
            case_reference=args.case,
            owners=args.owners,
            valid_until=registration_end(args.valid_until),
            actor=OPERATOR,
            now=utcnow(),
        )
        owners = len(case.owners)
        print(f"registered case {case.id} under {case.mandate} for {owners} owner(s) until {args.valid_until}")
    return 0


def cmd_export_verify(args: argparse.Namespace) -> int:
    """Offline: needs no settings, database or keys of the vault; --keys pins the vault's published JWKS."""
    from vault.portability.verify import keys_from_jwks, verify_export

    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    trusted = keys_from_jwks(json.loads(Path(args.keys).read_text(encoding="utf-8"))) if args.keys else None
    report = verify_export(data, trusted_keys=trusted)
    print(f"vault keys: {report.key_source}")
    print(f"licences {report.licences}, grants {report.grants}, events {report.events} ({report.proofs} with proofs)")
    for licence, reason in report.licence_states.items():
        print(f"  licence {licence}: {explain_reason(reason)}")
    for problem in report.problems:
        print(f"problem: {problem}")
    print("the export verifies" if report.ok else "the export does NOT verify")
    return 0 if report.ok else 1


def cmd_verify_answer(args: argparse.Namespace) -> int:
    """Offline: a signed answer of `check`, against the vault's published keys only (a JWKS file or URL)."""
    from vault.answers.errors import AnswerInvalid
    from vault.answers.verify import verify_answer
    from vault.portability.verify import keys_from_jwks

    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    if args.keys.startswith(("https://", "http://")):
        from urllib.request import urlopen

        with urlopen(args.keys, timeout=10) as response:  # noqa: S310 - an http(s) URL the operator names
            jwks = json.loads(response.read())
    else:
        jwks = json.loads(Path(args.keys).read_text(encoding="utf-8"))
    try:
        verified = verify_answer(text, keys_from_jwks(jwks), issuer=args.issuer)
    except AnswerInvalid as error:
        print(f"the answer does NOT verify ({error.reason}): {error}")
        return 1
    claims = verified.claims
    print(f"signed by {claims['iss']} (key {verified.kid}) at {claims['answered_at']}")
    print(f"question: {claims['question'].get('en')} / {claims['question'].get('zh')}")
    print(f"predicate {claims['predicate']}, parameters {json.dumps(claims['parameters'], ensure_ascii=False)}")
    print(f"answer: {'yes' if verified.answer else 'no'}; licence status: {claims['licence_status']}")
    print(f"agency {claims['agency']}, grant {claims['grant']}")
    print("the answer verifies")
    return 0


def explain_reason(reason: str) -> str:
    from vault.licences.verify import REASON_TEXT

    return REASON_TEXT.get(reason, reason)


def cmd_graphql_export(args: argparse.Namespace) -> int:
    from vault.api.export import export_schema
    from vault.config import PROJECT_ROOT

    path = Path(args.path) if args.path else PROJECT_ROOT / "graphql" / "schema.graphql"
    export_schema(path)
    print(f"wrote {path}")
    return 0


# demo and serve


def demo(vault: Vault, args: argparse.Namespace) -> int:
    from vault.demo import create_demo

    summary = create_demo(vault, only_if_empty=args.if_empty, history=not args.no_history)
    print(summary)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from vault.demo import banner
    from vault.serving import serve

    settings = load_settings()
    if args.workers < 1:
        raise ValueError("--workers must be at least 1")
    print(banner(settings), flush=True)
    return serve(settings.host, settings.port, args.workers, settings.log_level)


def _with_vault(handler: Handler, *, initialise: bool = False) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        vault = _open(initialise=initialise)
        try:
            return handler(vault, args)
        finally:
            vault.close()

    return run


def _licence_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a licence id (a UUID, as `vault licences list` shows)"
        ) from None


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="vault", description="Consent Vault operator commands")
    groups = top.add_subparsers(dest="group", required=True)

    def group(name: str, help_text: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        return groups.add_parser(name, help=help_text).add_subparsers(dest="command", required=True)

    db = group("db", "schema migrations")
    db.add_parser("upgrade", help="apply every pending migration").set_defaults(run=cmd_db_upgrade)
    db.add_parser("status", help="current and head revision").set_defaults(run=cmd_db_status)

    keys = group("keys", "master keys and data keys")
    keys.add_parser("status", help="how many keys each master key wraps").set_defaults(run=_with_vault(keys_status))
    rotate = keys.add_parser("rotate", help="new primary master key; re-wrap every data key under it")
    rotate.add_argument("--rewrap-only", action="store_true", help="only re-wrap under the current primary")
    rotate.set_defaults(run=_with_vault(keys_rotate))
    retire = keys.add_parser("retire", help="drop a master key that wraps nothing any more")
    retire.add_argument("kek_id")
    retire.set_defaults(run=_with_vault(keys_retire))

    owners = group("owners", "persons and enterprises")
    person = owners.add_parser("add-person", help="add a person by resident ID number")
    person.add_argument("--id-number", required=True)
    person.add_argument("--name", required=True)
    person.set_defaults(run=_with_vault(owners_add_person))
    enterprise = owners.add_parser("add-enterprise", help="add an enterprise by unified social credit code")
    enterprise.add_argument("--credit-code", required=True)
    enterprise.add_argument("--name", required=True)
    enterprise.set_defaults(run=_with_vault(owners_add_enterprise))
    rep = owners.add_parser("add-representative", help="let a person act for an enterprise")
    rep.add_argument("--enterprise", required=True, help="owner id or credit code")
    rep.add_argument("--person", required=True, help="owner id or resident ID number")
    rep.add_argument("--role", required=True, choices=[r.value for r in RepresentativeRole])
    rep.add_argument("--valid-from", type=_date, default=date.today())
    rep.add_argument("--valid-until", type=_date, default=None)
    rep.set_defaults(run=_with_vault(owners_add_representative))
    owners.add_parser("list", help="pseudonymous ids and masked identifiers").set_defaults(run=_with_vault(owners_list))
    erase = owners.add_parser("erase", help="crypto-shred an owner after the grace period")
    erase.add_argument("owner", help="owner id or identifier")
    erase.add_argument("--now", action="store_true", help="destroy the key now instead of after the grace period")
    erase.set_defaults(run=_with_vault(owners_erase))
    owners.add_parser("erase-due", help="erase owners whose grace period has ended").set_defaults(
        run=_with_vault(owners_erase_due)
    )
    cli_owners.add_parsers(owners, _with_vault, _date)

    audit = group("audit", "the tamper-evident access log")
    verify = audit.add_parser("verify", help="check the log against the witnesses and every signed checkpoint")
    verify.add_argument("--full", action="store_true", help="re-read every event, not only those since the last run")
    verify.set_defaults(run=_with_vault(audit_verify))
    audit.add_parser("checkpoint", help="integrate pending events, sign, publish, get cosigned").set_defaults(
        run=_with_vault(audit_checkpoint)
    )
    audit.add_parser("key", help="the log's verifier key (for witnesses and auditors)").set_defaults(
        run=_with_vault(audit_key)
    )
    prove = audit.add_parser("prove", help="inclusion proof of one event")
    prove.add_argument("event", help="event id")
    prove.set_defaults(run=_with_vault(audit_prove))

    witness_cli.register(group("witness", "an independent witness that cosigns the log (its own key and storage)"))

    lic = group("licences", "licences, their lifecycle, presentations and verification")
    lic_list = lic.add_parser("list", help="an owner's licences: ids, types, states (no field values)")
    lic_list.add_argument("--owner", required=True, help="owner id or identifier")
    lic_list.set_defaults(run=_with_vault(licences_list))
    issue = lic.add_parser("issue", help="issue a licence, signed by the type's issuing department")
    issue.add_argument("--owner", required=True, help="owner id or identifier")
    issue.add_argument("--type", required=True, help="licence type code, e.g. driving-licence")
    issue.add_argument("--json", help="a JSON file with the field values")
    issue.add_argument("--set", action="append", metavar="FIELD=VALUE", help="a field value (repeatable)")
    issue.set_defaults(run=_with_vault(licences_issue))
    imp = lic.add_parser(
        "import", help="issue many licences from a CSV or JSON Lines file, in batches; safe to run again"
    )
    imp.add_argument("file", help="a .csv (owner,type,<field>...) or .jsonl ({owner,type,values}) file")
    imp.add_argument("--format", choices=["csv", "jsonl"], help="default: from the file's extension")
    imp.add_argument("--report", help="where the invalid rows go (default: FILE.errors.csv)")
    imp.add_argument("--batch", type=int, default=10_000, help="rows per transaction (default 10000)")
    imp.add_argument(
        "--workers",
        type=int,
        default=2,
        help="processes checking, signing and encrypting batches while this one writes (default 2; 0: none)",
    )
    imp.set_defaults(run=_with_vault(licences_import))
    present = lic.add_parser("present", help="print an SD-JWT presentation disclosing only the chosen fields")
    present.add_argument("licence", type=_licence_id)
    present.add_argument("--fields", required=True, help="comma-separated field names")
    present.add_argument("--force", action="store_true", help="present a suspended, revoked or expired licence")
    present.set_defaults(run=_with_vault(licences_present))
    verify = lic.add_parser("verify", help="verify a presentation (a file, or - for standard input)")
    verify.add_argument("file")
    verify.set_defaults(run=_with_vault(licences_verify))
    for step in ("suspend", "reinstate", "revoke", "renew"):
        change = lic.add_parser(step, help=f"{step} a licence on behalf of its issuer")
        change.add_argument("licence", type=_licence_id)
        change.add_argument("--reason", help="recorded in the access log")
        change.add_argument("--set", action="append", metavar="FIELD=VALUE", help="renew: changed values")
        change.set_defaults(run=_with_vault(licences_change), step=step)
    lic.add_parser("expire", help="expire every licence past its validity end").set_defaults(
        run=_with_vault(licences_expire)
    )

    issuers = group("issuers", "issuing departments and their signing keys")
    issuers.add_parser("list", help="issuer ids and key ids").set_defaults(run=_with_vault(issuers_list))
    rotate_issuer = issuers.add_parser("rotate-key", help="a new signing key for an issuer")
    rotate_issuer.add_argument("code")
    rotate_issuer.set_defaults(run=_with_vault(issuers_rotate_key))

    policy = group("policy", "Cedar policies and the catalogues they reason on")
    check = policy.add_parser("check", help="validate policies/ (exit 1 naming file and line)")
    check.add_argument("directory", nargs="?", help="default: the project's policies/")
    check.set_defaults(run=cmd_policy_check)

    agencies = group("agencies", "requesting agencies and their OAuth clients")
    add = agencies.add_parser("add", help="register an agency")
    add.add_argument("--client-id", required=True)
    add.add_argument("--name-zh", required=True)
    add.add_argument("--name-en", required=True)
    add.add_argument("--category", required=True, help="e.g. police, traffic, transport, housing")
    add.add_argument("--department", required=True, help="a department code from policies/departments.toml")
    add.add_argument("--service-item", action="append", help="a service item it performs (repeatable)")
    add.add_argument("--redirect-uri", action="append", help="exact redirect URI (repeatable)")
    add.add_argument("--grant-type", action="append", help="authorization_code, refresh_token, client_credentials, …")
    add.add_argument("--scope", action="append", help="consent:request, licences:read, licences:verify, …")
    add.add_argument("--jwks", help="a JSON file with its public keys: private_key_jwt instead of a secret")
    add.set_defaults(run=_with_vault(agencies_add))
    listing = agencies.add_parser("list", help="registered agencies")
    listing.add_argument(
        "--verbose", "-v", action="store_true", help="also each one's grant types, scopes, redirect URIs, service items"
    )
    listing.set_defaults(run=_with_vault(agencies_list))
    suspend = agencies.add_parser("suspend", help="suspend an agency: it authenticates and reads nothing")
    suspend.add_argument("client_id")
    suspend.add_argument("--reason", default="suspended by an operator")
    suspend.add_argument("--reinstate", action="store_true", help="lift a suspension instead")
    suspend.set_defaults(run=_with_vault(agencies_suspend))

    mandates = group("mandates", "legal mandates: cases registered for reads without consent")
    register = mandates.add_parser("register-case", help="register a case before agencies read under its mandate")
    register.add_argument("--mandate", required=True, help="a mandate id from policies/mandates.toml")
    register.add_argument("--case", required=True, help="the case reference, in the mandate's case_pattern format")
    register.add_argument("--owners", nargs="+", required=True, help="resident ID numbers or credit codes")
    register.add_argument("--valid-until", required=True, type=_date, help="last day of the registration")
    register.set_defaults(run=_with_vault(mandates_register_case))

    graphql = group("graphql", "the GraphQL contract")
    export = graphql.add_parser("export", help="write the schema as SDL (default graphql/schema.graphql)")
    export.add_argument("path", nargs="?")
    export.set_defaults(run=cmd_graphql_export)

    exports = group("export", "an owner's exported data (PIPL art. 45)")
    export_verify = exports.add_parser("verify", help="check an export file offline (a file, or - for stdin)")
    export_verify.add_argument("file")
    export_verify.add_argument("--keys", help="the vault's published keys (a JWKS file from /oauth/jwks) to trust")
    export_verify.set_defaults(run=cmd_export_verify)

    answer_verify = groups.add_parser(
        "verify-answer", help="check a signed answer of `check` offline (a file, or - for stdin)"
    )
    answer_verify.add_argument("file")
    answer_verify.add_argument(
        "--keys", required=True, help="the vault's published keys: a JWKS file, or its URL (…/oauth/jwks)"
    )
    answer_verify.add_argument("--issuer", help="the vault's issuer identifier the answer must carry")
    answer_verify.set_defaults(run=cmd_verify_answer)

    demo_parser = groups.add_parser("demo", help="create the synthetic demo population")
    demo_parser.add_argument("--if-empty", action="store_true", help="do nothing if owners exist")
    demo_parser.add_argument(
        "--no-history", action="store_true", help="the population only, without 60 days of history"
    )
    demo_parser.set_defaults(run=_with_vault(demo, initialise=True))
    serve_parser = groups.add_parser("serve", help="serve the web app and APIs")
    serve_parser.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the port (default 1; see docs/deployment.md)"
    )
    serve_parser.set_defaults(run=cmd_serve)
    return top


def _log_to_file_only(message: str, error: BaseException) -> None:
    """The traceback for the log file; the terminal gets one sentence (the stderr handler is skipped)."""
    record = logging.getLogger("vault.cli").makeRecord(
        "vault.cli", logging.ERROR, __file__, 0, message, (), (type(error), error, error.__traceback__)
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except EXPECTED_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: its traceback goes to the log, a sentence to the operator
        error_id = uuid.uuid4().hex
        _log_to_file_only(f"internal_error correlation_id={error_id}", exc)
        print(f"error: the command failed unexpectedly; the log has the details under {error_id}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
