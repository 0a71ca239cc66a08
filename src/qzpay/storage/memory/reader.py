"""Reads of committed data, callable from any thread (SyncBilling reads through one).

Every answer is a copy; lists are picked from the indexes under the commit lock, so a page and
its total come from the same committed state.
"""

from __future__ import annotations

import bisect
import heapq

from qzpay.customers.models import Customer
from qzpay.errors import NotFoundError
from qzpay.events import Event
from qzpay.storage.base import CustomerFilter, SyncTask
from qzpay.storage.copies import copy_customer, copy_event, copy_task
from qzpay.storage.memory.state import MemoryState, task_order


class MemoryReader:
    __slots__ = ("_state",)

    def __init__(self, state: MemoryState) -> None:
        self._state = state

    def get_customer(self, customer_id: str) -> Customer | None:
        customer = self._state.customers.get(customer_id)
        return None if customer is None else copy_customer(customer)

    def find_customers_by_provider_id(
        self, provider_customer_id: str, *, provider: str | None
    ) -> list[Customer]:
        state = self._state
        with state.lock:
            owners = state.links.owners.get(provider_customer_id)
            if owners is None:
                return []
            found = [
                state.customers[cid]
                for name, cid in owners.items()
                if provider is None or name == provider
            ]
        return [copy_customer(c) for c in found]

    def list_customers(
        self, filters: CustomerFilter, *, limit: int, offset: int
    ) -> tuple[list[Customer], int]:
        state = self._state
        with state.lock:
            ids, total = state.index.page(filters, state.customers, limit=limit, offset=offset)
            found = [state.customers[cid] for cid in ids]
        return [copy_customer(c) for c in found], total

    def scan_customers(
        self, filters: CustomerFilter, *, before_id: str | None, limit: int
    ) -> list[Customer]:
        state = self._state
        with state.lock:
            ids = state.index.scan(filters, state.customers, before_id=before_id, limit=limit)
            found = [state.customers[cid] for cid in ids]
        return [copy_customer(c) for c in found]

    def get_event(self, event_id: str) -> Event | None:
        state = self._state
        with state.lock:
            at = state.event_at.get(event_id)
            event = None if at is None else state.events[at]
        return None if event is None else copy_event(event)

    def list_events(self, *, after: str | None, limit: int) -> list[Event]:
        state = self._state
        with state.lock:
            start = 0
            if after is not None:
                at = state.event_at.get(after)
                if at is None:
                    raise NotFoundError(f"no event {after!r}")
                start = at + 1
            found = state.events[start : start + max(0, limit)]
        return [copy_event(e) for e in found]

    def list_record_events(self, record_id: str, *, limit: int) -> list[Event]:
        state = self._state
        with state.lock:
            positions = state.events_of.get(record_id, [])
            found = [state.events[at] for at in reversed(positions[-limit:])] if limit > 0 else []
        return [copy_event(e) for e in found]

    def list_events_backward(
        self, *, before: str | None, limit: int, event_type: str | None = None
    ) -> list[Event]:
        state = self._state
        with state.lock:
            end = len(state.events)
            if before is not None:
                at = state.event_at.get(before)
                if at is None:
                    raise NotFoundError(f"no event {before!r}")
                end = at
            if limit <= 0:
                return []
            if event_type is None:
                found = state.events[max(0, end - limit) : end][::-1]
            else:  # the type's positions, ascending: the ones before ``end``, the last first
                positions = state.events_by_type.get(event_type, [])
                stop = bisect.bisect_left(positions, end)
                found = [
                    state.events[at] for at in reversed(positions[max(0, stop - limit) : stop])
                ]
        return [copy_event(e) for e in found]

    def list_sync_tasks(self, *, limit: int) -> list[SyncTask]:
        with self._state.lock:
            oldest = heapq.nsmallest(max(0, limit), self._state.tasks.values(), key=task_order)
        return [copy_task(t) for t in oldest]

    def find_sync_task_by_link(
        self, provider: str, provider_id: str, *, resource: str = "customer"
    ) -> SyncTask | None:
        state = self._state
        with state.lock:
            holders = state.task_links.get((resource, provider, provider_id))
            if not holders:
                return None
            task = min((state.tasks[cid] for cid in holders), key=task_order)
        return copy_task(task)

    def count_sync_tasks(self) -> int:
        return len(self._state.tasks)
