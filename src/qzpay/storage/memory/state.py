"""The committed data of a MemoryStorage, its indexes, and how a transaction's writes land.

A transaction stages its writes in a ``WriteSet`` (only what it touched: no copy of the store)
and ``apply`` lands them under the commit lock, so a reader on any thread sees a transaction
entirely or not at all; a rolled-back transaction is a write set that is dropped.
"""

from __future__ import annotations

import threading
from datetime import datetime

from qzpay.catalog.models import Plan, Price
from qzpay.customers.models import Customer
from qzpay.events import Event
from qzpay.storage.base import SyncTask
from qzpay.storage.memory.catalog import CatalogState
from qzpay.storage.memory.indexes import CustomerIndex
from qzpay.storage.memory.records import Links, Staged
from qzpay.storage.memory.subscriptions import SubscriptionState
from qzpay.subscriptions.models import Subscription

TaskLink = tuple[str, str, str]  # (resource, provider, provider id) in a task's snapshot


def task_order(task: SyncTask) -> tuple[datetime, str]:
    """Oldest first, as the SQL backends order tasks."""
    return task.created_at, task.record_id


class WriteSet:
    """What one transaction wrote: the new versions (private copies) and its appends."""

    __slots__ = (
        "customers",
        "events",
        "idempotency",
        "plans",
        "prices",
        "subscriptions",
        "tasks",
        "webhooks",
    )

    def __init__(self) -> None:
        self.customers: dict[str, Customer] = {}
        self.events: list[Event] = []
        self.idempotency: dict[str, tuple[str, str]] | None = None
        self.tasks: dict[str, SyncTask | None] | None = None  # None value: deleted
        self.webhooks: set[tuple[str, str]] | None = None
        # Made on the first write of the kind (memory/catalog.py, memory/subscriptions.py).
        self.plans: Staged[Plan] | None = None
        self.prices: Staged[Price] | None = None
        self.subscriptions: Staged[Subscription] | None = None


class MemoryState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.customers: dict[str, Customer] = {}
        self.index = CustomerIndex()
        self.links = Links()  # provider customer ids
        self.idempotency: dict[str, tuple[str, str]] = {}  # key -> (customer id, fingerprint)
        self.events: list[Event] = []
        self.event_at: dict[str, int] = {}
        self.events_of: dict[str, list[int]] = {}  # record id -> its events' positions
        self.events_by_type: dict[str, list[int]] = {}  # event type -> its events' positions
        self.tasks: dict[str, SyncTask] = {}
        self.task_keys: dict[str, str] = {}  # idempotency key -> record id
        self.task_links: dict[TaskLink, set[str]] = {}  # link in a task's snapshot -> record ids
        self.webhooks: set[tuple[str, str]] = set()
        self.catalog = CatalogState()
        self.subscriptions = SubscriptionState()

    def apply(self, writes: WriteSet) -> None:
        with self.lock:
            for customer_id, new in writes.customers.items():
                old = self.customers.get(customer_id)
                self.customers[customer_id] = new
                self.index.change(customer_id, old, new)
                before = {} if old is None else old.provider_customer_ids
                self.links.change(customer_id, before, new.provider_customer_ids)
            if writes.idempotency:
                self.idempotency.update(writes.idempotency)
            for event in writes.events:
                self.event_at[event.id] = len(self.events)
                self.events_of.setdefault(event.data.id, []).append(len(self.events))
                self.events_by_type.setdefault(event.type, []).append(len(self.events))
                self.events.append(event)
            if writes.tasks:
                for record_id, task in writes.tasks.items():
                    self._put_task(record_id, task)
            if writes.webhooks:
                self.webhooks.update(writes.webhooks)
            if writes.plans is not None:
                self.catalog.plans.apply(writes.plans)
            if writes.prices is not None:
                self.catalog.prices.apply(writes.prices)
            if writes.subscriptions is not None:
                self.subscriptions.apply(writes.subscriptions)

    def _put_task(self, record_id: str, task: SyncTask | None) -> None:
        old = self.tasks.pop(record_id, None)
        if old is not None:
            key = old.idempotency_key
            if key is not None and self.task_keys.get(key) == record_id:
                del self.task_keys[key]
            for provider, provider_id in old.links.items():
                link = (old.resource, provider, provider_id)
                holders = self.task_links[link]
                holders.discard(record_id)
                if not holders:
                    del self.task_links[link]
        if task is None:
            return
        self.tasks[record_id] = task
        if task.idempotency_key is not None:
            self.task_keys[task.idempotency_key] = record_id
        for provider, provider_id in task.links.items():
            self.task_links.setdefault((task.resource, provider, provider_id), set()).add(record_id)
