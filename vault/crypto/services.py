"""Key management against the database: owners' DEKs, system keys, rotation, retirement, shredding."""

from __future__ import annotations

import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import nacl.signing
from sqlalchemy import bindparam, func, text, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault.clock import utcnow
from vault.crypto import aead
from vault.crypto.envelope import DataKey, dek_context, system_key_context
from vault.crypto.errors import CryptoError, KeyDestroyed, KeyringError, UnknownKey
from vault.crypto.interfaces import MasterKeyProvider
from vault.crypto.keyring import wrapped_kek_id
from vault.crypto.models import OwnerKey, SystemKey

BLIND_INDEX = "blind-index"
VAULT_SIGNING = "vault-signing"
WEB_FORM_CSRF = "web-form-csrf"
ROTATION_BATCH = 500
_KEYS = OwnerKey.__table__  # type: ignore[attr-defined]
_OWNER_KEYS = sa_select(_KEYS.c.owner_id, _KEYS.c.dek_id, _KEYS.c.wrapped).where(
    _KEYS.c.owner_id.in_(bindparam("owners", expanding=True))
)
_PG_KEY_LOCK = 0x6B657973  # serialises first creation of system keys across processes


@dataclass(frozen=True)
class Signer:
    """A signing key with its key id; the private half never leaves memory unwrapped."""

    kid: str
    key: nacl.signing.SigningKey

    @property
    def verify_key(self) -> nacl.signing.VerifyKey:
        return self.key.verify_key


@dataclass
class KeyStatus:
    deks: Counter[str] = field(default_factory=Counter)
    system_keys: Counter[str] = field(default_factory=Counter)
    destroyed: int = 0


class KeyService:
    """Owners' data keys and the vault's own keys, all wrapped by the master keyring."""

    def __init__(self, keyring: MasterKeyProvider) -> None:
        self.keyring = keyring
        self._index_key: bytes | None = None
        self._system_cache: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    # owners' data keys

    def create_owner_key(self, session: Session, owner_id: uuid.UUID) -> DataKey:
        dek = DataKey.generate(owner_id)
        session.add(
            OwnerKey(
                owner_id=owner_id,
                dek_id=dek.dek_id,
                kek_id=self.keyring.primary_id,
                wrapped=dek.wrap(self.keyring),
            )
        )
        return dek

    def owner_key(self, session: Session, owner_id: uuid.UUID) -> DataKey:
        """The owner's unwrapped DEK; raises KeyDestroyed after erasure, UnknownKey if there is none."""
        row = session.get(OwnerKey, owner_id)
        if row is None:
            raise UnknownKey("this owner has no data key")
        if row.wrapped is None:
            raise KeyDestroyed("this owner's data key was destroyed by an erasure")
        return DataKey.unwrap(self.keyring, owner_id, row.dek_id, row.wrapped)

    def unwrap_owner_key(self, owner_id: uuid.UUID, dek_id: uuid.UUID, wrapped: bytes) -> DataKey:
        """An owner's DEK from its wrapped form read by the caller (with the owner, in one statement)."""
        return DataKey.unwrap(self.keyring, owner_id, dek_id, wrapped)

    def owner_keys(self, session: Session, owner_ids: list[uuid.UUID]) -> dict[uuid.UUID, DataKey]:
        """Unwrapped DEKs of several owners in one query; destroyed or missing keys are left out."""
        if not owner_ids:
            return {}
        rows = session.connection().execute(_OWNER_KEYS, {"owners": owner_ids}).all()
        return {
            owner_id: DataKey.unwrap(self.keyring, owner_id, dek_id, wrapped)
            for owner_id, dek_id, wrapped in rows
            if wrapped is not None
        }

    def destroy_owner_key(self, session: Session, owner_id: uuid.UUID) -> None:
        row = session.get(OwnerKey, owner_id)
        if row is None:
            raise UnknownKey("this owner has no data key")
        row.wrapped = None
        row.kek_id = None
        row.destroyed_at = utcnow()

    # the vault's own keys

    def system_secret(self, session: Session, purpose: str, create: bool = True) -> tuple[str, bytes]:
        """(kid, 32-byte secret) of the newest live key for `purpose`, created on first use."""
        row = session.scalars(
            select(SystemKey)
            .where(SystemKey.purpose == purpose, col(SystemKey.retired_at).is_(None))
            .order_by(col(SystemKey.created_at).desc())
            .limit(1)
        ).first()
        if row is None:
            if not create:
                raise UnknownKey(f"no key for {purpose}")
            return self.add_system_key(session, purpose)
        return row.kid, self._unwrap_system(row)

    def add_system_key(self, session: Session, purpose: str, prefix: str | None = None) -> tuple[str, bytes]:
        secret = aead.new_key()
        kid = f"{prefix or purpose.split(':')[-1]}-{utcnow():%Y%m%d}-{secrets.token_hex(4)}"
        public = bytes(nacl.signing.SigningKey(secret).verify_key) if purpose != BLIND_INDEX else None
        session.add(
            SystemKey(
                purpose=purpose,
                kid=kid,
                kek_id=self.keyring.primary_id,
                wrapped=self.keyring.wrap(secret, system_key_context(purpose, kid)),
                public_key=public,
            )
        )
        session.flush()
        return kid, secret

    def _unwrap_system(self, row: SystemKey) -> bytes:
        cache_key = (row.kid, row.kek_id)
        with self._lock:
            cached = self._system_cache.get(cache_key)
        if cached is None:
            cached = self.keyring.unwrap(row.wrapped, system_key_context(row.purpose, row.kid))
            with self._lock:
                self._system_cache[cache_key] = cached
        return cached

    def signer(self, session: Session, purpose: str = VAULT_SIGNING) -> Signer:
        kid, seed = self.system_secret(session, purpose)
        return Signer(kid, nacl.signing.SigningKey(seed))

    def public_keys(self, session: Session, purpose: str) -> dict[str, nacl.signing.VerifyKey]:
        """Every key ever used for `purpose`, retired ones included, so old signatures still verify."""
        rows = session.scalars(select(SystemKey).where(SystemKey.purpose == purpose)).all()
        return {r.kid: nacl.signing.VerifyKey(r.public_key) for r in rows if r.public_key}

    def trusted_public_keys(self, session: Session, purpose: str) -> dict[str, nacl.signing.VerifyKey]:
        """Public keys derived from the wrapped secrets themselves, not read from a column anyone could edit.

        A row whose secret does not unwrap under the master keys (a forged row) contributes nothing.
        """
        keys = {}
        for row in session.scalars(select(SystemKey).where(SystemKey.purpose == purpose)):
            try:
                keys[row.kid] = nacl.signing.SigningKey(self._unwrap_system(row)).verify_key
            except CryptoError:
                continue
        return keys

    def ensure(self, session: Session, purposes: list[str]) -> None:
        """Create any missing system key now, at start-up, rather than racing for it inside a request."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_KEY_LOCK})
        for purpose in purposes:
            self.system_secret(session, purpose)

    def index_key(self, session: Session) -> bytes:
        """The blind-index key, read once per process: it is never retired or replaced (every stored digest was
        made with it, so another key would find nothing), and it is created at start-up (`ensure`)."""
        if self._index_key is not None:
            return self._index_key
        try:
            self._index_key = self.system_secret(session, BLIND_INDEX, create=False)[1]  # committed: keep it
        except UnknownKey:
            return self.system_secret(session, BLIND_INDEX)[1]  # made in this transaction, which may roll back
        return self._index_key

    # rotation

    def status(self, session: Session) -> KeyStatus:
        result = KeyStatus()
        for kek_id, count in session.execute(select(OwnerKey.kek_id, func.count()).group_by(col(OwnerKey.kek_id))):
            if kek_id is None:
                result.destroyed += count
            else:
                result.deks[kek_id] += count
        for kek_id, count in session.execute(select(SystemKey.kek_id, func.count()).group_by(col(SystemKey.kek_id))):
            result.system_keys[kek_id] += count
        return result

    def rewrap_all(
        self, unit_of_work: Callable[[], AbstractContextManager[Session]], batch: int = ROTATION_BATCH
    ) -> int:
        """Re-wrap every key not under the primary KEK, a batch per transaction; data ciphertexts untouched.

        Each batch commits on its own: a crash part-way leaves some keys under the old KEK and some under the
        new, and both KEKs are still in the keyring, so every owner stays readable; running again finishes.
        """
        primary = self.keyring.primary_id
        moved = 0
        while True:
            with unit_of_work() as session:
                rows = session.scalars(
                    select(OwnerKey)
                    .where(col(OwnerKey.kek_id) != primary, col(OwnerKey.wrapped).is_not(None))
                    .limit(batch)
                ).all()
                for row in rows:
                    assert row.wrapped is not None
                    ctx = dek_context(row.owner_id, row.dek_id)
                    fresh = self.keyring.wrap(self.keyring.unwrap(row.wrapped, ctx), ctx)
                    session.execute(
                        update(OwnerKey)
                        .where(col(OwnerKey.owner_id) == row.owner_id, col(OwnerKey.wrapped) == row.wrapped)
                        .values(wrapped=fresh, kek_id=wrapped_kek_id(fresh))
                    )
                moved += len(rows)
                system_rows = session.scalars(select(SystemKey).where(col(SystemKey.kek_id) != primary)).all()
                for sys_row in system_rows:
                    ctx = system_key_context(sys_row.purpose, sys_row.kid)
                    sys_row.wrapped = self.keyring.wrap(self.keyring.unwrap(sys_row.wrapped, ctx), ctx)
                    sys_row.kek_id = primary
                moved += len(system_rows)
            if len(rows) < batch:
                return moved

    def retire(self, session: Session, kek_id: str) -> None:
        """Drop a KEK from the keyring; refused while any DEK or system key is still wrapped by it."""
        status = self.status(session)
        in_use = status.deks.get(kek_id, 0) + status.system_keys.get(kek_id, 0)
        if in_use:
            raise KeyringError(f"master key {kek_id!r} still wraps {in_use} keys: run `vault keys rotate` first")
        self.keyring.retire(kek_id)
