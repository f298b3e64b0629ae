"""The one place where the vault's services are built from settings and wired together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from vault.audit.services import AuditLog, origin_of
from vault.config import Settings, default_sender
from vault.consent.services import ConsentService
from vault.crypto.keyring import Keyring, load_keyring
from vault.crypto.services import BLIND_INDEX, VAULT_SIGNING, WEB_FORM_CSRF, KeyService
from vault.db import Database, assert_sqlite_pragmas, check_schema, make_engine
from vault.licences.issuers import IssuerRegistry
from vault.licences.issuers import purpose as issuer_purpose
from vault.licences.services import LicenceService
from vault.licences.status import StatusLists
from vault.licences.types import LicenceCatalogue, load_catalogue
from vault.notifications.channels import SmtpSender, SmtpServer, WebhookSender
from vault.notifications.interfaces import Sender
from vault.notifications.outbox import Outbox
from vault.notifications.quiet import DEFAULT_TIMEZONE
from vault.notifications.services import DeliveryConfig, NotificationService
from vault.oauth.agencies import AgencyRegistry
from vault.oauth.grants import OAuthContext
from vault.oauth.server import OAuthService
from vault.oauth.tokens import TokenService
from vault.owners.services import OwnerService
from vault.policy.engine import PolicyEngine
from vault.portability.services import ExportService
from vault.web.erasure import end_sessions_for_owner
from vault.web.notices import NoticeRenderer


@dataclass
class Vault:
    settings: Settings
    db: Database
    keyring: Keyring
    keys: KeyService
    audit: AuditLog
    owners: OwnerService
    catalogue: LicenceCatalogue
    issuers: IssuerRegistry
    status_lists: StatusLists
    licences: LicenceService
    policy: PolicyEngine
    agencies: AgencyRegistry
    tokens: TokenService
    consent: ConsentService
    oauth: OAuthService
    notifications: NotificationService
    outbox: Outbox
    exports: ExportService

    def close(self) -> None:
        self.db.dispose()


def build_vault(settings: Settings, *, check: bool = True) -> Vault:
    """Open keys and database; with `check`, refuse an SQLite without WAL/FULL/foreign keys or a stale schema."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalogue = load_catalogue(settings.policies_dir)  # a broken definition stops start-up, naming the file
    keyring = load_keyring(settings.master_keys, settings.key_file)
    db = Database(make_engine(settings.database_url))
    assert_sqlite_pragmas(db.engine)
    if check:
        check_schema(db.engine)
    keys = KeyService(keyring)
    audit = AuditLog(
        keys,
        log_id=f"{settings.public_url}/audit",
        origin=origin_of(settings.public_url),
        data_dir=settings.data_dir / "log",
        witnesses=settings.witnesses,
    )
    owners = OwnerService(keys, audit, timedelta(days=settings.erasure_grace_days))
    issuers = IssuerRegistry(keys, catalogue, settings.public_url)
    if check:
        with db.session() as session:
            keys.ensure(
                session, [BLIND_INDEX, VAULT_SIGNING, WEB_FORM_CSRF, *(issuer_purpose(c) for c in issuers.codes())]
            )
    status_lists = StatusLists(issuers)
    policy = PolicyEngine.load(settings.policies_dir, catalogue)  # broken policies stop start-up: file and line
    agencies = AgencyRegistry(audit, policy)
    tokens = TokenService()
    consent = ConsentService(keys, audit, policy, owners, agencies, settings.public_url)
    consent.revocation_listeners.append(tokens.revoke_grant)
    owners.erasure_listeners.append(
        lambda session, owner_id, actor: consent.end_all_for_owner(session, owner_id, actor, "owner erased")
    )
    owners.erasure_listeners.append(end_sessions_for_owner)
    oauth = OAuthService(OAuthContext(consent, tokens, audit, agencies, policy, settings.public_url))
    notifications, outbox = _notifications(settings, db, keys, audit, agencies, policy, catalogue)
    licences = LicenceService(keys, audit, catalogue, issuers, status_lists)
    mandates = policy.catalogue.mandates
    exports = ExportService(
        keys, audit, licences, catalogue, status_lists, lambda m: mandates[m].deferral_days if m in mandates else 0
    )
    return Vault(
        settings=settings,
        db=db,
        keyring=keyring,
        keys=keys,
        audit=audit,
        owners=owners,
        catalogue=catalogue,
        issuers=issuers,
        status_lists=status_lists,
        licences=licences,
        policy=policy,
        agencies=agencies,
        tokens=tokens,
        consent=consent,
        oauth=oauth,
        notifications=notifications,
        outbox=outbox,
        exports=exports,
    )


def _notifications(
    settings: Settings,
    db: Database,
    keys: KeyService,
    audit: AuditLog,
    agencies: AgencyRegistry,
    policy: PolicyEngine,
    catalogue: LicenceCatalogue,
) -> tuple[NotificationService, Outbox]:
    """The notification centre, written with every audited event, and the outbox its messages leave through."""
    config = DeliveryConfig(
        smtp_url=settings.smtp_url,
        webhook_url=settings.webhook_url,
        public_url=settings.public_url,
        timezone=ZoneInfo(getattr(settings, "timezone", None) or DEFAULT_TIMEZONE),
        allow_private_webhooks=not settings.is_production,
    )
    mandates = policy.catalogue.mandates
    notifications = NotificationService(keys, config, lambda m: mandates[m].deferral_days if m in mandates else 0)
    audit.listeners.append(notifications.on_events)
    smtp = SmtpServer.parse(settings.smtp_url, default_sender(settings.public_url)) if settings.smtp_url else None
    trusted = (settings.webhook_url,) if settings.webhook_url else ()

    def senders(session: Session) -> dict[str, Sender]:
        chosen: dict[str, Sender] = {
            "webhook": WebhookSender(keys.signer(session), allow_private=config.allow_private_webhooks, trusted=trusted)
        }
        if smtp is not None:
            chosen["email"] = SmtpSender(smtp)
        return chosen

    renderer = NoticeRenderer(agencies, policy.catalogue, catalogue, settings.public_url)
    return notifications, Outbox(db, notifications, renderer, senders)
