"""The Storage protocol: the small surface every backend implements completely.

Reads outside a transaction see committed data only. Writes happen inside ``transaction()``,
which commits on normal exit and rolls back on an exception; the service writes a change and
its event in one transaction, so neither exists without the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, TypeAlias, runtime_checkable

from pydantic import BaseModel

from qzpay.catalog.models import Plan, Price
from qzpay.customers.models import Customer
from qzpay.errors import ConflictError
from qzpay.events import Event
from qzpay.records import record_type
from qzpay.storage.params import CreateKey, TaskClaim
from qzpay.storage.subscription_base import (
    Grant,
    SubscriptionFilter,
    SubscriptionStorage,
    SubscriptionTransaction,
)

__all__ = [
    "BlockingReader",
    "CreateKey",
    "CustomerFilter",
    "Grant",
    "IdempotentCreate",
    "PlanFilter",
    "PriceFilter",
    "Storage",
    "SubscriptionFilter",
    "SupportsBlockingReads",
    "SupportsOptimisticWrites",
    "SyncOperation",
    "SyncTask",
    "TaskClaim",
    "Transaction",
    "WriteConflict",
    "email_key",
]


def email_key(email: str) -> str:
    """The form the case-insensitive email filter compares; every backend stores and uses it."""
    return email.lower()


@dataclass(frozen=True, slots=True)
class CustomerFilter:
    """Filters shared by ``list`` and ``iterate``. ``email`` matches case-insensitively; every
    ``metadata`` pair must match."""

    email: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    include_deleted: bool = False


@dataclass(frozen=True, slots=True)
class PlanFilter:
    """Filters of ``list_plans`` / ``scan_plans``: ``active`` None means every plan."""

    active: bool | None = None


@dataclass(frozen=True, slots=True)
class PriceFilter:
    """Filters of ``list_prices`` / ``scan_prices`` (``currency`` upper-case, as stored)."""

    plan_id: str | None = None
    active: bool | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class IdempotentCreate:
    """The customer a create with an idempotency key made, and a digest of that request."""

    customer: Customer
    request_fingerprint: str


SyncOperation: TypeAlias = Literal["create", "push", "delete"]


@dataclass(frozen=True, slots=True)
class SyncTask:
    """Provider work recorded durably before it is attempted, so a crash cannot lose it.

    A task is about one record of any resource: ``resource`` names it (``"customer"``, a name
    registered in :mod:`qzpay.records`), ``record_id`` is the record's id and ``record`` its
    snapshot (an instance of that resource's model). Record ids carry their resource's prefix,
    so a record id names one task across resources.

    ``create`` with ``committed=False`` is the intent of a create that has not committed
    locally yet (invisible to get/list/events); ``sync_pending`` finishes or undoes it.
    ``committed=True`` tasks belong to live local records whose provider copies lag
    (``provider_sync_errors="log"``). A task is worked on only by the holder of its lease.
    """

    resource: str
    record_id: str
    operation: SyncOperation
    record: BaseModel
    committed: bool
    idempotency_key: str | None
    request_fingerprint: str | None
    lease_owner: str | None
    lease_until: datetime
    attempts: int
    last_error: str | None
    created_at: datetime

    @property
    def links(self) -> dict[str, str]:
        """The provider links of the snapshot (the resource's links field)."""
        return record_type(self.resource).links(self.record)

    @property
    def customer_id(self) -> str:
        """Deprecated: ``record_id`` (for callers written when tasks carried only customers)."""
        return self.record_id

    @property
    def customer(self) -> Customer:
        """Deprecated: ``record`` of a customer task (for callers not moved to ``record``)."""
        if not isinstance(self.record, Customer):
            raise TypeError(f"a {self.resource} task carries no customer")
        return self.record


class Transaction(SubscriptionTransaction, Protocol):
    async def get_customer(self, customer_id: str) -> Customer | None:
        """Read a customer for change; backends that can lock the row do so until commit."""
        ...

    async def find_idempotent_create(self, idempotency_key: str) -> IdempotentCreate | None: ...

    async def insert_customer(self, customer: Customer, key: CreateKey | None = None) -> None:
        """Insert a new customer with its provider links, and the create's ``key`` if it had one.

        Raises ConflictError(code="provider_id_taken") if a provider id is linked elsewhere, and
        ConflictError(code="idempotency_key_reused") if the key is taken (a concurrent create).
        """
        ...

    async def update_customer(self, before: Customer, after: Customer) -> None:
        """Store ``after`` over ``before`` (same id), including provider link changes.

        Raises ConflictError(code="provider_id_taken") if a new link is taken by another customer.
        """
        ...

    async def append_event(self, event: Event) -> None: ...

    # -- the catalog (plans and prices are archived, never deleted) -------------------------
    async def get_plan(self, plan_id: str) -> Plan | None:
        """Read a plan for change; backends that can lock the row do so until commit."""
        ...

    async def find_idempotent_plan(self, idempotency_key: str) -> tuple[Plan, str] | None:
        """The plan a create with this key made, and that request's fingerprint."""
        ...

    async def insert_plan(self, plan: Plan, key: CreateKey | None = None) -> None:
        """Insert a new plan with its provider links (and ``key``, if it was created with an
        idempotency key). ConflictError codes: ``plan_key_taken``, ``idempotency_key_reused``,
        ``provider_id_taken``."""
        ...

    async def update_plan(self, before: Plan, after: Plan) -> None:
        """Store ``after`` over ``before`` (same id and key); ``provider_id_taken`` if a new
        link is another plan's."""
        ...

    async def get_price(self, price_id: str) -> Price | None:
        """Read a price for change; backends that can lock the row do so until commit."""
        ...

    async def find_idempotent_price(self, idempotency_key: str) -> tuple[Price, str] | None: ...

    async def insert_price(self, price: Price, key: CreateKey | None = None) -> None:
        """Insert a new price of an existing plan (with ``key``, as plans). ConflictError
        codes: ``lookup_key_taken`` (an active price holds it), ``idempotency_key_reused``,
        ``provider_id_taken``."""
        ...

    async def update_price(self, before: Price, after: Price) -> None:
        """Store ``after`` over ``before``; ``lookup_key_taken`` if ``after`` is active with a
        lookup key another active price holds (move it off that price first, in the same
        transaction), ``provider_id_taken`` as for plans."""
        ...

    async def find_active_price(self, lookup_key: str) -> Price | None:
        """The active price holding ``lookup_key`` as this transaction sees it (not locked:
        read it for change with ``get_price``)."""
        ...

    async def active_prices(self, plan_id: str) -> list[Price]:
        """The plan's active prices as this transaction sees them, newest first (not
        locked). Read the plan for change first, so that no price is added meanwhile."""
        ...

    async def get_sync_task(self, record_id: str) -> SyncTask | None:
        """The task of the record ``record_id`` (of any resource), read for change."""
        ...

    async def find_sync_task_by_key(self, idempotency_key: str) -> SyncTask | None: ...

    async def put_sync_task(self, task: SyncTask) -> None:
        """Insert or replace the record's task. ConflictError(code="idempotency_key_reused")
        when another task holds the same idempotency key. The resource must be registered
        in :mod:`qzpay.records`."""
        ...

    async def delete_sync_task(self, record_id: str) -> None: ...

    async def claim_sync_tasks(self, claim: TaskClaim) -> list[SyncTask]:
        """Take the lease of up to ``claim.limit`` tasks whose lease ended or whose owner is
        stale, oldest first, for ``claim.owner`` until ``claim.lease_until``; only tasks of
        ``claim.resource`` if it is given (see :class:`TaskClaim`)."""
        ...

    async def record_webhook_event(self, provider: str, event_id: str, now: datetime) -> bool:
        """Remember a delivered provider event; False if it was seen before (a duplicate)."""
        ...


@runtime_checkable
class Storage(SubscriptionStorage, Protocol):
    async def open(self) -> None:
        """Connect, and migrate the schema if the backend was created with ``migrate=True``
        (otherwise check it is current). Safe to call more than once; reads and writes call it
        on first use."""
        ...

    async def upgrade(self) -> int:
        """Apply pending schema migrations, safely against concurrent upgrades; the version."""
        ...

    async def schema_version(self) -> int: ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...

    async def get_customer(self, customer_id: str) -> Customer | None: ...

    async def find_customers_by_provider_id(
        self, provider_customer_id: str, *, provider: str | None
    ) -> list[Customer]:
        """Customers linked to this provider id (at most one per provider)."""
        ...

    async def list_customers(
        self, filters: CustomerFilter, *, limit: int, offset: int
    ) -> tuple[list[Customer], int]:
        """One page, newest first, and the total number of matches."""
        ...

    async def scan_customers(
        self, filters: CustomerFilter, *, before_id: str | None, limit: int
    ) -> list[Customer]:
        """Keyset page: matches with an id below ``before_id`` (all if None), newest first."""
        ...

    # -- the catalog: committed reads, newest first -------------------------------------------
    async def get_plan(self, plan_id: str) -> Plan | None: ...

    async def get_plan_by_key(self, key: str) -> Plan | None: ...

    async def find_plans_by_provider_id(
        self, provider_plan_id: str, *, provider: str | None
    ) -> list[Plan]:
        """Plans linked to this provider id (at most one per provider)."""
        ...

    async def list_plans(
        self, filters: PlanFilter, *, limit: int, offset: int
    ) -> tuple[list[Plan], int]:
        """One page, newest first, and the total number of matches."""
        ...

    async def scan_plans(
        self, filters: PlanFilter, *, before_id: str | None, limit: int
    ) -> list[Plan]:
        """Keyset page: matches with an id below ``before_id`` (all if None), newest first."""
        ...

    async def get_price(self, price_id: str) -> Price | None: ...

    async def get_price_by_lookup_key(self, lookup_key: str) -> Price | None:
        """The active price holding ``lookup_key`` (archived prices are not looked up)."""
        ...

    async def find_prices_by_provider_id(
        self, provider_price_id: str, *, provider: str | None
    ) -> list[Price]: ...

    async def list_prices(
        self, filters: PriceFilter, *, limit: int, offset: int
    ) -> tuple[list[Price], int]: ...

    async def scan_prices(
        self, filters: PriceFilter, *, before_id: str | None, limit: int
    ) -> list[Price]: ...

    async def get_event(self, event_id: str) -> Event | None: ...

    async def list_events(self, *, after: str | None, limit: int) -> list[Event]:
        """Events after the event ``after`` (NotFoundError if it is unknown), in an order a
        consumer can page through without ever skipping one: commit order for each customer.

        Memory and SQLite have one writer at a time, so this is global commit order. PostgreSQL
        gives a stable order that never skips, holding back events while an older write
        transaction is still running (delayed, never lost); across customers it is close to,
        but not strictly, commit order.
        """
        ...

    async def list_record_events(self, record_id: str, *, limit: int) -> list[Event]:
        """Up to ``limit`` events of the record ``record_id`` (any resource's), newest first:
        one indexed read, for a record's timeline.

        Committed events only, as every read; unlike ``list_events`` it is no consumer's page,
        so PostgreSQL holds nothing back: an event shows once its transaction commits. The
        order is the log's (commit order for one record).
        """
        ...

    async def list_events_backward(
        self, *, before: str | None, limit: int, event_type: str | None = None
    ) -> list[Event]:
        """Up to ``limit`` events strictly older than the event ``before`` (NotFoundError if it
        is unknown; ``None``: from the newest), newest first, only those of ``event_type`` when
        given: one indexed read, for an operator paging back through the whole log.

        The order is the log's reversed (``list_events``: global commit order on memory and
        SQLite, ``(txid, seq)`` on PostgreSQL). Committed events only; like
        ``list_record_events`` it is no consumer's page, so PostgreSQL holds nothing back (an
        event whose transaction commits after a page was read may sort before that page).
        """
        ...

    async def list_sync_tasks(self, *, limit: int) -> list[SyncTask]:
        """Pending provider work, oldest first (for status and operators)."""
        ...

    async def find_sync_task_by_link(
        self, provider: str, provider_id: str, *, resource: str = "customer"
    ) -> SyncTask | None:
        """The task of ``resource`` whose snapshot links ``provider_id`` at ``provider`` (in
        the resource's links field: an unfinished create adopting it, say); the oldest if
        several do. Committed data only."""
        ...

    async def count_sync_tasks(self) -> int:
        """How many tasks are pending."""
        ...


class WriteConflict(ConflictError):
    """An optimistic transaction's commit found a customer it read changed by another writer
    since; nothing was written. Read again, recompute the change and commit again."""

    code = "concurrent_update"


@runtime_checkable
class SupportsOptimisticWrites(Protocol):
    def optimistic_transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A transaction whose ``get_customer`` reads without locking, remembering the version
        it read; the commit writes the customer's change (and the rest) only if that customer
        is still at that version, and raises WriteConflict otherwise, having written nothing.

        For a read, change, write and event that can be recomputed from a fresh read: retry
        the whole block on WriteConflict. Conflicts of the writes themselves (a provider id
        taken) may be raised by the commit rather than the write call.
        """
        ...


class BlockingReader(Protocol):
    """The Storage's customer reads as blocking calls on the calling thread (committed data).

    SyncBilling reads through one when the backend offers it, avoiding a hop to its event-loop
    thread; the semantics are those of the Storage methods of the same names.
    """

    def get_customer(self, customer_id: str) -> Customer | None: ...

    def find_customers_by_provider_id(
        self, provider_customer_id: str, *, provider: str | None
    ) -> list[Customer]: ...

    def list_customers(
        self, filters: CustomerFilter, *, limit: int, offset: int
    ) -> tuple[list[Customer], int]: ...

    def scan_customers(
        self, filters: CustomerFilter, *, before_id: str | None, limit: int
    ) -> list[Customer]: ...


@runtime_checkable
class SupportsBlockingReads(Protocol):
    def blocking_reader(self) -> BlockingReader | None:
        """A reader for the calling thread, or None when the backend has none right now;
        only valid after ``open()``."""
        ...
