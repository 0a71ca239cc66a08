"""SQLite specifics of subscriptions: the entitlement and due reads use their partial indexes,
and only the mapped unique constraints become conflicts."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from qzpay.errors import ConflictError, StorageError
from qzpay.storage import SQLiteStorage
from qzpay.storage.base import CreateKey, SubscriptionFilter
from qzpay.storage.sqlite.subscriptions import DUE, GRANTS
from qzpay.subscriptions.models import ENDED, GRANTING, STATUSES
from tests.contract.test_subscription_storage import (
    T0,
    World,
    customer,
    insert,
    subscription,
)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    opened = SQLiteStorage(tmp_path / "subs.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def world(storage: SQLiteStorage) -> World:
    made = World()
    async with storage.transaction() as tx:
        await tx.insert_customer(made.customer)
        await tx.insert_plan(made.plan)
        await tx.insert_price(made.price)
    return made


def plan_of(path: Path, sql: str, params: tuple[object, ...], *, analyze: bool) -> list[str]:
    with sqlite3.connect(path) as db:
        if analyze:
            db.execute("ANALYZE")
        return [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


class TestQueryPlans:
    @pytest.fixture
    async def filled(self, storage: SQLiteStorage, world: World) -> Path:
        """Subscriptions in every status, most of them ended, so a full scan or the wrong
        index would cost something."""
        made = [
            subscription(
                world.customer,
                world.price,
                status=STATUSES[n % len(STATUSES)] if n % 10 == 0 else "canceled",
                current_period_end=T0 + timedelta(days=n % 60),
            )
            for n in range(300)
        ]
        await insert(storage, *made)
        return storage.path

    @pytest.mark.parametrize("analyze", [False, True])
    async def test_grants_reads_the_granting_index_only(
        self, filled: Path, world: World, analyze: bool
    ) -> None:
        steps = plan_of(filled, GRANTS, (world.customer.id,), analyze=analyze)
        # Covering, and in subscription id order (no temporary b-tree to sort).
        assert steps == [
            "SEARCH s USING COVERING INDEX subscriptions_granting (customer_id=?)",
            "SEARCH p USING PRIMARY KEY (id=?)",
        ]

    @pytest.mark.parametrize("analyze", [False, True])
    async def test_due_reads_the_due_index(self, filled: Path, analyze: bool) -> None:
        steps = plan_of(filled, DUE, (0, 10), analyze=analyze)
        assert steps == [
            "SEARCH subscriptions USING INDEX subscriptions_due (current_period_end<?)"
        ]

    async def test_the_reads_answer_what_the_plans_promise(
        self, storage: SQLiteStorage, world: World, filled: Path
    ) -> None:
        grants = await storage.grants(world.customer.id)
        listed, total = await storage.list_subscriptions(
            SubscriptionFilter(customer_id=world.customer.id),
            limit=1000,
            offset=0,
        )
        assert total == 300
        expected = sorted(s.id for s in listed if s.status in GRANTING)
        assert [g.subscription_id for g in grants] == expected
        due = await storage.due_subscriptions(T0 + timedelta(days=100), limit=1000)
        assert [s.id for s in due] == [
            s.id
            for s in sorted(listed, key=lambda s: (s.current_period_end, s.id))
            if s.status not in ENDED
        ]


class TestIntegrityErrors:
    async def test_a_missing_customer_is_a_storage_error_not_a_conflict(
        self, storage: SQLiteStorage, world: World
    ) -> None:
        stranger = customer()  # never inserted
        with pytest.raises(StorageError) as caught:
            await insert(storage, subscription(stranger, world.price))
        assert not isinstance(caught.value, ConflictError)
        assert "FOREIGN KEY" in str(caught.value)

    async def test_a_duplicate_id_is_a_storage_error_not_a_conflict(
        self, storage: SQLiteStorage, world: World
    ) -> None:
        first = subscription(world.customer, world.price)
        await insert(storage, first)
        again = first.model_copy(update={"provider": "stripe", "provider_subscription_id": "x"})
        with pytest.raises(StorageError) as caught:
            await insert(storage, again)
        assert not isinstance(caught.value, ConflictError)

    async def test_a_reused_key_wins_over_a_taken_provider_id(
        self, storage: SQLiteStorage, world: World
    ) -> None:
        linked = dict(provider="stripe", provider_subscription_id="sub_1")
        await insert(
            storage, subscription(world.customer, world.price, **linked), key=CreateKey("k")
        )
        # SQLite checks the provider id index first; the key is still the reported conflict.
        with pytest.raises(ConflictError) as caught:
            await insert(
                storage, subscription(world.customer, world.price, **linked), key=CreateKey("k")
            )
        assert caught.value.code == "idempotency_key_reused"

    async def test_a_taken_provider_id_names_its_holder_and_the_transaction_goes_on(
        self, storage: SQLiteStorage, world: World
    ) -> None:
        holder = subscription(
            world.customer, world.price, provider="stripe", provider_subscription_id="sub_1"
        )
        await insert(storage, holder)
        taken = subscription(
            world.customer, world.price, provider="stripe", provider_subscription_id="sub_1"
        )
        free = subscription(world.customer, world.price)
        async with storage.transaction() as tx:
            with pytest.raises(ConflictError) as caught:
                await tx.insert_subscription(taken)
            await tx.insert_subscription(free)
        assert caught.value.code == "provider_id_taken"
        assert holder.id in str(caught.value)
        assert await storage.get_subscription(taken.id) is None
        assert await storage.get_subscription(free.id) == free
