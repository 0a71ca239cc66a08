"""Subscriptions kept without a provider (free prices), on every backend: create, changes,
due transitions, entitlements and their events."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from qzpay import Billing
from qzpay.errors import ConflictError, NotFoundError, ValidationError
from qzpay.events import Event
from qzpay.subscriptions.models import EntitlementsChange
from tests.factories import create_customer, idempotency_key
from tests.subscriptions.factories import Catalog, make_catalog


@pytest.fixture
async def catalog(billing: Billing) -> Catalog:
    return await make_catalog(billing)


def recorder(billing: Billing) -> list[Event[Any]]:
    seen: list[Event[Any]] = []
    billing.on("subscription.*", seen.append)
    billing.on("customer.entitlements_changed", seen.append)
    return seen


def access_changes(events: list[Event[Any]]) -> list[tuple[list[str], list[str]]]:
    found = []
    for event in events:
        if event.type == "customer.entitlements_changed":
            assert isinstance(event.data, EntitlementsChange)
            found.append((event.data.before, event.data.after))
    return found


class TestCreate:
    async def test_free_price_is_active_at_once(self, billing: Billing, catalog: Catalog) -> None:
        customer = await create_customer(billing)
        seen = recorder(billing)
        sub = await billing.subscriptions.create(customer.id, catalog.free.id, metadata={"a": "b"})
        assert sub.status == "active"
        assert sub.provider is None
        assert sub.provider_subscription_id is None
        assert sub.plan_id == catalog.free_plan.id
        assert sub.trial_end is None  # a price's trial never applies to a free price
        assert sub.current_period_end - sub.current_period_start == timedelta(days=7)
        assert await billing.subscriptions.get(sub.id) == sub
        assert [e.type for e in seen] == ["subscription.created", "customer.entitlements_changed"]
        assert access_changes(seen) == [([], ["api", "reports"])]
        assert await billing.entitlements.list(customer.id) == ["api", "reports"]
        stored = await billing.events.list(limit=100)
        assert [e.type for e in stored][-2:] == [
            "subscription.created",
            "customer.entitlements_changed",
        ]

    async def test_paid_price_needs_a_provider(self, billing: Billing, catalog: Catalog) -> None:
        customer = await create_customer(billing)
        with pytest.raises(ConflictError) as caught:
            await billing.subscriptions.create(customer.id, catalog.paid.id)
        assert caught.value.code == "provider_required"
        assert (await billing.subscriptions.list()).total == 0
        assert await billing.entitlements.list(customer.id) == []

    async def test_refusals_create_nothing(self, billing: Billing, catalog: Catalog) -> None:
        customer = await create_customer(billing)
        gone = await create_customer(billing)
        await billing.customers.delete(gone.id)
        with pytest.raises(ConflictError) as deleted:
            await billing.subscriptions.create(gone.id, catalog.free.id)
        assert deleted.value.code == "customer_deleted"
        await billing.prices.archive(catalog.old_free.id)
        with pytest.raises(ConflictError) as archived:
            await billing.subscriptions.create(customer.id, catalog.old_free.id)
        assert archived.value.code == "price_archived"
        with pytest.raises(NotFoundError):
            await billing.subscriptions.create("cus_unknown", catalog.free.id)
        with pytest.raises(NotFoundError):
            await billing.subscriptions.create(customer.id, "price_unknown")
        with pytest.raises(ValidationError) as invalid:
            await billing.subscriptions.create(
                customer.id, catalog.free.id, quantity=0, trial_days=-1, provider="Bad!"
            )
        assert {p["field"] for p in invalid.value.errors} == {"quantity", "trial_days", "provider"}
        with pytest.raises(ValidationError) as unknown_provider:
            await billing.subscriptions.create(customer.id, catalog.free.id, provider="stripe")
        assert unknown_provider.value.errors[0]["code"] == "unknown_provider"
        with pytest.raises(ValidationError) as reserved:
            await billing.subscriptions.create(
                customer.id, catalog.free.id, metadata={"qzpay_subscription_id": "x"}
            )
        assert reserved.value.errors[0]["code"] == "reserved_key"
        assert (await billing.subscriptions.list()).total == 0

    async def test_idempotency_key_replays(self, billing: Billing, catalog: Catalog) -> None:
        customer = await create_customer(billing)
        key = idempotency_key()
        seen = recorder(billing)
        first = await billing.subscriptions.create(
            customer.id, catalog.free.id, idempotency_key=key
        )
        again = await billing.subscriptions.create(
            customer.id, catalog.free.id, idempotency_key=key
        )
        assert again == first
        assert [e.type for e in seen].count("subscription.created") == 1
        with pytest.raises(ConflictError) as reused:
            await billing.subscriptions.create(
                customer.id, catalog.free.id, quantity=2, idempotency_key=key
            )
        assert reused.value.code == "idempotency_key_reused"

    async def test_concurrent_creates_with_one_key_make_one(
        self, billing: Billing, catalog: Catalog
    ) -> None:
        customer = await create_customer(billing)
        key = idempotency_key()
        made = await asyncio.gather(
            *[
                billing.subscriptions.create(customer.id, catalog.free.id, idempotency_key=key)
                for _ in range(5)
            ]
        )
        assert len({sub.id for sub in made}) == 1
        assert (await billing.subscriptions.list(customer_id=customer.id)).total == 1


class TestChanges:
    async def test_pause_grants_nothing_until_resumed(
        self, billing: Billing, catalog: Catalog
    ) -> None:
        customer = await create_customer(billing)
        sub = await billing.subscriptions.create(customer.id, catalog.free.id)
        seen = recorder(billing)
        paused = await billing.subscriptions.pause(sub.id)
        assert paused.status == "paused"
        assert not await billing.entitlements.check(customer.id, "api")
        assert await billing.limits.get(customer.id, "projects") is None
        assert await billing.subscriptions.pause(sub.id) == paused  # no change, no event
        resumed = await billing.subscriptions.resume(sub.id)
        assert resumed.status == "active"
        assert await billing.entitlements.check(customer.id, "api")
        assert access_changes(seen) == [(["api", "reports"], []), ([], ["api", "reports"])]
        updates = [e for e in seen if e.type == "subscription.updated"]
        assert [e.previous for e in updates] == [{"status": "active"}, {"status": "paused"}]

    async def test_cancel_at_period_end_keeps_access_until_the_end(
        self, billing: Billing, catalog: Catalog
    ) -> None:
        customer = await create_customer(billing)
        sub = await billing.subscriptions.create(customer.id, catalog.free.id)
        seen = recorder(billing)
        scheduled = await billing.subscriptions.cancel(sub.id)
        assert scheduled.cancel_at_period_end
        assert scheduled.status == "active"
        assert scheduled.canceled_at is not None
        assert await billing.entitlements.check(customer.id, "api")
        assert access_changes(seen) == []
        kept = await billing.subscriptions.uncancel(sub.id)
        assert not kept.cancel_at_period_end
        assert kept.canceled_at is None
        await billing.subscriptions.cancel(sub.id)
        report = await billing.subscriptions.run_due(sub.current_period_end - timedelta(seconds=1))
        assert (report.renewed, report.canceled) == (0, 0)
        report = await billing.subscriptions.run_due(sub.current_period_end)
        assert (report.renewed, report.canceled) == (0, 1)
        ended = await billing.subscriptions.get(sub.id)
        assert ended is not None
        assert ended.status == "canceled"
        assert ended.ended_at == sub.current_period_end
        assert seen[-2].type == "subscription.canceled"
        assert access_changes(seen) == [(["api", "reports"], [])]
        with pytest.raises(ConflictError) as too_late:
            await billing.subscriptions.uncancel(sub.id)
        assert too_late.value.code == "subscription_ended"
        assert await billing.subscriptions.cancel(sub.id) == ended

    async def test_cancel_now(self, billing: Billing, catalog: Catalog) -> None:
        customer = await create_customer(billing)
        sub = await billing.subscriptions.create(customer.id, catalog.free.id)
        seen = recorder(billing)
        ended = await billing.subscriptions.cancel(sub.id, at_period_end=False)
        assert ended.status == "canceled"
        assert ended.ended_at is not None
        assert [e.type for e in seen] == ["subscription.canceled", "customer.entitlements_changed"]
        with pytest.raises(ConflictError):
            await billing.subscriptions.pause(sub.id)

    async def test_change_price_moves_the_plan_and_its_access(
        self, billing: Billing, catalog: Catalog
    ) -> None:
        customer = await create_customer(billing)
        sub = await billing.subscriptions.create(customer.id, catalog.free.id)
        seen = recorder(billing)
        moved = await billing.subscriptions.change_price(sub.id, catalog.team_free.id, quantity=3)
        assert (moved.price_id, moved.plan_id, moved.quantity) == (
            catalog.team_free.id,
            catalog.team_plan.id,
            3,
        )
        assert access_changes(seen) == [(["api", "reports"], ["api", "sso"])]
        assert await billing.limits.get(customer.id, "projects") == 10
        with pytest.raises(ConflictError) as paid:
            await billing.subscriptions.change_price(sub.id, catalog.paid.id)
        assert paid.value.code == "provider_required"

    async def test_limits_take_the_largest_and_entitlements_the_union(
        self, billing: Billing, catalog: Catalog
    ) -> None:
        customer = await create_customer(billing)
        await billing.subscriptions.create(customer.id, catalog.free.id)
        seen = recorder(billing)
        await billing.subscriptions.create(customer.id, catalog.team_free.id)
        assert await billing.entitlements.list(customer.id) == ["api", "reports", "sso"]
        assert await billing.limits.get(customer.id, "projects") == 10
        assert await billing.limits.get(customer.id, "seats") == 5
        assert await billing.limits.get(customer.id, "unknown") is None
        assert await billing.entitlements.check(customer.id, "sso")
        assert not await billing.entitlements.check(customer.id, "audit")
        assert not await billing.entitlements.check("cus_nobody", "api")
        assert access_changes(seen) == [(["api", "reports"], ["api", "reports", "sso"])]
        with pytest.raises(ValidationError):
            await billing.entitlements.check(customer.id, "Not A Key")


class TestDue:
    async def test_roll_over_starts_exactly_at_the_old_end(
        self, billing: Billing, catalog: Catalog
    ) -> None:
        customer = await create_customer(billing)
        sub = await billing.subscriptions.create(customer.id, catalog.free.id)
        seen = recorder(billing)
        later = sub.current_period_end + timedelta(days=8)  # two weekly periods have ended
        report = await billing.subscriptions.run_due(later)
        assert (report.renewed, report.canceled) == (2, 0)
        now = await billing.subscriptions.get(sub.id)
        assert now is not None
        assert now.current_period_start == sub.current_period_end + timedelta(days=7)
        assert now.current_period_end == sub.current_period_end + timedelta(days=14)
        starts = [e.data.current_period_start for e in seen]
        assert starts == [sub.current_period_end, sub.current_period_end + timedelta(days=7)]
        assert access_changes(seen) == []
        assert (await billing.subscriptions.run_due(later)).renewed == 0

    async def test_workers_at_once_apply_each_transition_once(
        self, billing: Billing, catalog: Catalog, storage_url: str
    ) -> None:
        customer = await create_customer(billing)
        subs = [await billing.subscriptions.create(customer.id, catalog.free.id) for _ in range(6)]
        later = subs[-1].current_period_end + timedelta(seconds=1)
        others = (
            [] if storage_url == "memory://" else [Billing(storage=storage_url) for _ in range(2)]
        )
        try:
            workers = [billing, *others]
            reports = await asyncio.gather(
                *[worker.subscriptions.run_due(later) for worker in workers for _ in range(2)]
            )
        finally:
            for other in others:
                await other.close()
        assert sum(report.renewed for report in reports) == len(subs)
        seen = await billing.events.list(limit=1000)
        updates = [e for e in seen if e.type == "subscription.updated"]
        assert sorted(e.data.id for e in updates) == sorted(s.id for s in subs)


class TestReads:
    async def test_list_filters_iterate_and_validation(
        self, billing: Billing, catalog: Catalog
    ) -> None:
        one, two = await create_customer(billing), await create_customer(billing)
        a = await billing.subscriptions.create(one.id, catalog.free.id)
        b = await billing.subscriptions.create(two.id, catalog.team_free.id)
        c = await billing.subscriptions.create(one.id, catalog.team_free.id)
        await billing.subscriptions.pause(c.id)
        page = await billing.subscriptions.list()
        assert [s.id for s in page.data] == [c.id, b.id, a.id]
        assert page.total == 3
        assert [s.id for s in (await billing.subscriptions.list(customer_id=one.id)).data] == [
            c.id,
            a.id,
        ]
        assert [s.id for s in (await billing.subscriptions.list(status="paused")).data] == [c.id]
        by_plan = await billing.subscriptions.list(plan_id=catalog.team_plan.id)
        assert [s.id for s in by_plan.data] == [c.id, b.id]
        walked = [s.id async for s in billing.subscriptions.iterate(page_size=1)]
        assert walked == [c.id, b.id, a.id]
        with pytest.raises(ValidationError) as invalid:
            await billing.subscriptions.list(status="gone", limit=0)  # type: ignore[arg-type]
        assert {p["field"] for p in invalid.value.errors} == {"status", "limit"}
        assert await billing.subscriptions.get_by_external_id("sub_nowhere") is None
        assert await billing.subscriptions.get("sub_unknown") is None
