"""In-memory storage for tests, demos and the fake paths of examples. Nothing survives the process.

Transactions stage their writes and apply them at commit under one lock, so readers (including
SyncBilling's other threads) never see a half-applied change.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime

from qzpay.customers.models import Customer
from qzpay.errors import ConflictError, NotFoundError
from qzpay.events import Event
from qzpay.storage.base import CustomerFilter, IdempotentCreate, SyncTask, email_key


def _copy(customer: Customer) -> Customer:
    """A copy whose dicts the caller may mutate without touching the store."""
    return customer.model_copy(
        update={
            "metadata": dict(customer.metadata),
            "provider_customer_ids": dict(customer.provider_customer_ids),
        }
    )


def _copy_event(event: Event) -> Event:
    return event.model_copy(update={"data": _copy(event.data)})


def _matches(customer: Customer, filters: CustomerFilter) -> bool:
    if customer.deleted_at is not None and not filters.include_deleted:
        return False
    if filters.email is not None and email_key(customer.email) != email_key(filters.email):
        return False
    return all(customer.metadata.get(k) == v for k, v in filters.metadata.items())


def _task_order(task: SyncTask) -> tuple[datetime, str]:
    """Oldest first, as the SQL backends order tasks."""
    return task.created_at, task.customer_id


class MemoryStorage:
    def __init__(self) -> None:
        self._customers: dict[str, Customer] = {}
        self._ids: list[str] = []  # sorted ascending, for newest-first paging
        self._idempotency: dict[str, tuple[str, str]] = {}
        self._links: dict[tuple[str, str], str] = {}
        self._owners: dict[str, dict[str, str]] = {}  # provider id -> provider -> customer id
        self._events: list[Event] = []
        self._event_index: dict[str, int] = {}
        self._tasks: dict[str, SyncTask] = {}
        self._webhooks: set[tuple[str, str]] = set()
        self._commit_lock = threading.Lock()
        self._writer: asyncio.Lock | None = None
        self._reader = _MemoryReader(self)

    async def open(self) -> None:
        if self._writer is None:
            self._writer = asyncio.Lock()

    async def close(self) -> None:
        return None

    async def upgrade(self) -> int:
        await self.open()
        return 1

    async def schema_version(self) -> int:
        return 1

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_MemoryTransaction]:
        await self.open()
        assert self._writer is not None
        async with self._writer:
            tx = _MemoryTransaction(self)
            yield tx
            self._apply(tx)

    def _apply(self, tx: _MemoryTransaction) -> None:
        with self._commit_lock:
            for customer_id, customer in tx.customers.items():
                if customer_id not in self._customers:
                    bisect.insort(self._ids, customer_id)
                self._customers[customer_id] = customer
            for provider, pcid in tx.unlinked:
                self._links.pop((provider, pcid), None)
                owners = self._owners.get(pcid, {})
                owners.pop(provider, None)
                if not owners:
                    self._owners.pop(pcid, None)
            for (provider, pcid), customer_id in tx.linked.items():
                self._links[(provider, pcid)] = customer_id
                self._owners.setdefault(pcid, {})[provider] = customer_id
            self._idempotency.update(tx.idempotency)
            for event in tx.events:
                self._event_index[event.id] = len(self._events)
                self._events.append(event)
            for customer_id, task in tx.tasks.items():
                if task is None:
                    self._tasks.pop(customer_id, None)
                else:
                    self._tasks[customer_id] = task
            self._webhooks.update(tx.webhooks)

    def blocking_reader(self) -> _MemoryReader:
        return self._reader

    async def get_customer(self, customer_id: str) -> Customer | None:
        return self._reader.get_customer(customer_id)

    async def find_customers_by_provider_id(
        self, provider_customer_id: str, *, provider: str | None
    ) -> list[Customer]:
        return self._reader.find_customers_by_provider_id(provider_customer_id, provider=provider)

    async def list_customers(
        self, filters: CustomerFilter, *, limit: int, offset: int
    ) -> tuple[list[Customer], int]:
        return self._reader.list_customers(filters, limit=limit, offset=offset)

    async def scan_customers(
        self, filters: CustomerFilter, *, before_id: str | None, limit: int
    ) -> list[Customer]:
        return self._reader.scan_customers(filters, before_id=before_id, limit=limit)

    async def get_event(self, event_id: str) -> Event | None:
        return self._reader.get_event(event_id)

    async def list_events(self, *, after: str | None, limit: int) -> list[Event]:
        return self._reader.list_events(after=after, limit=limit)

    async def list_sync_tasks(self, *, limit: int) -> list[SyncTask]:
        with self._commit_lock:
            tasks = sorted(self._tasks.values(), key=_task_order)
            return tasks[:limit]

    async def find_sync_task_by_link(
        self, provider: str, provider_customer_id: str
    ) -> SyncTask | None:
        with self._commit_lock:
            linked = (
                task
                for task in self._tasks.values()
                if task.customer.provider_customer_ids.get(provider) == provider_customer_id
            )
            return min(linked, key=_task_order, default=None)

    async def count_sync_tasks(self) -> int:
        return len(self._tasks)


class _MemoryReader:
    """Reads under the commit lock, callable from any thread."""

    def __init__(self, storage: MemoryStorage) -> None:
        self._s = storage

    def get_customer(self, customer_id: str) -> Customer | None:
        customer = self._s._customers.get(customer_id)
        return None if customer is None else _copy(customer)

    def find_customers_by_provider_id(
        self, provider_customer_id: str, *, provider: str | None
    ) -> list[Customer]:
        with self._s._commit_lock:
            owners = self._s._owners.get(provider_customer_id, {})
            ids = [cid for name, cid in owners.items() if provider is None or name == provider]
            return [_copy(self._s._customers[cid]) for cid in ids]

    def _newest_first(self, filters: CustomerFilter, before_id: str | None) -> list[Customer]:
        with self._s._commit_lock:
            end = (
                len(self._s._ids)
                if before_id is None
                else bisect.bisect_left(self._s._ids, before_id)
            )
            return [
                self._s._customers[cid]
                for cid in reversed(self._s._ids[:end])
                if _matches(self._s._customers[cid], filters)
            ]

    def list_customers(
        self, filters: CustomerFilter, *, limit: int, offset: int
    ) -> tuple[list[Customer], int]:
        matches = self._newest_first(filters, None)
        return [_copy(c) for c in matches[offset : offset + limit]], len(matches)

    def scan_customers(
        self, filters: CustomerFilter, *, before_id: str | None, limit: int
    ) -> list[Customer]:
        return [_copy(c) for c in self._newest_first(filters, before_id)[:limit]]

    def get_event(self, event_id: str) -> Event | None:
        with self._s._commit_lock:
            index = self._s._event_index.get(event_id)
            return None if index is None else _copy_event(self._s._events[index])

    def list_events(self, *, after: str | None, limit: int) -> list[Event]:
        with self._s._commit_lock:
            start = 0
            if after is not None:
                if after not in self._s._event_index:
                    raise NotFoundError(f"no event {after!r}")
                start = self._s._event_index[after] + 1
            return [_copy_event(e) for e in self._s._events[start : start + limit]]


class _MemoryTransaction:
    def __init__(self, storage: MemoryStorage) -> None:
        self._storage = storage
        self.customers: dict[str, Customer] = {}
        self.linked: dict[tuple[str, str], str] = {}
        self.unlinked: set[tuple[str, str]] = set()
        self.idempotency: dict[str, tuple[str, str]] = {}
        self.events: list[Event] = []
        self.tasks: dict[str, SyncTask | None] = {}
        self.webhooks: set[tuple[str, str]] = set()

    async def get_customer(self, customer_id: str) -> Customer | None:
        customer = self.customers.get(customer_id) or self._storage._customers.get(customer_id)
        return None if customer is None else _copy(customer)

    async def find_idempotent_create(self, idempotency_key: str) -> IdempotentCreate | None:
        found = self.idempotency.get(idempotency_key) or self._storage._idempotency.get(
            idempotency_key
        )
        if found is None:
            return None
        customer = await self.get_customer(found[0])
        assert customer is not None
        return IdempotentCreate(customer, found[1])

    def _link_owner(self, link: tuple[str, str]) -> str | None:
        if link in self.linked:
            return self.linked[link]
        if link in self.unlinked:
            return None
        return self._storage._links.get(link)

    def _relink(self, before: Customer | None, after: Customer) -> None:
        old = before.provider_customer_ids if before else {}
        new = after.provider_customer_ids
        for provider, pcid in new.items():
            if old.get(provider) == pcid:
                continue
            owner = self._link_owner((provider, pcid))
            if owner is not None and owner != after.id:
                raise ConflictError(
                    f"{provider} customer {pcid!r} is already linked to customer {owner}",
                    code="provider_id_taken",
                )
        for provider, pcid in old.items():
            if new.get(provider) != pcid:
                self.unlinked.add((provider, pcid))
                self.linked.pop((provider, pcid), None)
        for provider, pcid in new.items():
            self.linked[(provider, pcid)] = after.id
            self.unlinked.discard((provider, pcid))

    async def insert_customer(
        self,
        customer: Customer,
        *,
        idempotency_key: str | None = None,
        request_fingerprint: str | None = None,
    ) -> None:
        if idempotency_key is not None:
            if await self.find_idempotent_create(idempotency_key) is not None:
                raise ConflictError("idempotency key already used", code="idempotency_key_reused")
            self.idempotency[idempotency_key] = (customer.id, request_fingerprint or "")
        self._relink(None, customer)
        self.customers[customer.id] = _copy(customer)

    async def update_customer(self, before: Customer, after: Customer) -> None:
        self._relink(before, after)
        self.customers[after.id] = _copy(after)

    async def append_event(self, event: Event) -> None:
        self.events.append(_copy_event(event))

    def _tasks(self) -> dict[str, SyncTask]:
        merged = {**self._storage._tasks, **self.tasks}
        return {cid: task for cid, task in merged.items() if task is not None}

    async def get_sync_task(self, customer_id: str) -> SyncTask | None:
        return self._tasks().get(customer_id)

    async def find_sync_task_by_key(self, idempotency_key: str) -> SyncTask | None:
        for task in self._tasks().values():
            if task.idempotency_key == idempotency_key:
                return task
        return None

    async def put_sync_task(self, task: SyncTask) -> None:
        if task.idempotency_key is not None:
            holder = await self.find_sync_task_by_key(task.idempotency_key)
            if holder is not None and holder.customer_id != task.customer_id:
                raise ConflictError("idempotency key already used", code="idempotency_key_reused")
        self.tasks[task.customer_id] = task

    async def delete_sync_task(self, customer_id: str) -> None:
        self.tasks[customer_id] = None

    async def claim_sync_tasks(
        self,
        *,
        owner: str,
        now: datetime,
        lease_until: datetime,
        stale_owners: frozenset[str],
        limit: int,
    ) -> list[SyncTask]:
        claimable = sorted(
            (
                t
                for t in self._tasks().values()
                if t.lease_until <= now or t.lease_owner is None or t.lease_owner in stale_owners
            ),
            key=_task_order,
        )[:limit]
        claimed = [replace(t, lease_owner=owner, lease_until=lease_until) for t in claimable]
        for task in claimed:
            self.tasks[task.customer_id] = task
        return claimed

    async def record_webhook_event(self, provider: str, event_id: str, now: datetime) -> bool:
        key = (provider, event_id)
        if key in self.webhooks or key in self._storage._webhooks:
            return False
        self.webhooks.add(key)
        return True
