"""Per-request batch loaders for synchronous execution (docs/decisions/0001: one unit of work in one thread).

Strawberry's DataLoader batches by awaiting; here the whole operation runs synchronously in a worker thread, so a
loader batches by being told the keys up front: a list resolver `prime`s the keys of every row it returns, and
the first `load` fetches all primed keys in one go. A query over N licences therefore costs the same number of
statements whatever N is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

from vault.crypto.envelope import DataKey
from vault.licences.models import VersionHead
from vault.owners.models import OwnerHead
from vault.wiring import Vault

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BatchLoader(Generic[K, V]):
    """Caches by key; `fetch` receives every primed key not yet loaded and returns what it found."""

    def __init__(self, fetch: Callable[[list[K]], Mapping[K, V]]) -> None:
        self._fetch = fetch
        self._cache: dict[K, V | None] = {}
        self._queued: dict[K, None] = {}
        self.batches = 0

    def prime(self, keys: Iterable[K]) -> None:
        for key in keys:
            if key not in self._cache:
                self._queued[key] = None

    def load(self, key: K) -> V | None:
        if key not in self._cache:
            self.prime([key])
            batch, self._queued = list(self._queued), {}
            found = self._fetch(batch)
            self.batches += 1
            for queued in batch:
                self._cache[queued] = found.get(queued)
        return self._cache[key]


@dataclass(frozen=True)
class Opening:
    """The disclosures to decrypt from one licence version: only the fields this request releases."""

    version: VersionHead = field(hash=False, compare=False)
    version_id: uuid.UUID
    owner_id: uuid.UUID
    names: frozenset[str]


@dataclass
class Loaders:
    """Everything a request loads lazily, created per request with its session."""

    vault: Vault
    session: Session
    keys: dict[uuid.UUID, DataKey] = field(default_factory=dict)
    wrapped: dict[uuid.UUID, tuple[uuid.UUID, bytes]] = field(default_factory=dict)  # read with the owner
    disclosures: BatchLoader[Opening, dict[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        self.disclosures = BatchLoader(self._open)

    def know(self, owner: OwnerHead) -> None:
        """Keep the owner's wrapped data key, found with the owner: it is unwrapped only if a field is opened."""
        if owner.dek_id is not None and owner.wrapped is not None:
            self.wrapped[owner.id] = (owner.dek_id, owner.wrapped)

    def key(self, owner_id: uuid.UUID) -> DataKey:
        if owner_id not in self.keys:
            self._unwrap_known([owner_id])
        if owner_id not in self.keys:
            self.keys[owner_id] = self.vault.keys.owner_key(self.session, owner_id)
        return self.keys[owner_id]

    def _unwrap_known(self, owner_ids: Iterable[uuid.UUID]) -> None:
        for owner_id in owner_ids:
            if owner_id in self.wrapped:
                dek_id, wrapped = self.wrapped.pop(owner_id)
                self.keys[owner_id] = self.vault.keys.unwrap_owner_key(owner_id, dek_id, wrapped)

    def _open(self, openings: list[Opening]) -> dict[Opening, dict[str, str]]:
        by_owner: dict[uuid.UUID, list[Opening]] = {}
        for opening in openings:
            by_owner.setdefault(opening.owner_id, []).append(opening)
        self._unwrap_known(o for o in by_owner if o not in self.keys)
        missing = [o for o in by_owner if o not in self.keys]
        self.keys.update(self.vault.keys.owner_keys(self.session, missing))
        found: dict[Opening, dict[str, str]] = {}
        for owner_id, group in by_owner.items():
            wanted: list[tuple[VersionHead, Collection[str]]] = [(o.version, o.names) for o in group]
            opened = self.vault.licences.open_disclosures(self.session, owner_id, wanted, self.key(owner_id))
            found.update({o: opened.get(o.version_id, {}) for o in group})
        return found
