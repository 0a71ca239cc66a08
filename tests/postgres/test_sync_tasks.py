"""Provider sync tasks and webhook de-duplication under concurrent processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from qzpay.customers.models import Customer
from qzpay.errors import ConflictError
from qzpay.ids import customer_ids
from qzpay.storage.base import SyncTask, TaskClaim
from qzpay.storage.postgres import PostgresStorage

pytestmark = pytest.mark.postgres

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def _task(n: int, *, key: str | None = None, owner: str | None = None) -> SyncTask:
    customer = Customer.model_construct(
        id=customer_ids.new(),
        email=f"task{n}@example.com",
        name=None,
        phone=None,
        address=None,
        metadata={},
        provider_customer_ids={},
        created_at=EPOCH,
        updated_at=EPOCH,
        deleted_at=None,
    )
    return SyncTask(
        resource="customer",
        record_id=customer.id,
        operation="create",
        record=customer,
        committed=False,
        idempotency_key=key,
        request_fingerprint=None,
        lease_owner=owner,
        lease_until=EPOCH,
        attempts=0,
        last_error=None,
        created_at=EPOCH + timedelta(seconds=n),
    )


@pytest.fixture
async def storages(pg_url: str) -> AsyncIterator[tuple[PostgresStorage, PostgresStorage]]:
    one, two = PostgresStorage(pg_url), PostgresStorage(pg_url)
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


class TestSyncTasks:
    async def test_tasks_round_trip_in_creation_order(
        self, storages: tuple[PostgresStorage, PostgresStorage]
    ) -> None:
        storage = storages[0]
        tasks = [_task(n, key=f"k{n}" if n % 2 else None) for n in range(5)]
        for task in reversed(tasks):
            async with storage.transaction() as tx:
                await tx.put_sync_task(task)
        assert await storage.list_sync_tasks(limit=10) == tasks
        async with storage.transaction() as tx:
            assert await tx.get_sync_task(tasks[1].record_id) == tasks[1]
            assert await tx.find_sync_task_by_key("k3") == tasks[3]
            await tx.delete_sync_task(tasks[0].record_id)
            assert await tx.get_sync_task(tasks[0].record_id) is None
        assert await storage.list_sync_tasks(limit=2) == tasks[1:3]

    async def test_a_key_held_by_another_task_conflicts_at_the_call(
        self, storages: tuple[PostgresStorage, PostgresStorage]
    ) -> None:
        storage = storages[0]
        async with storage.transaction() as tx:
            await tx.put_sync_task(_task(1, key="shared"))
        async with storage.transaction() as tx:
            with pytest.raises(ConflictError) as caught:
                await tx.put_sync_task(_task(2, key="shared"))
            assert caught.value.code == "idempotency_key_reused"

    async def test_processes_claiming_at_once_take_different_tasks(
        self, storages: tuple[PostgresStorage, PostgresStorage]
    ) -> None:
        one, two = storages
        tasks = [_task(n) for n in range(30)]
        async with one.transaction() as tx:
            for task in tasks:
                await tx.put_sync_task(task)
        now = EPOCH + timedelta(days=1)

        async def claim(storage: PostgresStorage, owner: str) -> list[SyncTask]:
            async with storage.transaction() as tx:
                until = now + timedelta(minutes=5)
                claimed = await tx.claim_sync_tasks(TaskClaim(owner, now, until, frozenset(), 20))
                await asyncio.sleep(0.1)  # hold the claim while the other process claims
                return claimed

        first, second = await asyncio.gather(claim(one, "a"), claim(two, "b"))
        ids_first = {t.record_id for t in first}
        ids_second = {t.record_id for t in second}
        assert not ids_first & ids_second
        assert len(ids_first | ids_second) == 30
        stored = await one.list_sync_tasks(limit=100)
        assert {t.record_id: t.lease_owner for t in stored} == {
            **dict.fromkeys(ids_first, "a"),
            **dict.fromkeys(ids_second, "b"),
        }
        # Leases held and unexpired: nothing left to claim, unless the owner is stale.
        async with one.transaction() as tx:
            again = await tx.claim_sync_tasks(TaskClaim("c", now, now, frozenset({"b"}), 100))
        assert {t.record_id for t in again} == ids_second


class TestWebhookEvents:
    async def test_deliveries_of_one_event_at_once_are_recorded_once(
        self, storages: tuple[PostgresStorage, PostgresStorage]
    ) -> None:
        async def deliver(storage: PostgresStorage) -> bool:
            async with storage.transaction() as tx:
                fresh = await tx.record_webhook_event("stripe", "evt_1", EPOCH)
                await asyncio.sleep(0.1)  # the work the delivery triggers
                return fresh

        results = await asyncio.gather(*(deliver(s) for s in storages))
        assert sorted(results) == [False, True]
        async with storages[0].transaction() as tx:
            assert not await tx.record_webhook_event("stripe", "evt_1", EPOCH)
            assert await tx.record_webhook_event("mercadopago", "evt_1", EPOCH)

    async def test_a_delivery_whose_transaction_failed_is_not_recorded(
        self, storages: tuple[PostgresStorage, PostgresStorage]
    ) -> None:
        storage = storages[0]

        async def fail_after_recording() -> None:
            async with storage.transaction() as tx:
                assert await tx.record_webhook_event("stripe", "evt_2", EPOCH)
                raise RuntimeError("processing failed")

        with pytest.raises(RuntimeError):
            await fail_after_recording()
        async with storage.transaction() as tx:
            assert await tx.record_webhook_event("stripe", "evt_2", EPOCH)


async def test_a_task_written_twice_in_one_transaction(postgres_url: str) -> None:
    """Regression: two deferred upserts of one row in one statement (CardinalityViolation)."""
    from dataclasses import replace as _replace

    from qzpay._time import utcnow

    storage = PostgresStorage(postgres_url)
    now = utcnow()
    customer = Customer.model_construct(
        id="cus_twice0000000000000000000000",
        email="twice@example.com",
        name=None,
        phone=None,
        address=None,
        metadata={},
        provider_customer_ids={},
        created_at=now,
        updated_at=now,
        deleted_at=None,
    )
    task = SyncTask(
        resource="customer",
        record_id=customer.id,
        operation="create",
        record=customer,
        committed=False,
        idempotency_key=None,
        request_fingerprint=None,
        lease_owner="me",
        lease_until=now,
        attempts=0,
        last_error=None,
        created_at=now,
    )
    try:
        async with storage.transaction() as tx:
            await tx.put_sync_task(task)
            await tx.put_sync_task(_replace(task, attempts=1))
            await tx.delete_sync_task(customer.id)
            await tx.put_sync_task(_replace(task, attempts=2))
        (stored,) = await storage.list_sync_tasks(limit=10)
        assert stored.attempts == 2
        async with storage.transaction() as tx:
            await tx.delete_sync_task(customer.id)
    finally:
        await storage.close()
