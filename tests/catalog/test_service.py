"""billing.plans, billing.prices and billing.catalog on the engine: every test runs against
memory, SQLite and PostgreSQL (the ``billing`` fixture)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from qzpay import Billing
from qzpay.catalog.models import Plan, Price
from qzpay.errors import ConflictError, NotFoundError, ValidationError


async def events(billing: Billing) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [(e.type, e.data.id, e.previous) for e in await billing.events.list(limit=1000)]


async def monthly(billing: Billing, plan: Plan, **changes: Any) -> Price:
    fields: dict[str, Any] = {"currency": "usd", "unit_amount": 1999, "interval": "month"}
    fields.update(changes)
    return await billing.prices.create(plan.id, **fields)


class TestPlans:
    async def test_create_get_and_read_back(self, billing: Billing) -> None:
        plan = await billing.plans.create(
            "pro",
            "Pro",
            description="For teams",
            entitlements=["api", "sso", "api"],
            limits={"seats": 5},
            metadata={"tier": "2"},
        )
        assert plan.id.startswith("plan_")
        assert plan.entitlements == ["api", "sso"]
        assert plan.active
        assert plan.provider_plan_ids == {}
        assert plan.created_at == plan.updated_at
        assert await billing.plans.get(plan.id) == plan
        assert await billing.plans.get_by_key("pro") == plan
        assert await billing.plans.get("plan_unknown") is None
        assert await billing.plans.get_by_key("nope") is None
        assert await billing.plans.get_by_external_id("prod_1") is None
        assert await events(billing) == [("plan.created", plan.id, None)]

    async def test_bad_input_is_one_validation_error(self, billing: Billing) -> None:
        with pytest.raises(ValidationError) as caught:
            await billing.plans.create("Pro!", "", entitlements=["ok", "Bad"], limits={"x": -1})
        fields = {error["field"] for error in caught.value.errors}
        assert {"key", "name", "entitlements[1]"} <= fields
        assert await billing.plans.list() == await billing.plans.list(active=None)
        assert (await billing.plans.list()).total == 0

    async def test_duplicate_key_conflicts(self, billing: Billing) -> None:
        await billing.plans.create("pro", "Pro")
        with pytest.raises(ConflictError) as caught:
            await billing.plans.create("pro", "Other")
        assert caught.value.code == "plan_key_taken"

    async def test_update_replaces_lists_and_merges_metadata(self, billing: Billing) -> None:
        plan = await billing.plans.create(
            "pro", "Pro", entitlements=["a"], limits={"x": 1}, metadata={"k": "v", "gone": "1"}
        )
        updated = await billing.plans.update(
            plan.id, name="Pro+", entitlements=["b"], limits={}, metadata={"gone": None, "n": "2"}
        )
        assert updated.name == "Pro+"
        assert updated.entitlements == ["b"]
        assert updated.limits == {}
        assert updated.metadata == {"k": "v", "n": "2"}
        assert updated.updated_at >= plan.updated_at
        assert await billing.plans.update(plan.id, name="Pro+") == updated  # no change
        logged = await events(billing)
        assert [t for t, _, _ in logged] == ["plan.created", "plan.updated"]
        assert logged[1][2] == {
            "name": "Pro",
            "entitlements": ["a"],
            "limits": {"x": 1},
            "metadata": {"k": "v", "gone": "1"},
        }

    async def test_unknown_ids(self, billing: Billing) -> None:
        with pytest.raises(NotFoundError):
            await billing.plans.update("plan_unknown", name="x")
        with pytest.raises(NotFoundError):
            await billing.plans.archive("plan_unknown")
        with pytest.raises(NotFoundError):
            await billing.prices.create(
                "plan_unknown", currency="USD", unit_amount=1, interval="day"
            )
        with pytest.raises(NotFoundError):
            await billing.prices.update("price_unknown", metadata={"a": "b"})
        with pytest.raises(NotFoundError):
            await billing.prices.archive("price_unknown")
        with pytest.raises(ValidationError):
            await billing.plans.get(123)  # type: ignore[arg-type]

    async def test_idempotency_key(self, billing: Billing) -> None:
        first = await billing.plans.create("pro", "Pro", idempotency_key="req-1")
        again = await billing.plans.create("pro", "Pro", idempotency_key="req-1")
        assert again == first
        with pytest.raises(ConflictError) as caught:
            await billing.plans.create("pro", "Other name", idempotency_key="req-1")
        assert caught.value.code == "idempotency_key_reused"
        assert [t for t, _, _ in await events(billing)] == ["plan.created"]

    async def test_concurrent_creates_with_one_key_make_one_plan(self, billing: Billing) -> None:
        made = await asyncio.gather(
            *(billing.plans.create("pro", "Pro", idempotency_key="same") for _ in range(4))
        )
        assert len({plan.id for plan in made}) == 1
        assert (await billing.plans.list()).total == 1

    async def test_archive_cascades_to_active_prices(self, billing: Billing) -> None:
        plan = await billing.plans.create("pro", "Pro")
        other = await billing.plans.create("team", "Team")
        live = await monthly(billing, plan, lookup_key="pro_m")
        gone = await billing.prices.archive((await monthly(billing, plan, unit_amount=5)).id)
        kept = await monthly(billing, other)
        archived = await billing.plans.archive(plan.id)
        assert not archived.active
        assert await billing.plans.archive(plan.id) == archived  # twice: no change
        now_live = await billing.prices.get(live.id)
        assert now_live is not None
        assert not now_live.active
        assert now_live.lookup_key == "pro_m"  # kept, but no longer looked up
        assert await billing.prices.get_by_lookup_key("pro_m") is None
        assert await billing.prices.get(kept.id) == kept
        assert await billing.prices.get(gone.id) == gone
        logged = await events(billing)
        tail = logged[-2:]
        assert tail == [
            ("plan.archived", plan.id, {"active": True}),
            ("price.archived", live.id, {"active": True}),
        ]
        # Archived plans cannot change or get new prices.
        with pytest.raises(ConflictError) as caught:
            await monthly(billing, plan)
        assert caught.value.code == "plan_archived"
        with pytest.raises(ConflictError) as caught:
            await billing.plans.update(plan.id, name="x")
        assert caught.value.code == "plan_archived"
        assert (await billing.plans.list(active=False)).data == [archived]
        assert [p.id for p in (await billing.plans.list(active=True)).data] == [other.id]
        assert [p.id async for p in billing.plans.iterate(page_size=1)] == [other.id, plan.id]


class TestPrices:
    async def test_create_and_read(self, billing: Billing) -> None:
        plan = await billing.plans.create("pro", "Pro")
        price = await monthly(billing, plan, lookup_key="pro_monthly", trial_days=14)
        assert price.id.startswith("price_")
        assert price.currency == "USD"
        assert price.unit_amount == 1999
        assert price.interval_count == 1
        assert await billing.prices.get(price.id) == price
        assert await billing.prices.get_by_lookup_key("pro_monthly") == price
        assert await billing.prices.get_by_lookup_key("nope") is None
        assert await billing.prices.get_by_external_id("price_x", provider="stripe") is None
        assert (await billing.prices.list(plan_id=plan.id, currency="usd")).data == [price]
        assert (await billing.prices.list(currency="EUR")).total == 0
        assert [p async for p in billing.prices.iterate(active=True)] == [price]

    async def test_values_are_never_coerced(self, billing: Billing) -> None:
        plan = await billing.plans.create("pro", "Pro")
        with pytest.raises(ValidationError) as caught:
            await billing.prices.create(
                plan.id,
                currency="usd",
                unit_amount="1999",  # type: ignore[arg-type]
                interval="fortnight",  # type: ignore[arg-type]
            )
        fields = {error["field"] for error in caught.value.errors}
        assert fields == {"unit_amount", "interval"}

    async def test_lookup_key_taken_on_create(self, billing: Billing) -> None:
        plan = await billing.plans.create("pro", "Pro")
        await monthly(billing, plan, lookup_key="k")
        with pytest.raises(ConflictError) as caught:
            await monthly(billing, plan, lookup_key="k")
        assert caught.value.code == "lookup_key_taken"

    async def test_moving_a_lookup_key_updates_both(self, billing: Billing) -> None:
        plan = await billing.plans.create("pro", "Pro")
        old = await monthly(billing, plan, lookup_key="pro_monthly")
        new = await monthly(billing, plan, unit_amount=2499)
        moved = await billing.prices.update(new.id, lookup_key="pro_monthly")
        assert moved.lookup_key == "pro_monthly"
        freed = await billing.prices.get(old.id)
        assert freed is not None
        assert freed.lookup_key is None
        assert freed.active
        assert await billing.prices.get_by_lookup_key("pro_monthly") == moved
        assert (await events(billing))[-2:] == [
            ("price.updated", old.id, {"lookup_key": "pro_monthly"}),
            ("price.updated", new.id, {"lookup_key": None}),
        ]

    async def test_archive_and_update_archived(self, billing: Billing) -> None:
        plan = await billing.plans.create("pro", "Pro")
        price = await monthly(billing, plan, lookup_key="k", metadata={"a": "1"})
        archived = await billing.prices.archive(price.id)
        assert not archived.active
        assert archived.lookup_key == "k"
        assert await billing.prices.archive(price.id) == archived
        updated = await billing.prices.update(price.id, metadata={"a": None, "b": "2"})
        assert updated.metadata == {"b": "2"}
        assert not updated.active
        taker = await monthly(billing, plan, lookup_key="k")  # free among active prices
        assert await billing.prices.get_by_lookup_key("k") == taker
        assert [t for t, _, _ in await events(billing)] == [
            "plan.created",
            "price.created",
            "price.archived",
            "price.updated",
            "price.created",
        ]

    async def test_idempotency_key(self, billing: Billing) -> None:
        plan = await billing.plans.create("pro", "Pro")
        first = await monthly(billing, plan, idempotency_key="p-1")
        assert await monthly(billing, plan, idempotency_key="p-1") == first
        with pytest.raises(ConflictError) as caught:
            await monthly(billing, plan, unit_amount=1, idempotency_key="p-1")
        assert caught.value.code == "idempotency_key_reused"
        assert (await billing.prices.list()).total == 1


SPEC: dict[str, Any] = {
    "plans": [
        {
            "key": "pro",
            "name": "Pro",
            "entitlements": ["api"],
            "limits": {"seats": 5},
            "prices": [
                {
                    "lookup_key": "pro_monthly",
                    "currency": "USD",
                    "unit_amount": 1999,
                    "interval": "month",
                },
                {
                    "lookup_key": "pro_yearly",
                    "currency": "USD",
                    "unit_amount": 19990,
                    "interval": "year",
                    "metadata": {"best": "value"},
                },
            ],
        },
        {"key": "free", "name": "Free", "prices": []},
    ]
}


class TestCatalog:
    async def test_apply_twice_changes_nothing_the_second_time(self, billing: Billing) -> None:
        planned = await billing.catalog.diff(SPEC)
        assert len(planned) == 4
        applied = await billing.catalog.apply(SPEC)
        assert applied == planned
        logged = await events(billing)
        assert sorted(t for t, _, _ in logged) == [
            "plan.created",
            "plan.created",
            "price.created",
            "price.created",
        ]
        assert not await billing.catalog.diff(SPEC)
        assert not await billing.catalog.apply(SPEC)
        assert await events(billing) == logged
        pro = await billing.plans.get_by_key("pro")
        assert pro is not None
        assert pro.limits == {"seats": 5}
        yearly = await billing.prices.get_by_lookup_key("pro_yearly")
        assert yearly is not None
        assert yearly.plan_id == pro.id
        assert yearly.metadata == {"best": "value"}

    async def test_apply_updates_replaces_and_archives(self, billing: Billing) -> None:
        await billing.catalog.apply(SPEC)
        old = await billing.prices.get_by_lookup_key("pro_monthly")
        assert old is not None
        changed: dict[str, Any] = {
            "plans": [
                {
                    "key": "pro",
                    "name": "Pro 2",
                    "entitlements": ["api"],
                    "limits": {"seats": 5},
                    "prices": [
                        {
                            "lookup_key": "pro_monthly",
                            "currency": "USD",
                            "unit_amount": 2499,
                            "interval": "month",
                        }
                    ],
                }
            ]
        }
        applied = await billing.catalog.apply(changed, archive_missing=True)
        assert applied.summary() == (
            "1 plan to update, 1 plan to archive, 1 price to replace, 1 price to archive"
        )
        new = await billing.prices.get_by_lookup_key("pro_monthly")
        assert new is not None
        assert new.unit_amount == 2499
        assert new.id != old.id
        replaced = await billing.prices.get(old.id)
        assert replaced is not None
        assert not replaced.active
        assert replaced.lookup_key is None
        assert await billing.prices.get_by_lookup_key("pro_yearly") is None
        free = await billing.plans.get_by_key("free")
        assert free is not None
        assert not free.active
        assert not await billing.catalog.diff(changed, archive_missing=True)
        before = await events(billing)
        assert not await billing.catalog.apply(changed, archive_missing=True)
        assert await events(billing) == before

    async def test_toml_file(self, billing: Billing, tmp_path: Any) -> None:
        path = tmp_path / "catalog.toml"
        path.write_text(
            '[[plans]]\nkey = "pro"\nname = "Pro"\n\n[[plans.prices]]\n'
            'lookup_key = "pro_m"\ncurrency = "eur"\nunit_amount = 900\ninterval = "month"\n'
        )
        assert len(await billing.catalog.apply(path)) == 2
        assert not await billing.catalog.apply(str(path))
        price = await billing.prices.get_by_lookup_key("pro_m")
        assert price is not None
        assert price.currency == "EUR"
