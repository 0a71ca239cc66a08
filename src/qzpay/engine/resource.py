"""What the engine needs to know of one kind of record, and of its providers.

A resource plugs into the engine by declaring three things:

* its model: a frozen pydantic model satisfying :class:`Record` (an ``id``, ``updated_at``,
  ``deleted_at``, and ``changed_fields`` for an event's ``previous``);
* a :class:`Resource` description: its name (events are ``<name>.created`` and so on), its
  model (registered under that name in :mod:`qzpay.records`, so storage can decode it), the
  field holding its provider links, and how it is read and written in a storage transaction;
* a :class:`Remote`: the provider side, one call per kind of provider work; usually the
  engine's :class:`~qzpay.engine.fanout.Fanout` over the providers' adapters for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Generic, Protocol, Self, TypeVar

from qzpay.storage.base import Storage, SyncTask, Transaction


class Record(Protocol):
    """A stored record: immutable, soft-deleted, versioned by ``updated_at``."""

    @property
    def id(self) -> str: ...

    @property
    def updated_at(self) -> datetime: ...

    @property
    def deleted_at(self) -> datetime | None: ...

    def changed_fields(self, other: Self) -> dict[str, Any]:
        """The user-visible fields whose values differ in ``other``, with this record's values."""
        ...

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Self: ...


R = TypeVar("R", bound=Record)
R_contra = TypeVar("R_contra", bound=Record, contravariant=True)

Change = Callable[[R], Awaitable[Mapping[str, Any]]]
"""``change(before) -> fields``: the fields to set on a live record (validated by the caller)."""


class Resource(ABC, Generic[R]):
    """The description of one resource (see the module docstring)."""

    name: str
    """Singular, lower case: ``"customer"``. Event types and messages are built from it."""

    links_field: str
    """The field mapping provider name to the provider's id of the record."""

    model: type[R]
    """The record model, registered under ``name`` in :mod:`qzpay.records` (how storage decodes
    a task's snapshot)."""

    def __init__(self) -> None:
        self.created = f"{self.name}.created"
        self.updated = f"{self.name}.updated"
        self.deleted = f"{self.name}.deleted"

    # -- the record ---------------------------------------------------------------------------
    def update_event(self, before: R, after: R) -> str:
        """The event type of a change from ``before`` to ``after``: ``<name>.updated``, unless
        the resource names the change otherwise (a catalog record: ``<name>.archived``)."""
        return self.updated

    def links(self, record: R) -> dict[str, str]:
        links: dict[str, str] = getattr(record, self.links_field)
        return links

    def with_links(self, record: R, links: Mapping[str, str]) -> R:
        return record.model_copy(update={self.links_field: dict(links)})

    # -- storage ------------------------------------------------------------------------------
    @abstractmethod
    async def get(self, tx: Transaction, record_id: str) -> R | None:
        """Read for change (backends that can lock the row do so until commit)."""

    @abstractmethod
    async def get_committed(self, storage: Storage, record_id: str) -> R | None: ...

    @abstractmethod
    async def insert(
        self, tx: Transaction, record: R, *, idempotency_key: str | None, fingerprint: str | None
    ) -> None:
        """Insert a new record; ConflictError(code="idempotency_key_reused") if the key is
        taken (possibly only at commit)."""

    @abstractmethod
    async def update(self, tx: Transaction, before: R, after: R) -> None: ...

    @abstractmethod
    async def find_created(self, tx: Transaction, idempotency_key: str) -> tuple[R, str] | None:
        """The record a create with this key made, and that request's fingerprint."""

    # -- sync tasks ---------------------------------------------------------------------------
    def task_fields(self, record: R) -> dict[str, Any]:
        """The SyncTask fields that name and carry ``record`` (its resource, id and snapshot)."""
        return {"resource": self.name, "record_id": record.id, "record": record}

    def snapshot(self, task: SyncTask) -> R:
        """The record a task carries."""
        record = task.record
        if task.resource != self.name or not isinstance(record, self.model):
            raise TypeError(f"the task of {task.resource} {task.record_id} carries no {self.name}")
        return record


Links = dict[str, str]


class Remote(Protocol[R_contra]):
    """The provider side of a resource. Every call raises ProviderSyncError on failure (with
    ``ambiguous`` set when the provider may have applied it)."""

    @property
    def several(self) -> bool:
        """More than one provider: a change from one of them is pushed to the others."""
        ...

    async def create(self, record: R_contra, *, compensate: bool = True) -> Links:
        """Create everywhere; on a clean failure undo what the others did (``compensate``)."""
        ...

    async def finish_create(self, record: R_contra) -> Links:
        """Finish a create: adopt what an earlier attempt made, create what is missing."""
        ...

    async def update(self, before: R_contra, after: R_contra) -> None:
        """Push a change; on a failure, push the old values back."""
        ...

    async def push(self, record: R_contra) -> Links:
        """Make every provider's copy match the record (creating missing ones)."""
        ...

    async def delete(self, record: R_contra) -> None: ...

    async def remove(self, record: R_contra) -> None:
        """Undo an unfinished create everywhere."""
        ...
