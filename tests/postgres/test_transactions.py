"""Transactions: all or nothing, rollback on cancellation, row locks, conflicts at the call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from qzpay import Billing, Event
from qzpay.customers.models import Address, Customer
from qzpay.errors import ConflictError, NotFoundError, StorageError
from qzpay.ids import customer_ids, event_ids
from qzpay.storage import Transaction
from qzpay.storage.base import CustomerFilter
from qzpay.storage.params import CreateKey
from qzpay.storage.postgres import PostgresStorage
from tests.postgres.hooks import HookedStorage

pytestmark = pytest.mark.postgres

TABLES = ("customers", "customer_metadata", "customer_links", "events")


class WriteFailed(RuntimeError):
    pass


async def _counts(admin: asyncpg.Connection) -> dict[str, int]:
    return {t: int(await admin.fetchval(f"SELECT count(*) FROM {t}")) for t in TABLES}


def _customer(**fields: object) -> Customer:
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "id": customer_ids.new(),
        "email": "direct@example.com",
        "name": None,
        "phone": None,
        "address": None,
        "metadata": {},
        "provider_customer_ids": {},
        "created_at": now,
        "updated_at": now,
        "deleted_at": None,
    }
    values.update(fields)
    return Customer.model_construct(**values)  # type: ignore[arg-type]


@pytest.fixture
async def storage(pg_url: str) -> AsyncIterator[PostgresStorage]:
    instance = PostgresStorage(pg_url)
    try:
        yield instance
    finally:
        await instance.close()


class TestNothingHalfWritten:
    @pytest.mark.parametrize("sent", [False, True], ids=["writes-kept", "writes-sent"])
    async def test_an_event_failure_after_the_change_undoes_every_write(
        self, pg_url: str, admin: asyncpg.Connection, sent: bool
    ) -> None:
        async def fail(tx: Transaction) -> None:
            if sent:
                # A read sends the change and the event to the server before the failure.
                await tx.find_idempotent_create("no-such-key")
            raise WriteFailed("the event log write failed")

        storage = HookedStorage(pg_url, after_append=fail)
        storage.enabled = False
        async with Billing(storage=storage) as billing:
            customer = await billing.customers.create(email="kept@example.com", metadata={"a": "1"})
            await billing.customers.link(customer.id, provider="stripe", provider_customer_id="c1")
            before = await _counts(admin)
            storage.enabled = True
            writes = [
                billing.customers.create(email="ghost@example.com", metadata={"b": "2"}),
                billing.customers.create(email="ghost@example.com", idempotency_key="ghost"),
                billing.customers.update(customer.id, name="Changed", metadata={"a": None}),
                billing.customers.update(customer.id, metadata={"a": "2", "c": "3"}),
                billing.customers.link(
                    customer.id, provider="mercadopago", provider_customer_id="m"
                ),
                billing.customers.unlink(customer.id, provider="stripe"),
                billing.customers.delete(customer.id),
            ]
            for write in writes:
                with pytest.raises(WriteFailed):
                    await write
            assert await _counts(admin) == before
            storage.enabled = False
            current = await billing.customers.get(customer.id)
            assert current is not None
            assert current.metadata == {"a": "1"}
            assert current.provider_customer_ids == {"stripe": "c1"}
            assert current.deleted_at is None
            assert (await billing.customers.list(metadata={"a": "1"})).total == 1
            # The key was not consumed: the retry creates the customer once.
            await billing.customers.create(email="ghost@example.com", idempotency_key="ghost")
            assert (await billing.customers.list(email="ghost@example.com")).total == 1

    async def test_an_exception_in_the_block_discards_writes_not_yet_sent(
        self, storage: PostgresStorage, admin: asyncpg.Connection
    ) -> None:
        async def write_then_fail() -> None:
            async with storage.transaction() as tx:
                await tx.insert_customer(_customer(metadata={"a": "1"}))
                await tx.append_event(
                    Event.model_construct(
                        id=event_ids.new(),
                        type="customer.created",
                        data=_customer(),
                        previous=None,
                        created_at=datetime.now(UTC),
                    )
                )
                raise WriteFailed

        with pytest.raises(WriteFailed):
            await write_then_fail()
        assert await _counts(admin) == dict.fromkeys(TABLES, 0)


class TestCancellation:
    async def test_a_cancelled_update_rolls_back_and_frees_its_connection(
        self, billing: Billing, admin: asyncpg.Connection
    ) -> None:
        customer = await billing.customers.create(email="cancel@example.com")
        async with admin.transaction():
            # Hold the row, so the update waits inside its transaction.
            await admin.execute("SELECT 1 FROM customers WHERE id = $1 FOR UPDATE", customer.id)
            task = asyncio.create_task(billing.customers.update(customer.id, name="Never"))
            await asyncio.sleep(0.3)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert await billing.customers.get(customer.id) == customer
        assert len(await billing.events.list()) == 1
        stuck = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%'"
        )
        assert stuck == 0
        updated = await billing.customers.update(customer.id, name="Later")
        assert updated.name == "Later"


class TestTransactionSemantics:
    async def test_get_customer_locks_the_row_until_commit(
        self, storage: PostgresStorage, admin: asyncpg.Connection
    ) -> None:
        customer = _customer()
        async with storage.transaction() as tx:
            await tx.insert_customer(customer)
        async with storage.transaction() as tx:
            assert await tx.get_customer(customer.id) == customer
            assert await tx.get_customer(customer.id) == customer  # locking twice is fine
            with pytest.raises(asyncpg.LockNotAvailableError):
                await admin.execute(
                    "SELECT 1 FROM customers WHERE id = $1 FOR UPDATE NOWAIT", customer.id
                )
        await admin.execute("SELECT 1 FROM customers WHERE id = $1 FOR UPDATE NOWAIT", customer.id)

    async def test_a_transaction_reads_its_own_writes(self, storage: PostgresStorage) -> None:
        customer = _customer(metadata={"k": "v"})
        async with storage.transaction() as tx:
            await tx.insert_customer(customer, None)
            assert await tx.get_customer(customer.id) == customer
        assert await storage.get_customer(customer.id) == customer

    async def test_writes_to_one_customer_in_one_transaction_all_apply(
        self, storage: PostgresStorage
    ) -> None:
        # Kept writes go out together; each must still see the one before it.
        other = _customer()
        created = _customer(metadata={"a": "1"})
        renamed = created.model_copy(update={"name": "Renamed", "metadata": {"b": "2"}})
        final = renamed.model_copy(update={"name": "Final", "metadata": {"b": "3"}})
        async with storage.transaction() as tx:
            await tx.insert_customer(other)
        async with storage.transaction() as tx:
            await tx.get_customer(other.id)  # the transaction has begun
            await tx.insert_customer(created)
            await tx.update_customer(created, renamed)
            await tx.update_customer(renamed, final)
        assert await storage.get_customer(created.id) == final
        by_new_value = CustomerFilter(metadata={"b": "3"})
        assert await storage.list_customers(by_new_value, limit=10, offset=0) == ([final], 1)
        by_old_value = CustomerFilter(metadata={"a": "1"})
        assert await storage.list_customers(by_old_value, limit=10, offset=0) == ([], 0)

    async def test_conflicts_are_raised_by_the_write_itself(self, storage: PostgresStorage) -> None:
        owner = _customer(provider_customer_ids={"stripe": "cus_taken"})
        async with storage.transaction() as tx:
            await tx.insert_customer(owner, CreateKey("key", "f"))
        async with storage.transaction() as tx:
            with pytest.raises(ConflictError) as caught:
                await tx.insert_customer(_customer(), CreateKey("key"))
            assert caught.value.code == "idempotency_key_reused"
        async with storage.transaction() as tx:
            with pytest.raises(ConflictError) as caught:
                await tx.insert_customer(_customer(provider_customer_ids={"stripe": "cus_taken"}))
            assert caught.value.code == "provider_id_taken"
        other = _customer()
        async with storage.transaction() as tx:
            await tx.insert_customer(other)
        async with storage.transaction() as tx:
            before = await tx.get_customer(other.id)
            assert before is not None
            after = before.model_copy(update={"provider_customer_ids": {"stripe": "cus_taken"}})
            with pytest.raises(ConflictError) as caught:
                await tx.update_customer(before, after)
            assert caught.value.code == "provider_id_taken"
            assert "cus_taken" in caught.value.message
        assert (await storage.find_customers_by_provider_id("cus_taken", provider=None)) == [owner]


class TestStoredValues:
    async def test_a_customer_round_trips_exactly(self, billing: Billing) -> None:
        created = await billing.customers.create(
            email="Ünï@Example.com",
            name="Zoë “Quotes” 'O'Brien' \\ 😀",
            phone="+14155550123",
            address=Address(line1="1 Main St", city="Montréal", country="CA"),
            metadata={"emoji": "😀", "quote": 'it\'s "x"'},
        )
        await billing.customers.link(created.id, provider="stripe", provider_customer_id="cus_1")
        stored = await billing.customers.get(created.id)
        assert stored is not None
        assert stored.model_dump() == {
            **created.model_dump(),
            "provider_customer_ids": {"stripe": "cus_1"},
            "updated_at": stored.updated_at,
        }
        assert created.created_at.tzinfo is not None
        assert stored.created_at == created.created_at  # microseconds kept
        assert stored.created_at.utcoffset() is not None
        assert stored.created_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        (found,) = (await billing.customers.list(email="ünï@example.COM")).data
        assert found == stored
        event = (await billing.events.list())[0]
        assert event.data == created

    async def test_order_is_bytewise_like_sqlite(self, storage: PostgresStorage) -> None:
        ids = ["cus_B", "cus_a", "cus_Z", "cus__"]
        for customer_id in ids:
            async with storage.transaction() as tx:
                await tx.insert_customer(_customer(id=customer_id))
        page, total = await storage.list_customers(CustomerFilter(), limit=10, offset=0)
        assert [c.id for c in page] == sorted(ids, reverse=True)  # Python sorts by code point
        assert total == len(ids)
        scanned = await storage.scan_customers(CustomerFilter(), before_id="cus_a", limit=10)
        assert [c.id for c in scanned] == [i for i in sorted(ids, reverse=True) if i < "cus_a"]

    async def test_events_after_an_unknown_id_is_not_found(self, billing: Billing) -> None:
        await billing.customers.create(email="e@example.com")
        with pytest.raises(NotFoundError):
            await billing.events.list(after="evt_01J0000000000000000000000")
        (event,) = await billing.events.list()
        assert await billing.events.list(after=event.id) == []
        assert await billing.events.get(event.id) == event


class TestConnections:
    async def test_min_size_connections_open_at_open(
        self, pg_url: str, admin: asyncpg.Connection
    ) -> None:
        storage = PostgresStorage(pg_url, min_size=3, max_size=4)
        try:
            await storage.open()
            opened = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
            assert opened == 3
        finally:
            await storage.close()

    def test_rejects_impossible_sizes(self, pg_url: str) -> None:
        with pytest.raises(ValueError, match="min_size"):
            PostgresStorage(pg_url, min_size=5, max_size=2)

    async def test_a_query_the_server_refuses_is_a_storage_error(
        self, storage: PostgresStorage
    ) -> None:
        with pytest.raises(StorageError) as caught:
            await storage.get_customer("cus_\x00")  # text cannot hold NUL
        assert caught.value.code == "storage_error"
        assert await storage.get_customer("cus_unknown") is None

    async def test_max_size_bounds_the_connections_in_use(
        self, pg_url: str, admin: asyncpg.Connection
    ) -> None:
        storage = PostgresStorage(pg_url, max_size=2)
        try:
            customer = _customer()
            async with storage.transaction() as tx:
                await tx.insert_customer(customer)
            await asyncio.gather(*(storage.get_customer(customer.id) for _ in range(20)))
            opened = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
            assert opened <= 2
        finally:
            await storage.close()
