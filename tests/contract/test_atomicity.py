"""Nothing half-written: a failure inside a write leaves neither the change nor its event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from qzpay import Billing, Event
from qzpay.storage import Storage, Transaction, open_storage
from qzpay.storage.base import SupportsOptimisticWrites
from tests.factories import create_customer


class EventLogFailure(RuntimeError):
    pass


class FailingEventLog:
    """A real backend whose event append fails on demand, after the change was written."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.fail = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        return self._failing(self.inner.transaction())

    def optimistic_transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """The same failure in the one-round-trip write path of backends that have one."""
        if not isinstance(self.inner, SupportsOptimisticWrites):
            return self.transaction()
        return self._failing(self.inner.optimistic_transaction())

    @asynccontextmanager
    async def _failing(
        self, transaction: AbstractAsyncContextManager[Transaction]
    ) -> AsyncIterator[Transaction]:
        async with transaction as tx:
            if self.fail:
                original = tx.append_event

                async def broken(event: Event) -> None:
                    await original(event)
                    raise EventLogFailure("event log write failed")

                tx.append_event = broken  # type: ignore[method-assign]
            yield tx


@pytest.fixture
async def failing(storage_url: str) -> AsyncIterator[tuple[Billing, FailingEventLog]]:
    storage = FailingEventLog(open_storage(storage_url))
    async with Billing(storage=storage) as billing:
        yield billing, storage


class TestAtomicWrites:
    async def test_failed_create_leaves_nothing(
        self, failing: tuple[Billing, FailingEventLog]
    ) -> None:
        billing, storage = failing
        seen: list[Event] = []
        billing.on("*", seen.append)
        storage.fail = True
        with pytest.raises(EventLogFailure):
            await create_customer(billing, email="ghost@example.com", idempotency_key="k1")
        storage.fail = False
        assert (await billing.customers.list(include_deleted=True)).total == 0
        assert (await billing.customers.list(email="ghost@example.com")).total == 0
        assert await billing.events.list() == []
        assert seen == []
        # The idempotency key was not consumed either: a retry creates the customer once.
        created = await create_customer(billing, email="ghost@example.com", idempotency_key="k1")
        assert (await billing.customers.list()).total == 1
        assert [e.data.id for e in await billing.events.list()] == [created.id]

    async def test_failed_update_and_link_change_nothing(
        self, failing: tuple[Billing, FailingEventLog]
    ) -> None:
        billing, storage = failing
        customer = await create_customer(billing, metadata={"a": "1"})
        storage.fail = True
        with pytest.raises(EventLogFailure):
            await billing.customers.update(customer.id, name="Changed", metadata={"a": None})
        with pytest.raises(EventLogFailure):
            await billing.customers.link(customer.id, provider="stripe", provider_customer_id="c1")
        with pytest.raises(EventLogFailure):
            await billing.customers.delete(customer.id)
        storage.fail = False
        assert await billing.customers.get(customer.id) == customer
        assert (await billing.customers.list(metadata={"a": "1"})).total == 1
        assert await billing.customers.get_by_external_id("c1") is None
        assert len(await billing.events.list()) == 1
