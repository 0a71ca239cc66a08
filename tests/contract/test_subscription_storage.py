"""The subscriptions' storage contract: every test runs against memory, SQLite and PostgreSQL,
through the Storage / Transaction protocol alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qzpay.catalog.models import Plan, Price, plan_ids, price_ids
from qzpay.customers.models import Customer
from qzpay.errors import ConflictError
from qzpay.events import new_event
from qzpay.ids import customer_ids
from qzpay.storage import Storage, open_storage
from qzpay.storage.base import CreateKey, Grant, SubscriptionFilter
from qzpay.subscriptions.models import EntitlementsChange, Subscription, subscription_ids
from qzpay.subscriptions.registry import ENTITLEMENTS_CHANGED

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    opened = open_storage(storage_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def customer() -> Customer:
    return Customer(
        id=customer_ids.new(),
        email="sub@example.com",
        metadata={},
        provider_customer_ids={},
        created_at=T0,
        updated_at=T0,
    )


def plan(key: str, entitlements: list[str], limits: dict[str, int] | None = None) -> Plan:
    return Plan(
        id=plan_ids.new(),
        key=key,
        name=key,
        entitlements=entitlements,
        limits=limits or {},
        metadata={},
        provider_plan_ids={},
        created_at=T0,
        updated_at=T0,
    )


def price(of: Plan, unit_amount: int = 0) -> Price:
    return Price(
        id=price_ids.new(),
        plan_id=of.id,
        currency="USD",
        unit_amount=unit_amount,
        interval="month",
        metadata={},
        provider_price_ids={},
        created_at=T0,
        updated_at=T0,
    )


def subscription(owner: Customer, of: Price, **changes: Any) -> Subscription:
    fields: dict[str, Any] = {
        "id": subscription_ids.new(),
        "customer_id": owner.id,
        "price_id": of.id,
        "plan_id": of.plan_id,
        "quantity": 1,
        "status": "active",
        "current_period_start": T0,
        "current_period_end": T0 + timedelta(days=31),
        "metadata": {"k": "v ✓"},
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(changes)
    return Subscription(**fields)


class World:
    """A customer, a plan with two entitlements and a limit, and a free price of it."""

    def __init__(self) -> None:
        self.customer = customer()
        self.plan = plan("pro", ["api", "sso"], {"seats": 5})
        self.price = price(self.plan)


@pytest.fixture
async def world(storage: Storage) -> World:
    made = World()
    async with storage.transaction() as tx:
        await tx.insert_customer(made.customer)
        await tx.insert_plan(made.plan)
        await tx.insert_price(made.price)
    return made


async def insert(
    storage: Storage, *subscriptions: Subscription, key: CreateKey | None = None
) -> None:
    async with storage.transaction() as tx:
        for record in subscriptions:
            await tx.insert_subscription(record, key)


async def conflict(storage: Storage, *subscriptions: Subscription) -> str | None:
    try:
        await insert(storage, *subscriptions)
    except ConflictError as exc:
        return exc.code
    return None


class TestRecords:
    async def test_round_trip_of_every_field(self, storage: Storage, world: World) -> None:
        full = subscription(
            world.customer,
            world.price,
            quantity=3,
            status="trialing",
            trial_start=T0,
            trial_end=T0 + timedelta(days=14),
            cancel_at_period_end=True,
            canceled_at=T0 + timedelta(seconds=1),
            ended_at=T0 + timedelta(days=31),
            payment_url="https://pay.example/é",
            provider="stripe",
            provider_subscription_id="sub_stripe_1",
        )
        bare = subscription(world.customer, world.price)
        await insert(storage, full, bare)
        assert await storage.get_subscription(full.id) == full
        assert await storage.get_subscription(bare.id) == bare
        got = await storage.get_subscription(full.id)
        assert got is not None
        assert got.trial_end is not None
        assert got.trial_end.utcoffset() == timedelta(0)
        assert got.current_period_start.microsecond == 123456
        assert await storage.get_subscription("sub_missing") is None

    async def test_reads_are_copies(self, storage: Storage, world: World) -> None:
        stored = subscription(world.customer, world.price)
        await insert(storage, stored)
        got = await storage.get_subscription(stored.id)
        assert got is not None
        got.metadata["x"] = "y"
        assert await storage.get_subscription(stored.id) == stored

    async def test_update_in_a_transaction(self, storage: Storage, world: World) -> None:
        before = subscription(world.customer, world.price)
        await insert(storage, before)
        after = before.model_copy(
            update={
                "status": "canceled",
                "canceled_at": T0 + timedelta(days=1),
                "ended_at": T0 + timedelta(days=1),
                "quantity": 2,
                "metadata": {},
                "provider": "stripe",
                "provider_subscription_id": "sub_x",
                "updated_at": T0 + timedelta(days=1),
            }
        )
        async with storage.transaction() as tx:
            locked = await tx.get_subscription(before.id)
            assert locked == before
            await tx.update_subscription(before, after)
            assert await tx.get_subscription(before.id) == after
        assert await storage.get_subscription(before.id) == after

    async def test_rollback_writes_nothing(self, storage: Storage, world: World) -> None:
        stored = subscription(world.customer, world.price)

        async def insert_then_fail() -> None:
            async with storage.transaction() as tx:
                await tx.insert_subscription(stored)
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await insert_then_fail()
        assert await storage.get_subscription(stored.id) is None

    async def test_idempotency_key(self, storage: Storage, world: World) -> None:
        first = subscription(world.customer, world.price)
        await insert(storage, first, key=CreateKey("k1", "fp"))
        async with storage.transaction() as tx:
            assert await tx.find_idempotent_subscription("k1") == (first, "fp")
            assert await tx.find_idempotent_subscription("k2") is None
            assert await tx.find_idempotent_plan("k1") is None  # keys are per resource
        second = subscription(world.customer, world.price)
        with pytest.raises(ConflictError) as caught:
            await insert(storage, second, key=CreateKey("k1"))
        assert caught.value.code == "idempotency_key_reused"
        assert await storage.get_subscription(second.id) is None

    async def test_provider_id_names_one_subscription(self, storage: Storage, world: World) -> None:
        linked = subscription(
            world.customer, world.price, provider="stripe", provider_subscription_id="sub_1"
        )
        await insert(storage, linked)
        taken = subscription(
            world.customer, world.price, provider="stripe", provider_subscription_id="sub_1"
        )
        assert await conflict(storage, taken) == "provider_id_taken"
        elsewhere = subscription(
            world.customer,
            world.price,
            provider="mercadopago",
            provider_subscription_id="sub_1",
        )
        assert await conflict(storage, elsewhere) is None
        other = subscription(world.customer, world.price)
        await insert(storage, other)
        with pytest.raises(ConflictError) as caught:
            async with storage.transaction() as tx:
                await tx.update_subscription(
                    other,
                    other.model_copy(
                        update={"provider": "stripe", "provider_subscription_id": "sub_1"}
                    ),
                )
        assert caught.value.code == "provider_id_taken"
        assert await storage.get_subscription(other.id) == other
        found = await storage.find_subscriptions_by_provider_id("sub_1", provider=None)
        assert sorted(s.id for s in found) == sorted([linked.id, elsewhere.id])
        assert await storage.find_subscriptions_by_provider_id("sub_1", provider="stripe") == [
            linked
        ]
        assert await storage.find_subscriptions_by_provider_id("sub_2", provider=None) == []


class TestLists:
    async def test_filters_pages_and_scan(self, storage: Storage, world: World) -> None:
        other_customer = customer()
        basic = plan("basic", ["api"])
        basic_price = price(basic)
        async with storage.transaction() as tx:
            await tx.insert_customer(other_customer)
            await tx.insert_plan(basic)
            await tx.insert_price(basic_price)
        made = [
            subscription(world.customer, world.price),
            subscription(world.customer, basic_price, status="canceled"),
            subscription(other_customer, world.price, status="trialing"),
            subscription(other_customer, basic_price),
            subscription(world.customer, world.price, status="canceled"),
        ]
        await insert(storage, *made)
        newest_first = list(reversed(made))

        async def listed(**filters: Any) -> list[Subscription]:
            page, total = await storage.list_subscriptions(
                SubscriptionFilter(**filters), limit=100, offset=0
            )
            assert total == len(page)
            return page

        assert await listed() == newest_first
        mine = [s for s in newest_first if s.customer_id == world.customer.id]
        assert await listed(customer_id=world.customer.id) == mine
        assert await listed(status="canceled") == [made[4], made[1]]
        assert await listed(plan_id=basic.id) == [made[3], made[1]]
        assert await listed(price_id=world.price.id) == [made[4], made[2], made[0]]
        assert await listed(customer_id=world.customer.id, status="active") == [made[0]]
        assert await listed(status="paused") == []

        page, total = await storage.list_subscriptions(SubscriptionFilter(), limit=2, offset=1)
        assert (page, total) == (newest_first[1:3], 5)
        page, total = await storage.list_subscriptions(SubscriptionFilter(), limit=2, offset=10)
        assert (page, total) == ([], 5)

        walked: list[Subscription] = []
        before: str | None = None
        while True:
            chunk = await storage.scan_subscriptions(
                SubscriptionFilter(customer_id=world.customer.id), before_id=before, limit=2
            )
            if not chunk:
                break
            walked.extend(chunk)
            before = chunk[-1].id
        assert walked == mine


class TestGrants:
    async def test_only_granting_statuses_grant(self, storage: Storage, world: World) -> None:
        team = plan("team", ["sso", "audit"], {"seats": 50, "projects": 3})
        team_price = price(team)
        async with storage.transaction() as tx:
            await tx.insert_plan(team)
            await tx.insert_price(team_price)
        granting = [
            subscription(world.customer, world.price, status="active"),
            subscription(world.customer, team_price, status="past_due"),
        ]
        silent = [
            subscription(world.customer, team_price, status=status)
            for status in ("incomplete", "incomplete_expired", "unpaid", "paused", "canceled")
        ]
        await insert(storage, *granting, *silent)
        grants = await storage.grants(world.customer.id)
        assert grants == [
            Grant(granting[0].id, world.plan.id, ("api", "sso"), {"seats": 5}),
            Grant(granting[1].id, team.id, ("sso", "audit"), {"seats": 50, "projects": 3}),
        ]
        assert await storage.grants(customer().id) == []

    async def test_a_transaction_sees_its_own_changes(self, storage: Storage, world: World) -> None:
        before = subscription(world.customer, world.price, status="incomplete")
        await insert(storage, before)
        assert await storage.grants(world.customer.id) == []
        async with storage.transaction() as tx:
            assert await tx.grants(world.customer.id) == []
            after = before.model_copy(update={"status": "trialing"})
            await tx.update_subscription(before, after)
            seen = await tx.grants(world.customer.id)
            assert [g.subscription_id for g in seen] == [before.id]
            assert await storage.grants(world.customer.id) == []  # not committed yet
        assert [g.subscription_id for g in await storage.grants(world.customer.id)] == [before.id]


class TestDue:
    async def test_due_subscriptions(self, storage: Storage, world: World) -> None:
        def ending(days: int, **changes: Any) -> Subscription:
            return subscription(
                world.customer,
                world.price,
                current_period_end=T0 + timedelta(days=days),
                **changes,
            )

        late = ending(1)
        later = ending(2, cancel_at_period_end=True)
        future = ending(40)
        billed = ending(1, provider="stripe", provider_subscription_id="sub_b")
        ended = ending(1, status="canceled")
        expired = ending(1, status="incomplete_expired")
        await insert(storage, later, future, late, billed, ended, expired)
        now = T0 + timedelta(days=3)
        assert await storage.due_subscriptions(now, limit=10) == [late, later]
        assert await storage.due_subscriptions(now, limit=1) == [late]
        assert await storage.due_subscriptions(T0, limit=10) == []
        exact = T0 + timedelta(days=1)  # a period ending exactly now is due
        assert await storage.due_subscriptions(exact, limit=10) == [late]


class TestEvents:
    async def test_entitlements_changed_is_in_the_customers_timeline(
        self, storage: Storage, world: World
    ) -> None:
        data = EntitlementsChange(
            customer_id=world.customer.id, before=[], after=["api", "sso"], changed_at=T0
        )
        event = new_event(ENTITLEMENTS_CHANGED, data, id="evt_1", previous=None, created_at=T0)
        stored = subscription(world.customer, world.price)
        created = new_event(
            "subscription.created", stored, id="evt_2", previous=None, created_at=T0
        )
        async with storage.transaction() as tx:
            await tx.insert_subscription(stored)
            await tx.append_event(created)
            await tx.append_event(event)
        assert await storage.get_event("evt_1") == event
        assert await storage.get_event("evt_2") == created
        timeline = await storage.list_record_events(world.customer.id, limit=10)
        assert [e.id for e in timeline] == ["evt_1"]
        assert isinstance(timeline[0].data, EntitlementsChange)
        assert [e.id for e in await storage.list_record_events(stored.id, limit=10)] == ["evt_2"]
