"""Optimistic transactions (issue 16): an unlocked read, then one checked statement at commit.

A change committed by another writer between the read and the commit makes the commit raise
WriteConflict having written nothing; retrying from a fresh read loses no update, and each
customer's events stay in commit order.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from qzpay import Billing, Customer, Event
from qzpay.errors import ConflictError
from qzpay.storage.base import SupportsOptimisticWrites, WriteConflict
from qzpay.storage.postgres import PostgresStorage
from qzpay.storage.postgres.transaction import PostgresTransaction
from tests.factories import change_event

pytestmark = pytest.mark.postgres


@pytest.fixture
async def storage(pg_url: str) -> AsyncIterator[PostgresStorage]:
    instance = PostgresStorage(pg_url)
    try:
        await instance.open()
        yield instance
    finally:
        await instance.close()


async def _create(storage: PostgresStorage, **fields: object) -> Customer:
    async with Billing(storage=storage) as billing:
        return await billing.customers.create(email="opt@example.com", **fields)  # type: ignore[arg-type]


def _event(after: Customer, before: Customer, kind: str = "customer.updated") -> Event:
    return change_event(after, before, kind)


def _changed(before: Customer, **fields: object) -> Customer:
    return before.model_copy(
        update={**fields, "updated_at": before.updated_at + timedelta(microseconds=1)}
    )


async def _modify(storage: PostgresStorage, customer_id: str, key: str, value: str) -> int:
    """The service's read-change-write loop on optimistic transactions; the attempts taken."""
    for attempt in itertools.count(1):
        try:
            async with storage.optimistic_transaction() as tx:
                before = await tx.get_customer(customer_id)
                assert before is not None
                await asyncio.sleep(0)  # let the other writers in between
                after = _changed(before, metadata={**before.metadata, key: value})
                await tx.update_customer(before, after)
                await tx.append_event(_event(after, before))
            return attempt
        except WriteConflict:
            continue
    raise AssertionError("unreachable")


async def _counts(admin: asyncpg.Connection) -> tuple[int, int, int]:
    row = await admin.fetchrow(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM customer_metadata), "
        "(SELECT count(*) FROM customer_links)"
    )
    assert row is not None
    return row[0], row[1], row[2]


class TestCheckedCommit:
    async def test_the_storage_offers_optimistic_transactions(
        self, storage: PostgresStorage
    ) -> None:
        assert isinstance(storage, SupportsOptimisticWrites)
        assert isinstance(storage.optimistic_transaction(), PostgresTransaction)

    async def test_a_change_between_read_and_commit_writes_nothing(
        self, storage: PostgresStorage, admin: asyncpg.Connection
    ) -> None:
        customer = await _create(storage, metadata={"a": "1"})
        counts = await _counts(admin)

        async def stale_write() -> None:
            async with storage.optimistic_transaction() as tx:
                before = await tx.get_customer(customer.id)
                assert before is not None
                # Another writer commits meanwhile.
                async with storage.transaction() as other:
                    current = await other.get_customer(customer.id)
                    assert current is not None
                    theirs = _changed(current, name="Theirs")
                    await other.update_customer(current, theirs)
                    await other.append_event(_event(theirs, current))
                after = _changed(
                    before, name="Mine", metadata={"b": "2"}, provider_customer_ids={"stripe": "x"}
                )
                await tx.update_customer(before, after)
                await tx.append_event(_event(after, before))

        with pytest.raises(WriteConflict) as raised:
            await stale_write()
        assert raised.value.code == "concurrent_update"
        assert isinstance(raised.value, ConflictError)
        stored = await storage.get_customer(customer.id)
        assert stored is not None
        assert stored.name == "Theirs"
        assert stored.metadata == {"a": "1"}
        assert await _counts(admin) == (counts[0] + 1, counts[1], counts[2])

    async def test_the_read_takes_no_lock_and_no_transaction(
        self, storage: PostgresStorage, admin: asyncpg.Connection
    ) -> None:
        customer = await _create(storage)
        async with storage.optimistic_transaction() as tx:
            assert await tx.get_customer(customer.id) == customer
            await admin.execute(
                "SELECT 1 FROM customers WHERE id = $1 FOR UPDATE NOWAIT", customer.id
            )
            idle = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%'"
            )
            assert idle == 0

    async def test_a_no_op_update_writes_nothing(
        self, storage: PostgresStorage, admin: asyncpg.Connection
    ) -> None:
        customer = await _create(storage, metadata={"a": "1"})
        version = await admin.fetchval(
            "SELECT xmin::text FROM customers WHERE id = $1", customer.id
        )
        counts = await _counts(admin)
        async with storage.optimistic_transaction() as tx:
            before = await tx.get_customer(customer.id)
            assert before is not None
            await tx.update_customer(before, before.model_copy())
        assert await _counts(admin) == counts
        assert (
            await admin.fetchval("SELECT xmin::text FROM customers WHERE id = $1", customer.id)
            == version
        )

    async def test_update_then_read_in_one_transaction_sees_the_write(
        self, storage: PostgresStorage
    ) -> None:
        customer = await _create(storage, metadata={"a": "1", "b": "2"})
        async with storage.optimistic_transaction() as tx:
            before = await tx.get_customer(customer.id)
            assert before is not None
            after = _changed(before, metadata={"a": "9", "c": "3"})
            await tx.update_customer(before, after)
            await tx.append_event(_event(after, before))
            assert await tx.get_customer(customer.id) == after
        assert await storage.get_customer(customer.id) == after

    async def test_a_taken_provider_id_is_raised_by_the_commit(
        self, storage: PostgresStorage, admin: asyncpg.Connection
    ) -> None:
        async with Billing(storage=storage) as billing:
            one = await billing.customers.create(email="one@example.com")
            two = await billing.customers.create(email="two@example.com")
            await billing.customers.link(one.id, provider="stripe", provider_customer_id="cus_1")
        counts = await _counts(admin)

        async def link_taken() -> None:
            async with storage.optimistic_transaction() as tx:
                before = await tx.get_customer(two.id)
                assert before is not None
                after = _changed(before, provider_customer_ids={"stripe": "cus_1"})
                await tx.update_customer(before, after)
                await tx.append_event(_event(after, before))

        with pytest.raises(ConflictError) as raised:
            await link_taken()
        assert raised.value.code == "provider_id_taken"
        assert await _counts(admin) == counts
        assert await storage.get_customer(two.id) == two


class TestConcurrentOptimisticWriters:
    async def test_no_update_is_lost_and_each_customers_events_are_in_order(
        self, pg_url: str, admin: asyncpg.Connection
    ) -> None:
        one, two = PostgresStorage(pg_url), PostgresStorage(pg_url)
        try:
            customer = await _create(one)
            writers = 24
            attempts = await asyncio.gather(
                *(_modify((one, two)[i % 2], customer.id, f"k{i}", str(i)) for i in range(writers))
            )
            assert max(attempts) > 1  # the checked statement did refuse stale writes
            final = await one.get_customer(customer.id)
            assert final is not None
            assert final.metadata == {f"k{i}": str(i) for i in range(writers)}
            side = await admin.fetch(
                "SELECT key, value FROM customer_metadata WHERE customer_id = $1", customer.id
            )
            assert dict(side) == final.metadata  # type: ignore[arg-type]
            events: list[Event] = []
            while page := await one.list_events(after=events[-1].id if events else None, limit=7):
                events += page
            updates = [e for e in events if e.type == "customer.updated"]
            assert len(updates) == writers
            # Each event's "previous" is what the one before it left: commit order.
            for earlier, later in itertools.pairwise(updates):
                assert later.previous is not None
                assert later.previous["metadata"] == earlier.data.metadata
        finally:
            await one.close()
            await two.close()

    async def test_optimistic_and_locked_writers_together_lose_nothing(self, pg_url: str) -> None:
        one, two = PostgresStorage(pg_url), PostgresStorage(pg_url)
        try:
            customer = await _create(one)

            async def locked(i: int) -> None:
                async with two.transaction() as tx:
                    before = await tx.get_customer(customer.id)
                    assert before is not None
                    await asyncio.sleep(0)
                    after = _changed(before, metadata={**before.metadata, f"l{i}": "x"})
                    await tx.update_customer(before, after)
                    await tx.append_event(_event(after, before))

            await asyncio.gather(
                *(_modify(one, customer.id, f"o{i}", "x") for i in range(10)),
                *(locked(i) for i in range(10)),
            )
            final = await one.get_customer(customer.id)
            assert final is not None
            assert set(final.metadata) == {f"o{i}" for i in range(10)} | {
                f"l{i}" for i in range(10)
            }
        finally:
            await one.close()
            await two.close()


class TestDelete:
    async def test_concurrent_deletes_delete_once(
        self, storage: PostgresStorage, admin: asyncpg.Connection
    ) -> None:
        customer = await _create(storage)

        async def delete() -> bool:
            while True:
                try:
                    async with storage.optimistic_transaction() as tx:
                        before = await tx.get_customer(customer.id)
                        assert before is not None
                        if before.deleted_at is not None:
                            return False  # deleting a deleted customer writes nothing
                        await asyncio.sleep(0)
                        after = _changed(before, deleted_at=before.updated_at)
                        await tx.update_customer(before, after)
                        await tx.append_event(_event(after, before, "customer.deleted"))
                    return True
                except WriteConflict:
                    continue

        results = await asyncio.gather(*(delete() for _ in range(6)))
        assert sorted(results) == [False] * 5 + [True]
        kinds = await admin.fetch("SELECT type FROM events ORDER BY txid, seq")
        assert [row[0] for row in kinds] == ["customer.created", "customer.deleted"]
