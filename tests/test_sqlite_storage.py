"""SQLite specifics: schema versions, locking, durability of one transaction."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from qzpay import Billing
from qzpay.errors import StorageError
from qzpay.storage import SQLiteStorage, migrations


def latest_version() -> int:
    return migrations.load("sqlite")[-1][0]


class TestMigrations:
    async def test_new_file_gets_the_latest_schema(self, tmp_path: Path) -> None:
        storage = SQLiteStorage(tmp_path / "new.db")
        assert await storage.schema_version() == latest_version()
        await storage.close()
        with sqlite3.connect(tmp_path / "new.db") as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        assert {"customers", "customer_metadata", "customer_links", "events"} <= tables
        assert mode == "wal"

    async def test_upgrade_is_idempotent(self, tmp_path: Path) -> None:
        storage = SQLiteStorage(tmp_path / "b.db")
        assert await storage.upgrade() == latest_version()
        assert await storage.upgrade() == latest_version()
        await storage.close()

    async def test_concurrent_first_opens(self, tmp_path: Path) -> None:
        storages = [SQLiteStorage(tmp_path / "race.db") for _ in range(5)]
        versions = await asyncio.gather(*(s.upgrade() for s in storages))
        assert versions == [latest_version()] * 5
        for storage in storages:
            await storage.close()

    async def test_without_migrate_an_outdated_file_is_refused(self, tmp_path: Path) -> None:
        billing = Billing(storage=f"sqlite:///{tmp_path / 'e.db'}", migrate=False)
        with pytest.raises(StorageError) as caught:
            await billing.customers.get("cus_x")
        assert caught.value.code == "schema_outdated"
        assert await SQLiteStorage(tmp_path / "e.db").upgrade() == latest_version()
        assert await billing.customers.get("cus_x") is None
        await billing.close()

    async def test_newer_schema_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "future.db"
        with sqlite3.connect(path) as db:
            db.execute(f"PRAGMA user_version = {latest_version() + 1}")
        with pytest.raises(StorageError) as caught:
            await SQLiteStorage(path).open()
        assert caught.value.code == "schema_too_new"


class TestRestart:
    async def test_idempotency_key_survives_a_restart(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'restart.db'}"
        async with Billing(storage=url) as billing:
            first = await billing.customers.create(email="r@example.com", idempotency_key="k")
        async with Billing(storage=url) as billing:
            again = await billing.customers.create(email="r@example.com", idempotency_key="k")
            assert again == first
            assert len(await billing.events.list()) == 1


class TestLocking:
    async def test_waits_for_another_writer_without_blocking_the_loop(self, tmp_path: Path) -> None:
        path = tmp_path / "locked.db"
        async with Billing(storage=f"sqlite:///{path}") as billing:
            await billing.customers.create(email="first@example.com")
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticking = asyncio.create_task(ticker())
            create = asyncio.create_task(billing.customers.create(email="second@example.com"))
            await asyncio.sleep(0.3)
            assert not create.done()
            other.execute("COMMIT")
            other.close()
            customer = await create
            ticking.cancel()
            assert ticks >= 10  # the loop kept running while the create waited
            assert await billing.customers.get(customer.id) == customer

    async def test_gives_up_with_a_typed_error(self, tmp_path: Path) -> None:
        path = tmp_path / "stuck.db"
        storage = SQLiteStorage(path, lock_timeout=0.2)
        async with Billing(storage=storage) as billing:
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            with pytest.raises(StorageError) as caught:
                await billing.customers.create(email="late@example.com")
            assert caught.value.code == "storage_busy"
            assert time.monotonic() - started < 5
            other.execute("ROLLBACK")
            other.close()
            assert (await billing.customers.list()).total == 0


async def test_pending_work_is_read_oldest_first_from_its_index(tmp_path: Path) -> None:
    """list_sync_tasks and claim_sync_tasks read sync_tasks in (created_at, id) index order and
    stop at their limit; no sort of every pending task."""
    opened = SQLiteStorage(tmp_path / "tasks.db")
    await opened.open()
    await opened.close()
    db = sqlite3.connect(tmp_path / "tasks.db")
    try:
        for sql in (
            "SELECT * FROM sync_tasks ORDER BY created_at, customer_id LIMIT 10",
            "SELECT * FROM sync_tasks WHERE (lease_until <= 0 OR lease_owner IS NULL) "
            "AND (NULL IS NULL OR resource = NULL) ORDER BY created_at, customer_id LIMIT 10",
        ):
            plan = " ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}"))
            assert "sync_tasks_created" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
    finally:
        db.close()
