"""Sync task queries (find by provider link, count): every test runs against memory, SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from qzpay.customers.models import Customer
from qzpay.ids import customer_ids
from qzpay.storage import Storage, open_storage
from qzpay.storage.base import SyncTask

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def _task(n: int, links: dict[str, str], *, committed: bool = False) -> SyncTask:
    customer = Customer.model_construct(
        id=customer_ids.new(),
        email=f"task{n}@example.com",
        name=None,
        phone=None,
        address=None,
        metadata={},
        provider_customer_ids=links,
        created_at=EPOCH,
        updated_at=EPOCH,
        deleted_at=None,
    )
    return SyncTask(
        resource="customer",
        record_id=customer.id,
        operation="create",
        record=customer,
        committed=committed,
        idempotency_key=None,
        request_fingerprint=None,
        lease_owner=None,
        lease_until=EPOCH,
        attempts=0,
        last_error=None,
        created_at=EPOCH + timedelta(seconds=n),
    )


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    opened = open_storage(storage_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def _put(storage: Storage, *tasks: SyncTask) -> None:
    async with storage.transaction() as tx:
        for task in tasks:
            await tx.put_sync_task(task)


class TestFindSyncTaskByLink:
    async def test_nothing_pending_finds_nothing(self, storage: Storage) -> None:
        assert await storage.find_sync_task_by_link("stripe", "cus_A") is None

    async def test_finds_the_task_linking_that_id_at_that_provider(self, storage: Storage) -> None:
        adopting = _task(1, {"stripe": "cus_A", "mercadopago": "123-abc"})
        other = _task(2, {"stripe": "cus_B"})
        await _put(storage, adopting, other, _task(3, {}))

        assert await storage.find_sync_task_by_link("stripe", "cus_A") == adopting
        assert await storage.find_sync_task_by_link("mercadopago", "123-abc") == adopting
        assert await storage.find_sync_task_by_link("stripe", "cus_B") == other
        # The same id at another provider, another id, a prefix: no link.
        assert await storage.find_sync_task_by_link("mercadopago", "cus_A") is None
        assert await storage.find_sync_task_by_link("stripe", "cus_C") is None
        assert await storage.find_sync_task_by_link("stripe", "cus_") is None
        assert await storage.find_sync_task_by_link("provider_customer_ids", "cus_A") is None

    async def test_the_oldest_of_several_tasks_linking_the_id(self, storage: Storage) -> None:
        tasks = [_task(n, {"stripe": "cus_shared"}) for n in range(4)]
        await _put(storage, *reversed(tasks))
        assert await storage.find_sync_task_by_link("stripe", "cus_shared") == tasks[0]

    async def test_follows_replaced_and_deleted_tasks(self, storage: Storage) -> None:
        task = _task(1, {"stripe": "cus_old"})
        await _put(storage, task)
        snapshot = task.record.model_copy(update={"provider_customer_ids": {"stripe": "cus_new"}})
        relinked = replace(task, record=snapshot, attempts=1)
        await _put(storage, relinked)
        assert await storage.find_sync_task_by_link("stripe", "cus_old") is None
        assert await storage.find_sync_task_by_link("stripe", "cus_new") == relinked

        async with storage.transaction() as tx:
            await tx.delete_sync_task(task.record_id)
        assert await storage.find_sync_task_by_link("stripe", "cus_new") is None

    async def test_ids_and_providers_are_matched_exactly(self, storage: Storage) -> None:
        odd = {"mercado.pago": "cus_\"ü'1 %s $1", "st$ripe": "a.b[0]"}
        task = _task(1, odd)
        await _put(storage, task, _task(2, {"mercado": "cus_\"ü'1 %s $1"}))
        for provider, pcid in odd.items():
            assert await storage.find_sync_task_by_link(provider, pcid) == task
        assert await storage.find_sync_task_by_link("mercado.pago", "cus_\"ü'1") is None
        assert await storage.find_sync_task_by_link("pago", "cus_\"ü'1 %s $1") is None

    async def test_sees_committed_tasks_only(self, storage: Storage) -> None:
        task = _task(1, {"stripe": "cus_A"})
        async with storage.transaction() as tx:
            await tx.put_sync_task(task)
            assert await storage.find_sync_task_by_link("stripe", "cus_A") is None
            assert await storage.count_sync_tasks() == 0
        assert await storage.find_sync_task_by_link("stripe", "cus_A") == task

    async def test_agrees_with_scanning_every_task(self, storage: Storage) -> None:
        """What the capped scan over ``list_sync_tasks`` answered, without the cap."""
        tasks = [
            _task(n, {"stripe": f"cus_{n % 7}", **({"mercadopago": f"mp{n % 3}"} if n % 2 else {})})
            for n in range(40)
        ]
        await _put(storage, *tasks)
        listed = await storage.list_sync_tasks(limit=1000)
        for provider, pcid in [("stripe", f"cus_{i}") for i in range(8)] + [
            ("mercadopago", f"mp{i}") for i in range(4)
        ]:
            scanned = next(
                (t for t in listed if t.links.get(provider) == pcid),
                None,
            )
            assert await storage.find_sync_task_by_link(provider, pcid) == scanned


class TestCountSyncTasks:
    async def test_counts_every_pending_task(self, storage: Storage) -> None:
        assert await storage.count_sync_tasks() == 0
        tasks = [_task(n, {}, committed=n % 2 == 0) for n in range(5)]
        await _put(storage, *tasks)
        assert await storage.count_sync_tasks() == 5
        assert await storage.count_sync_tasks() == len(await storage.list_sync_tasks(limit=100))

        async with storage.transaction() as tx:
            await tx.delete_sync_task(tasks[0].record_id)
            await tx.delete_sync_task(tasks[3].record_id)
        assert await storage.count_sync_tasks() == 3
