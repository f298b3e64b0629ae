"""Web logins: argon2id password hashes, login names kept only as blind indexes."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault.audit.events import Action, Event
from vault.audit.services import AuditLog
from vault.clock import utcnow
from vault.crypto.blind_index import blind_index
from vault.crypto.errors import CryptoError
from vault.crypto.services import KeyService
from vault.owners.errors import ActivationFailed, OwnerNotFound
from vault.owners.models import Account, AccountRole, ActivationCode, Owner, OwnerKind
from vault.owners.services import identity

LOGIN_INDEX = "login"
MIN_PASSWORD = 8
ACTIVATION_LIFETIME = timedelta(hours=72)
# 20 characters from 32 unambiguous ones (no 0/O, 1/I/L): 100 bits, read out or printed on a letter
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_CODE_LENGTH = 20
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_unknown_login_hashes: dict[PasswordHasher, str] = {}


def unknown_login_hash() -> str:
    """What a check against an unknown login name verifies, so both failures cost the same time.

    Made by the hasher in use on first need, not on import: a command that never checks a password does not pay
    for an argon2 hash. The web app makes it when it is created, so no sign-in pays for it either.
    """
    hasher = _hasher
    made = _unknown_login_hashes.get(hasher)
    if made is None:
        made = _unknown_login_hashes[hasher] = hasher.hash("an unknown login takes as long as a wrong password")
    return made


def hash_password(password: str) -> str:
    """The argon2id hash of a new password (~0.1 s of CPU: make it outside any transaction); ValueError if short."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password must be at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


class AccountService:
    def __init__(self, keys: KeyService) -> None:
        self.keys = keys

    def _digest(self, session: Session, login: str) -> bytes:
        return blind_index(self.keys.index_key(session), LOGIN_INDEX, login)

    def create(
        self,
        session: Session,
        *,
        login: str,
        password: str | None = None,
        role: AccountRole,
        owner_id: uuid.UUID | None = None,
        password_hash: str | None = None,
    ) -> Account:
        """A new account, from the password or from its hash_password() made outside the transaction."""
        account = Account(
            login_digest=self._digest(session, login),
            owner_id=owner_id,
            role=role.value,
            password_hash=password_hash or hash_password(password or ""),
        )
        session.add(account)
        session.flush()
        return account

    def authenticate(self, session: Session, login: str, password: str) -> Account | None:
        """The account if login and password match; None otherwise, taking the same time either way."""
        return self.check_password(self.by_login(session, login), password)

    def by_login(self, session: Session, login: str) -> Account | None:
        return session.scalars(select(Account).where(Account.login_digest == self._digest(session, login))).first()

    @staticmethod
    def check_password(account: Account | None, password: str) -> Account | None:
        """argon2 verification, with no database work: run it outside any transaction (it takes ~0.1 s of CPU)."""
        try:
            _hasher.verify(account.password_hash if account else unknown_login_hash(), password)
        except (VerificationError, InvalidHashError):
            return None
        if account is None or account.disabled_at is not None:
            return None
        return account


def _code_hash(code: str) -> bytes:
    """The stored form of a code: SHA-256 of its canonical spelling (upper case, no dashes or spaces)."""
    canonical = "".join(c for c in code.upper() if c not in "- ")
    return hashlib.sha256(b"activation-code\x00" + canonical.encode()).digest()


@dataclass(frozen=True)
class IssuedCode:
    code: str  # shown once to the operator, never stored
    expires_at: datetime


class Enrolments:
    """One-time activation codes with which a person added by an operator sets their own password."""

    def __init__(self, keys: KeyService, audit: AuditLog) -> None:
        self.keys = keys
        self.audit = audit
        self.accounts = AccountService(keys)

    def issue(self, session: Session, owner_id: uuid.UUID, *, actor: str) -> IssuedCode:
        """A new code for a person (earlier unused codes stop working); raises OwnerNotFound for anyone else."""
        owner = session.get(Owner, owner_id)
        if owner is None or owner.erased_at is not None or owner.kind != OwnerKind.PERSON:
            raise OwnerNotFound("only a person in the vault can be enrolled")
        now = utcnow()
        session.execute(
            update(ActivationCode)
            .where(col(ActivationCode.owner_id) == owner_id, col(ActivationCode.used_at).is_(None))
            .values(used_at=now)
        )
        raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
        code = "-".join(raw[i : i + 5] for i in range(0, _CODE_LENGTH, 5))
        row = ActivationCode(owner_id=owner_id, code_hash=_code_hash(code), expires_at=now + ACTIVATION_LIFETIME)
        session.add(row)
        session.flush()
        detail = {"expires_at": row.expires_at.isoformat(timespec="seconds")}
        self.audit.append(session, Event(Action.OWNER_ENROLMENT_ISSUED, actor, owner_id=owner_id, detail=detail))
        return IssuedCode(code, row.expires_at)

    def redeem(self, session: Session, *, login: str, code: str, password_hash: str) -> Account:
        """Set the password (its hash_password()) of the person the code was issued to, whose login must match.

        The code is claimed by one guarded UPDATE (unused, unexpired): of parallel redemptions exactly one
        wins. Raises ActivationFailed, saying nothing about which part was wrong.
        """
        now = utcnow()
        digest = _code_hash(code)
        row = session.scalars(select(ActivationCode).where(ActivationCode.code_hash == digest)).first()
        owner = session.get(Owner, row.owner_id) if row is not None else None
        if row is None or owner is None or owner.erased_at is not None or not self._is_login_of(session, owner, login):
            raise ActivationFailed("this activation code cannot be used")
        claimed = session.execute(
            update(ActivationCode)
            .where(
                col(ActivationCode.id) == row.id,
                col(ActivationCode.used_at).is_(None),
                col(ActivationCode.expires_at) > now,
            )
            .values(used_at=now)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            raise ActivationFailed("this activation code cannot be used")
        account = session.scalars(select(Account).where(Account.owner_id == owner.id)).first()
        if account is None:
            account = self.accounts.create(
                session, login=login.strip(), password_hash=password_hash, role=AccountRole.CITIZEN, owner_id=owner.id
            )
        else:
            account.password_hash = password_hash
            account.disabled_at = None
        self.audit.append(session, Event(Action.OWNER_ENROLLED, f"owner:{owner.id}", owner_id=owner.id))
        session.flush()
        return account

    def _is_login_of(self, session: Session, owner: Owner, login: str) -> bool:
        try:
            return identity(owner, self.keys.owner_key(session, owner.id)).identifier == login.strip().upper()
        except CryptoError:  # an erased owner is nobody's login
            return False
