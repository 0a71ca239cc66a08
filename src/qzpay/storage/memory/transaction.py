"""A MemoryStorage transaction: reads see its own writes over the committed data; writes are
staged in its WriteSet, which lands at commit (a rollback drops it: nothing to undo).

The transaction is its own context manager, so a write costs as few objects as possible:
``async with storage.transaction() as tx`` takes the writer lock, commits on a normal exit and
rolls back on an exception.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime
from typing import Any

from qzpay.customers.models import Customer
from qzpay.errors import ConflictError
from qzpay.events import Event
from qzpay.records import record_type
from qzpay.storage.base import CreateKey, IdempotentCreate, SyncTask, TaskClaim
from qzpay.storage.copies import copy_customer, copy_record, copy_task, event_with
from qzpay.storage.memory.catalog import CatalogState, CatalogTransaction
from qzpay.storage.memory.records import Link
from qzpay.storage.memory.state import MemoryState, WriteSet, task_order
from qzpay.storage.memory.subscriptions import SubscriptionState, SubscriptionWriter


class MemoryTransaction(
    WriteSet,
    CatalogTransaction,
    SubscriptionWriter,
    AbstractAsyncContextManager["MemoryTransaction"],
):
    def __init__(self, state: MemoryState, writer: asyncio.Lock) -> None:
        super().__init__()
        self._state = state
        self._writer = writer
        # The customer last written and its stored copy: its event shares that copy.
        self._given: Customer | None = None
        self._stored: Customer | None = None

    async def __aenter__(self) -> MemoryTransaction:
        await self._writer.acquire()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            if exc_type is None:
                self._state.apply(self)
        finally:
            self._writer.release()

    def _committed(self) -> CatalogState:
        return self._state.catalog

    def _committed_subscriptions(self) -> SubscriptionState:
        return self._state.subscriptions

    def _customer(self, customer_id: str) -> Customer | None:
        staged = self.customers.get(customer_id)
        return self._state.customers.get(customer_id) if staged is None else staged

    async def get_customer(self, customer_id: str) -> Customer | None:
        customer = self._customer(customer_id)
        return None if customer is None else copy_customer(customer)

    async def find_idempotent_create(self, idempotency_key: str) -> IdempotentCreate | None:
        staged = self.idempotency
        found = None if staged is None else staged.get(idempotency_key)
        if found is None:
            found = self._state.idempotency.get(idempotency_key)
            if found is None:
                return None
        customer = self._customer(found[0])
        assert customer is not None
        return IdempotentCreate(copy_customer(customer), found[1])

    def _link_owner(self, link: Link) -> str | None:
        provider, pcid = link
        staged = self.customers
        for customer_id, customer in staged.items():
            if customer.provider_customer_ids.get(provider) == pcid:
                return customer_id
        owner = self._state.links.links.get(link)
        # A committed owner this transaction rewrote no longer holds it (checked just above).
        return None if owner in staged else owner

    def _check_links(self, before: Customer | None, after: Customer) -> None:
        old = {} if before is None else before.provider_customer_ids
        for provider, pcid in after.provider_customer_ids.items():
            if old.get(provider) == pcid:
                continue
            owner = self._link_owner((provider, pcid))
            if owner is not None and owner != after.id:
                raise ConflictError(
                    f"{provider} customer {pcid!r} is already linked to customer {owner}",
                    code="provider_id_taken",
                )

    def _stage(self, customer: Customer) -> None:
        stored = copy_customer(customer)
        self.customers[customer.id] = stored
        self._given, self._stored = customer, stored

    async def insert_customer(self, customer: Customer, key: CreateKey | None = None) -> None:
        if key is not None:
            if await self.find_idempotent_create(key.idempotency_key) is not None:
                raise ConflictError("idempotency key already used", code="idempotency_key_reused")
            if self.idempotency is None:
                self.idempotency = {}
            self.idempotency[key.idempotency_key] = (customer.id, key.request_fingerprint or "")
        self._check_links(None, customer)
        self._stage(customer)

    async def update_customer(self, before: Customer, after: Customer) -> None:
        self._check_links(before, after)
        self._stage(after)

    async def append_event(self, event: Event[Any]) -> None:
        data = event.data
        stored = self._stored if data is self._given else None
        self.events.append(event_with(event, copy_record(data) if stored is None else stored))

    # -- sync tasks: the transaction's own over the committed ones ----------------------------
    def _task(self, record_id: str) -> SyncTask | None:
        staged = self.tasks
        if staged is not None and record_id in staged:
            return staged[record_id]
        return self._state.tasks.get(record_id)

    def _task_by_key(self, idempotency_key: str) -> SyncTask | None:
        staged = self.tasks
        if staged is not None:
            for task in staged.values():
                if task is not None and task.idempotency_key == idempotency_key:
                    return task
        holder = self._state.task_keys.get(idempotency_key)
        if holder is None or (staged is not None and holder in staged):
            return None  # a staged task replaced it (and was checked above) or deleted it
        return self._state.tasks[holder]

    async def get_sync_task(self, record_id: str) -> SyncTask | None:
        task = self._task(record_id)
        return None if task is None else copy_task(task)

    async def find_sync_task_by_key(self, idempotency_key: str) -> SyncTask | None:
        task = self._task_by_key(idempotency_key)
        return None if task is None else copy_task(task)

    def _stage_task(self, record_id: str, task: SyncTask | None) -> None:
        if self.tasks is None:
            self.tasks = {}
        self.tasks[record_id] = task

    async def put_sync_task(self, task: SyncTask) -> None:
        if task.idempotency_key is not None:
            holder = self._task_by_key(task.idempotency_key)
            if holder is not None and holder.record_id != task.record_id:
                raise ConflictError("idempotency key already used", code="idempotency_key_reused")
        record_type(task.resource)  # as the SQL backends, refuse a resource nobody registered
        self._stage_task(task.record_id, copy_task(task))

    async def delete_sync_task(self, record_id: str) -> None:
        self._stage_task(record_id, None)

    async def claim_sync_tasks(self, claim: TaskClaim) -> list[SyncTask]:
        now, resource, stale_owners = claim.now, claim.resource, claim.stale_owners
        merged: dict[str, SyncTask | None] = {**self._state.tasks, **(self.tasks or {})}
        claimable = sorted(
            (
                t
                for t in merged.values()
                if t is not None
                and (resource is None or t.resource == resource)
                and (t.lease_until <= now or t.lease_owner is None or t.lease_owner in stale_owners)
            ),
            key=task_order,
        )[: max(0, claim.limit)]
        owner, until = claim.owner, claim.lease_until
        claimed = [replace(t, lease_owner=owner, lease_until=until) for t in claimable]
        for task in claimed:
            self._stage_task(task.record_id, task)
        return [copy_task(task) for task in claimed]

    async def record_webhook_event(self, provider: str, event_id: str, now: datetime) -> bool:
        key = (provider, event_id)
        staged = self.webhooks
        if key in self._state.webhooks or (staged is not None and key in staged):
            return False
        if staged is None:
            self.webhooks = staged = set()
        staged.add(key)
        return True
