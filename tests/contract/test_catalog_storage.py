"""The catalog's storage contract (plans and prices): every test runs against memory, SQLite
and PostgreSQL, through the Storage / Transaction protocol alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qzpay.catalog.models import Plan, Price, plan_ids, price_ids
from qzpay.errors import ConflictError
from qzpay.storage import Storage, open_storage
from qzpay.storage.base import CreateKey, PlanFilter, PriceFilter

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    opened = open_storage(storage_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def plan(key: str = "pro", **changes: Any) -> Plan:
    fields: dict[str, Any] = {
        "id": plan_ids.new(),
        "key": key,
        "name": f"Plan {key} ✓",
        "description": "For teams",
        "entitlements": ["api", "sso"],
        "limits": {"seats": 5, "projects": 0},
        "metadata": {"tier": "2"},
        "provider_plan_ids": {},
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(changes)
    return Plan(**fields)


def price(of: Plan, **changes: Any) -> Price:
    fields: dict[str, Any] = {
        "id": price_ids.new(),
        "plan_id": of.id,
        "currency": "USD",
        "unit_amount": 1999,
        "interval": "month",
        "interval_count": 1,
        "trial_days": None,
        "lookup_key": None,
        "metadata": {},
        "provider_price_ids": {},
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(changes)
    return Price(**fields)


async def insert(storage: Storage, *records: Plan | Price) -> None:
    async with storage.transaction() as tx:
        for record in records:
            if isinstance(record, Plan):
                await tx.insert_plan(record)
            else:
                await tx.insert_price(record)


async def conflict(storage: Storage, *records: Plan | Price) -> str | None:
    """The ConflictError code inserting ``records`` in one transaction raises (None if none);
    nothing is written either way when it raises."""
    try:
        await insert(storage, *records)
    except ConflictError as exc:
        return exc.code
    return None


class TestPlans:
    async def test_round_trip(self, storage: Storage) -> None:
        stored = plan(provider_plan_ids={"stripe": "prod_1"}, description=None)
        await insert(storage, stored)
        got = await storage.get_plan(stored.id)
        assert got == stored
        assert got is not None
        assert got.updated_at.microsecond == 123456
        assert got.updated_at.utcoffset() == timedelta(0)
        assert await storage.get_plan_by_key("pro") == stored
        assert await storage.get_plan("plan_missing") is None
        assert await storage.get_plan_by_key("missing") is None

    async def test_reads_are_copies(self, storage: Storage) -> None:
        stored = plan()
        await insert(storage, stored)
        got = await storage.get_plan(stored.id)
        assert got is not None
        got.entitlements.append("x")
        got.limits["x"] = 1
        got.metadata["x"] = "y"
        assert await storage.get_plan(stored.id) == stored

    async def test_key_is_unique(self, storage: Storage) -> None:
        await insert(storage, plan("pro"))
        assert await conflict(storage, plan("pro")) == "plan_key_taken"
        assert await conflict(storage, plan("team"), plan("team")) == "plan_key_taken"
        assert await storage.get_plan_by_key("team") is None  # rolled back whole

    async def test_idempotency_key(self, storage: Storage) -> None:
        first = plan("pro")
        async with storage.transaction() as tx:
            await tx.insert_plan(first, CreateKey("k1", "fp"))
            assert await tx.find_idempotent_plan("k1") == (first, "fp")
        async with storage.transaction() as tx:
            assert await tx.find_idempotent_plan("k1") == (first, "fp")
            assert await tx.find_idempotent_plan("k2") is None
            assert await tx.find_idempotent_price("k1") is None  # prices have their own keys
        with pytest.raises(ConflictError) as caught:
            async with storage.transaction() as tx:
                await tx.insert_plan(plan("other"), CreateKey("k1"))
        assert caught.value.code == "idempotency_key_reused"
        assert await storage.get_plan_by_key("other") is None

    async def test_update(self, storage: Storage) -> None:
        before = plan(provider_plan_ids={"stripe": "prod_1", "mercadopago": "mp_1"})
        await insert(storage, before)
        after = before.model_copy(
            update={
                "name": "Pro 2",
                "description": None,
                "entitlements": ["sso"],
                "limits": {},
                "metadata": {"tier": "3", "new": "é"},
                "active": False,
                "provider_plan_ids": {"stripe": "prod_2"},
                "updated_at": T0 + timedelta(seconds=1),
            }
        )
        async with storage.transaction() as tx:
            locked = await tx.get_plan(before.id)
            assert locked == before
            await tx.update_plan(before, after)
            assert await tx.get_plan(before.id) == after  # its own write
        assert await storage.get_plan(before.id) == after
        assert await storage.find_plans_by_provider_id("prod_1", provider=None) == []
        assert await storage.find_plans_by_provider_id("mp_1", provider=None) == []
        assert await storage.find_plans_by_provider_id("prod_2", provider="stripe") == [after]

    async def test_provider_ids_link_once(self, storage: Storage) -> None:
        first = plan("a", provider_plan_ids={"stripe": "prod_1"})
        await insert(storage, first)
        taken = plan("b", provider_plan_ids={"stripe": "prod_1"})
        assert await conflict(storage, taken) == "provider_id_taken"
        # The same id at another provider is another object.
        other = plan("c", provider_plan_ids={"mercadopago": "prod_1"})
        await insert(storage, other)
        assert await storage.find_plans_by_provider_id("prod_1", provider="stripe") == [first]
        found = await storage.find_plans_by_provider_id("prod_1", provider=None)
        assert sorted(p.id for p in found) == sorted([first.id, other.id])
        # Linking an update to a taken id fails too.
        moved = other.model_copy(update={"provider_plan_ids": {"stripe": "prod_1"}})
        with pytest.raises(ConflictError) as caught:
            async with storage.transaction() as tx:
                await tx.update_plan(other, moved)
        assert caught.value.code == "provider_id_taken"
        assert await storage.get_plan(other.id) == other

    async def test_list_and_scan_newest_first(self, storage: Storage) -> None:
        plans = [plan(f"p{n}", active=n % 2 == 0) for n in range(7)]
        await insert(storage, *plans)
        newest = list(reversed(plans))
        page, total = await storage.list_plans(PlanFilter(), limit=3, offset=0)
        assert (page, total) == (newest[:3], 7)
        page, total = await storage.list_plans(PlanFilter(), limit=3, offset=6)
        assert (page, total) == (newest[6:], 7)
        active = [p for p in newest if p.active]
        assert await storage.list_plans(PlanFilter(active=True), limit=10, offset=0) == (
            active,
            4,
        )
        page, total = await storage.list_plans(PlanFilter(active=False), limit=1, offset=1)
        assert (page, total) == ([p for p in newest if not p.active][1:2], 3)
        assert await storage.list_plans(PlanFilter(), limit=5, offset=10) == ([], 7)
        scanned: list[Plan] = []
        before: str | None = None
        while batch := await storage.scan_plans(PlanFilter(), before_id=before, limit=2):
            scanned += batch
            before = batch[-1].id
        assert scanned == newest
        assert (
            await storage.scan_plans(PlanFilter(active=True), before_id=None, limit=2)
            == (active[:2])
        )


class TestPrices:
    async def test_round_trip(self, storage: Storage) -> None:
        owner = plan()
        monthly = price(
            owner,
            lookup_key="pro_monthly",
            trial_days=14,
            metadata={"a": "b"},
            provider_price_ids={"stripe": "price_1"},
        )
        yearly = price(owner, unit_amount=0, interval="year", interval_count=3, currency="JPY")
        await insert(storage, owner, monthly, yearly)
        assert await storage.get_price(monthly.id) == monthly
        assert await storage.get_price(yearly.id) == yearly
        assert await storage.get_price("price_missing") is None
        assert await storage.get_price_by_lookup_key("pro_monthly") == monthly
        assert await storage.get_price_by_lookup_key("nope") is None
        found = await storage.find_prices_by_provider_id("price_1", provider="stripe")
        assert found == [monthly]
        assert await storage.find_prices_by_provider_id("price_1", provider="mercadopago") == []

    async def test_lookup_key_is_unique_among_active_prices(self, storage: Storage) -> None:
        owner = plan()
        first = price(owner, lookup_key="k")
        await insert(storage, owner, first)
        assert await conflict(storage, price(owner, lookup_key="k")) == "lookup_key_taken"
        # An archived price may keep its key; an active one can then take it.
        archived = first.model_copy(update={"active": False})
        async with storage.transaction() as tx:
            await tx.update_price(first, archived)
        assert await storage.get_price_by_lookup_key("k") is None
        second = price(owner, lookup_key="k")
        await insert(storage, second)
        assert await storage.get_price_by_lookup_key("k") == second
        assert await storage.get_price(first.id) == archived
        # An archived price with the key cannot come back while another holds it.
        revived = archived.model_copy(update={"active": True})
        with pytest.raises(ConflictError) as caught:
            async with storage.transaction() as tx:
                await tx.update_price(archived, revived)
        assert caught.value.code == "lookup_key_taken"
        # Inactive prices never conflict.
        await insert(storage, price(owner, lookup_key="k", active=False))

    async def test_moving_a_lookup_key_in_one_transaction(self, storage: Storage) -> None:
        owner = plan()
        holder = price(owner, lookup_key="k")
        taker = price(owner, unit_amount=2999)
        await insert(storage, owner, holder, taker)
        freed = holder.model_copy(update={"lookup_key": None})
        took = taker.model_copy(update={"lookup_key": "k"})
        with pytest.raises(ConflictError) as caught:
            async with storage.transaction() as tx:
                await tx.update_price(taker, took)  # before freeing it: refused
        assert caught.value.code == "lookup_key_taken"
        async with storage.transaction() as tx:
            assert await tx.get_price(holder.id) == holder
            await tx.update_price(holder, freed)
            await tx.update_price(taker, took)
        assert await storage.get_price_by_lookup_key("k") == took
        assert await storage.get_price(holder.id) == freed
        # And back again, replacing the new holder by a price inserted in the same transaction.
        newer = price(owner, lookup_key="k", unit_amount=3999)
        async with storage.transaction() as tx:
            await tx.update_price(took, took.model_copy(update={"lookup_key": None}))
            await tx.insert_price(newer)
        assert await storage.get_price_by_lookup_key("k") == newer

    async def test_idempotency_key(self, storage: Storage) -> None:
        owner = plan()
        await insert(storage, owner)
        first = price(owner)
        async with storage.transaction() as tx:
            await tx.insert_price(first, CreateKey("k1", "fp"))
        async with storage.transaction() as tx:
            assert await tx.find_idempotent_price("k1") == (first, "fp")
            assert await tx.find_idempotent_plan("k1") is None
        with pytest.raises(ConflictError) as caught:
            async with storage.transaction() as tx:
                await tx.insert_price(price(owner), CreateKey("k1"))
        assert caught.value.code == "idempotency_key_reused"

    async def test_update_links_and_metadata(self, storage: Storage) -> None:
        owner = plan()
        before = price(owner, provider_price_ids={"stripe": "price_1"}, metadata={"x": "1"})
        other = price(owner, provider_price_ids={"stripe": "price_2"})
        await insert(storage, owner, before, other)
        after = before.model_copy(
            update={
                "metadata": {"y": "2"},
                "provider_price_ids": {"stripe": "price_3", "mercadopago": "mp_9"},
                "updated_at": T0 + timedelta(minutes=1),
            }
        )
        async with storage.transaction() as tx:
            await tx.update_price(before, after)
        assert await storage.get_price(before.id) == after
        assert await storage.find_prices_by_provider_id("price_1", provider=None) == []
        assert await storage.find_prices_by_provider_id("mp_9", provider=None) == [after]
        taken = other.model_copy(update={"provider_price_ids": {"stripe": "price_3"}})
        with pytest.raises(ConflictError) as caught:
            async with storage.transaction() as tx:
                await tx.update_price(other, taken)
        assert caught.value.code == "provider_id_taken"
        assert await conflict(
            storage, price(owner, provider_price_ids={"mercadopago": "mp_9"})
        ) == ("provider_id_taken")

    async def test_list_filters_and_scan(self, storage: Storage) -> None:
        pro, team = plan("pro"), plan("team")
        prices = [
            price(pro, currency="USD"),
            price(team, currency="BRL"),
            price(pro, currency="BRL", active=False),
            price(team, currency="USD"),
            price(pro, currency="USD", active=False),
        ]
        await insert(storage, pro, team, *prices)
        newest = list(reversed(prices))

        async def listed(**filters: Any) -> list[Price]:
            page, total = await storage.list_prices(PriceFilter(**filters), limit=10, offset=0)
            assert total == len(page)
            return page

        assert await listed() == newest
        assert await listed(plan_id=pro.id) == [p for p in newest if p.plan_id == pro.id]
        assert await listed(active=True) == [p for p in newest if p.active]
        assert await listed(currency="BRL") == [p for p in newest if p.currency == "BRL"]
        assert await listed(plan_id=pro.id, active=False, currency="USD") == [prices[4]]
        assert await listed(plan_id="plan_missing") == []
        page, total = await storage.list_prices(PriceFilter(), limit=2, offset=2)
        assert (page, total) == (newest[2:4], 5)
        scanned: list[Price] = []
        before: str | None = None
        while batch := await storage.scan_prices(
            PriceFilter(plan_id=pro.id), before_id=before, limit=2
        ):
            scanned += batch
            before = batch[-1].id
        assert scanned == [p for p in newest if p.plan_id == pro.id]


class TestTransactions:
    async def test_a_rolled_back_transaction_writes_nothing(self, storage: Storage) -> None:
        owner = plan()

        async def fail() -> None:
            async with storage.transaction() as tx:
                await tx.insert_plan(owner, CreateKey("k"))
                await tx.insert_price(price(owner, lookup_key="k"))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await fail()
        assert await storage.get_plan(owner.id) is None
        assert await storage.get_price_by_lookup_key("k") is None
        assert await storage.list_prices(PriceFilter(), limit=10, offset=0) == ([], 0)
        async with storage.transaction() as tx:
            assert await tx.find_idempotent_plan("k") is None
        await insert(storage, owner)  # the key and the id are free again


class TestTransactionReads:
    async def test_active_price_and_active_prices_see_the_transaction(
        self, storage: Storage
    ) -> None:
        pro, team = plan("pro"), plan("team")
        old = price(pro, lookup_key="k", active=False)
        holder = price(pro, lookup_key="k")
        other = price(team, lookup_key="t")
        await insert(storage, pro, team, old, holder, other)
        async with storage.transaction() as tx:
            assert await tx.find_active_price("k") == holder
            assert await tx.find_active_price("nope") is None
            assert await tx.active_prices(pro.id) == [holder]
            freed = holder.model_copy(update={"lookup_key": None, "active": False})
            await tx.update_price(holder, freed)
            assert await tx.find_active_price("k") is None
            assert await tx.active_prices(pro.id) == []
            newer = price(pro, lookup_key="k")
            await tx.insert_price(newer)
            assert await tx.find_active_price("k") == newer
            assert await tx.active_prices(pro.id) == [newer]
            assert await tx.active_prices(team.id) == [other]
