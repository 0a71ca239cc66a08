"""MemoryStorage: the Storage protocol in the process, for tests, demos and the fake paths of
examples. Nothing survives the process.

One writer at a time (an asyncio lock); a transaction's writes land at commit under one lock,
so readers, SyncBilling's other threads included, never see a half-applied change. Customer
reads go through sorted indexes (``indexes.py``): get, provider-id look-up, and list by email
or one metadata pair are O(1) or O(log n), and a page at any offset is a slice.
"""

from __future__ import annotations

import asyncio
import threading

from qzpay.customers.models import Customer
from qzpay.events import Event
from qzpay.storage.base import CustomerFilter, SyncTask
from qzpay.storage.memory.catalog import CatalogState
from qzpay.storage.memory.catalog_reads import CatalogStorage
from qzpay.storage.memory.reader import MemoryReader
from qzpay.storage.memory.state import MemoryState
from qzpay.storage.memory.subscriptions import SubscriptionReads, SubscriptionState
from qzpay.storage.memory.transaction import MemoryTransaction


class MemoryStorage(CatalogStorage, SubscriptionReads):
    def __init__(self) -> None:
        self._state = MemoryState()
        self._reader = MemoryReader(self._state)
        self._writer = asyncio.Lock()  # one writer at a time; binds to a loop only when waited on

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def upgrade(self) -> int:
        return 1

    async def schema_version(self) -> int:
        return 1

    def transaction(self) -> MemoryTransaction:
        return MemoryTransaction(self._state, self._writer)

    def _catalog(self) -> tuple[CatalogState, threading.Lock]:
        return self._state.catalog, self._state.lock

    def _subscription_state(self) -> tuple[SubscriptionState, CatalogState, threading.Lock]:
        state = self._state
        return state.subscriptions, state.catalog, state.lock

    def blocking_reader(self) -> MemoryReader:
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

    async def list_record_events(self, record_id: str, *, limit: int) -> list[Event]:
        return self._reader.list_record_events(record_id, limit=limit)

    async def list_events_backward(
        self, *, before: str | None, limit: int, event_type: str | None = None
    ) -> list[Event]:
        return self._reader.list_events_backward(before=before, limit=limit, event_type=event_type)

    async def list_sync_tasks(self, *, limit: int) -> list[SyncTask]:
        return self._reader.list_sync_tasks(limit=limit)

    async def find_sync_task_by_link(
        self, provider: str, provider_id: str, *, resource: str = "customer"
    ) -> SyncTask | None:
        return self._reader.find_sync_task_by_link(provider, provider_id, resource=resource)

    async def count_sync_tasks(self) -> int:
        return self._reader.count_sync_tasks()
