"""Schema migrations: an empty database upgraded, upgrades racing, outdated and newer schemas."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import pytest

from qzpay import Billing
from qzpay.customers.models import Customer
from qzpay.errors import StorageError
from qzpay.storage import migrations
from qzpay.storage.postgres import PostgresStorage

pytestmark = pytest.mark.postgres

Scratch = Callable[[], Awaitable[str]]
LATEST = migrations.load("postgres")[-1][0]
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Schema:
    columns: dict[tuple[str, str], asyncpg.Record]
    indexes: dict[str, str]
    constraints: dict[str, str]
    versions: list[int]


async def _schema(url: str) -> Schema:
    connection = await asyncpg.connect(url)
    try:
        columns = await connection.fetch(
            "SELECT table_name, column_name, data_type, is_nullable, collation_name "
            "FROM information_schema.columns WHERE table_schema = current_schema()"
        )
        indexes = await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        )
        constraints = await connection.fetch(
            "SELECT conname, contype::text FROM pg_constraint "
            "WHERE connamespace = current_schema()::regnamespace"
        )
        versions = await connection.fetch(
            "SELECT version FROM qzpay_schema_version ORDER BY version"
        )
    finally:
        await connection.close()
    return Schema(
        columns={(r["table_name"], r["column_name"]): r for r in columns},
        indexes={r["indexname"]: r["indexdef"] for r in indexes},
        constraints={r["conname"]: r["contype"] for r in constraints},
        versions=[r["version"] for r in versions],
    )


class TestUpgrade:
    async def test_empty_database_gets_the_whole_schema(self, scratch_database: Scratch) -> None:
        url = await scratch_database()
        storage = PostgresStorage(url)
        try:
            assert await storage.upgrade() == LATEST
            assert await storage.schema_version() == LATEST
        finally:
            await storage.close()

        schema = await _schema(url)
        assert schema.versions == list(range(1, LATEST + 1))
        columns = schema.columns
        tables = {table for table, _ in columns}
        assert {"customers", "customer_metadata", "customer_links", "events"} <= tables
        assert columns[("customers", "id")]["collation_name"] == "C"
        assert columns[("customers", "metadata")]["data_type"] == "jsonb"
        assert columns[("customers", "created_at")]["data_type"] == "timestamp with time zone"
        assert columns[("events", "txid")]["data_type"] == "xid8"
        assert columns[("events", "seq")]["data_type"] == "bigint"
        indexes = schema.indexes
        assert "(email_key, id)" in indexes["customers_email_key"]
        assert "(key, value, customer_id)" in indexes["customer_metadata_key_value"]
        assert "(provider_customer_id)" in indexes["customer_links_provider_customer_id"]
        assert "(txid, seq)" in indexes["events_txid_seq"]
        assert "(customer_id, txid, seq)" in indexes["events_customer_id_txid_seq"]
        # The constraint names the backend translates into ConflictError codes.
        assert schema.constraints == schema.constraints | {
            "customers_idempotency_key_key": "u",
            "customer_links_pkey": "p",
            "customer_links_customer_provider_key": "u",
            "events_id_key": "u",
            "sync_tasks_idempotency_key_key": "u",
            "webhook_events_pkey": "p",
            "subscriptions_idempotency_key_key": "u",
        }
        # A unique index, not a constraint: its name is translated all the same.
        assert "(provider_subscription_id, provider)" in indexes["subscriptions_provider_id"]

    async def test_upgrading_again_changes_nothing(self, scratch_database: Scratch) -> None:
        url = await scratch_database()
        for _ in range(2):
            storage = PostgresStorage(url)
            try:
                assert await storage.upgrade() == LATEST
                assert await storage.upgrade() == LATEST
            finally:
                await storage.close()
        assert (await _schema(url)).versions == list(range(1, LATEST + 1))

    async def test_concurrent_upgrades_take_turns(self, scratch_database: Scratch) -> None:
        url = await scratch_database()
        storages = [PostgresStorage(url) for _ in range(4)]  # four pools, as four processes
        try:
            versions = await asyncio.gather(*(s.upgrade() for s in storages))
        finally:
            await asyncio.gather(*(s.close() for s in storages))
        assert versions == [LATEST] * 4
        assert (await _schema(url)).versions == list(range(1, LATEST + 1))

    async def test_concurrent_first_use_through_billing(self, scratch_database: Scratch) -> None:
        url = await scratch_database()
        first, second = Billing(storage=url), Billing(storage=url)
        try:
            await asyncio.gather(
                first.customers.create(email="a@example.com"),
                second.customers.create(email="b@example.com"),
            )
            assert {c.email for c in (await first.customers.list()).data} == {
                "a@example.com",
                "b@example.com",
            }
        finally:
            await first.close()
            await second.close()


class TestSchemaChecks:
    async def test_without_migrate_an_empty_database_is_outdated(
        self, scratch_database: Scratch
    ) -> None:
        url = await scratch_database()
        billing = Billing(storage=url, migrate=False)
        try:
            with pytest.raises(StorageError) as caught:
                await billing.customers.get("cus_01J0000000000000000000000")
            assert caught.value.code == "schema_outdated"
            assert await billing.storage.upgrade() == LATEST
            assert await billing.customers.get("cus_01J0000000000000000000000") is None
        finally:
            await billing.close()

    async def test_a_newer_schema_is_refused(self, scratch_database: Scratch) -> None:
        url = await scratch_database()
        storage = PostgresStorage(url)
        await storage.upgrade()
        await storage.close()
        connection = await asyncpg.connect(url)
        try:
            await connection.execute("INSERT INTO qzpay_schema_version (version) VALUES (999)")
        finally:
            await connection.close()
        for migrate in (True, False):
            newer = PostgresStorage(url, migrate=migrate)
            try:
                with pytest.raises(StorageError) as caught:
                    await newer.open()
                assert caught.value.code == "schema_too_new"
            finally:
                await newer.close()


class TestPool:
    async def test_an_existing_pool_is_used_and_left_open(self, pg_url: str) -> None:
        pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=2)
        try:
            storage = PostgresStorage(pool)
            async with Billing(storage=storage) as billing:
                created = await billing.customers.create(email="pool@example.com")
                assert await billing.customers.get(created.id) == created
            assert not pool.is_closing()
            assert await pool.fetchval("SELECT count(*) FROM customers") == 1
        finally:
            await pool.close()

    def test_rejects_other_arguments(self) -> None:
        with pytest.raises(TypeError):
            PostgresStorage(42)  # type: ignore[arg-type]


class TestSyncTaskResource:
    """Migration 0006: sync tasks name their resource; tasks stored before are customers'."""

    async def test_tasks_stored_before_stay_valid(
        self, scratch_database: Scratch, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        url = await scratch_database()
        before = [script for script in migrations.load("postgres") if script[0] < 6]
        monkeypatch.setattr(migrations, "load", lambda dialect: before)
        storage = PostgresStorage(url)
        try:
            assert await storage.upgrade() == 5
        finally:
            await storage.close()
        monkeypatch.undo()

        customer = Customer(
            id="cus_01J00000000000000000000000",
            email="old@example.com",
            metadata={},
            provider_customer_ids={"mercadopago": "123-abc"},
            created_at=EPOCH,
            updated_at=EPOCH,
        )
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(
                "INSERT INTO sync_tasks (customer_id, operation, customer, committed, "
                "idempotency_key, request_fingerprint, lease_owner, lease_until, attempts, "
                "last_error, created_at) VALUES ($1, 'create', $2::jsonb, false, 'k', 'fp', "
                "NULL, $3, 0, NULL, $3)",
                customer.id,
                customer.model_dump_json(),
                EPOCH,
            )
        finally:
            await connection.close()

        storage = PostgresStorage(url)
        try:
            assert await storage.upgrade() == LATEST
            task = await storage.find_sync_task_by_link("mercadopago", "123-abc")
            assert task is not None
            assert (task.resource, task.record_id) == ("customer", customer.id)
            assert task.record == customer
            assert await storage.find_sync_task_by_link("mercadopago", "123") is None
            async with storage.transaction() as tx:
                assert await tx.find_sync_task_by_key("k") == task
        finally:
            await storage.close()
        indexes = (await _schema(url)).indexes
        assert "sync_tasks_provider_ids" not in indexes
        assert "gin (links jsonb_path_ops)" in indexes["sync_tasks_links"]
