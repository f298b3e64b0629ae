"""Web logins: argon2id password hashes, login names kept only as blind indexes."""

from __future__ import annotations

import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session
from sqlmodel import select

from vault.crypto.blind_index import blind_index
from vault.crypto.services import KeyService
from vault.owners.models import Account, AccountRole

LOGIN_INDEX = "login"
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# verified against when the login name is unknown, so both failures cost the same time
_DUMMY_HASH = _hasher.hash("an unknown login takes as long as a wrong password")


class AccountService:
    def __init__(self, keys: KeyService) -> None:
        self.keys = keys

    def _digest(self, session: Session, login: str) -> bytes:
        return blind_index(self.keys.index_key(session), LOGIN_INDEX, login)

    def create(
        self, session: Session, *, login: str, password: str, role: AccountRole, owner_id: uuid.UUID | None = None
    ) -> Account:
        if len(password) < 8:
            raise ValueError("a password must be at least 8 characters")
        account = Account(
            login_digest=self._digest(session, login),
            owner_id=owner_id,
            role=role.value,
            password_hash=_hasher.hash(password),
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
            _hasher.verify(account.password_hash if account else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        if account is None or account.disabled_at is not None:
            return None
        return account
