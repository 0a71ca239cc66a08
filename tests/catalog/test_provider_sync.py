"""Plans and prices kept in step with the providers (localstripe and the fake MercadoPago over
HTTP, faults from a loopback proxy): the same guarantees as customers."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import stripe

from qzpay import Billing
from qzpay.catalog.models import Plan, Price
from qzpay.catalog.remote import PlanNotAtProvider
from qzpay.errors import ConflictError, ProviderSyncError
from qzpay.providers.mercadopago import MercadoPagoProvider
from qzpay.providers.stripe import StripeProvider
from tests.support.fake_mercadopago import FakeMercadoPago
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.stripe_fixtures import WEBHOOK_SECRET
from tests.support.stripe_sdk import stripe_sdk

__all__ = ["stripe_sdk"]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BACK_URL = "https://shop.example.com/back"


def slug(label: str) -> str:
    return f"{label}-{os.urandom(4).hex()}"


async def products_of(sdk: stripe.StripeClient, plan: Plan) -> list[str]:
    found: list[str] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = await sdk.v1.products.list_async(params)  # type: ignore[arg-type]
        found += [
            str(p.id)
            for p in page.data
            if (p.to_dict().get("metadata") or {}).get("qzpay_plan_id") == plan.id
        ]
        if not page.has_more or not page.data:
            return found
        params["starting_after"] = page.data[-1].id


async def prices_of(sdk: stripe.StripeClient, price: Price) -> list[str]:
    found: list[str] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = await sdk.v1.prices.list_async(params)  # type: ignore[arg-type]
        found += [
            str(p.id)
            for p in page.data
            if (p.to_dict().get("metadata") or {}).get("qzpay_price_id") == price.id
        ]
        if not page.has_more or not page.data:
            return found
        params["starting_after"] = page.data[-1].id


def signed(event_type: str, kind: str, object_id: str) -> tuple[bytes, dict[str, str]]:
    """A Stripe delivery about one object, signed as Stripe signs it."""
    payload = json.dumps(
        {
            "id": f"evt_{os.urandom(8).hex()}",
            "object": "event",
            "type": event_type,
            "data": {"object": {"id": object_id, "object": kind}},
        }
    ).encode()
    timestamp = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return payload, {"Stripe-Signature": f"t={timestamp},v1={mac.hexdigest()}"}


@pytest.fixture
async def synced(
    storage_url: str, proxied_stripe_provider: StripeProvider
) -> AsyncIterator[Billing]:
    async with Billing(storage=storage_url, provider=proxied_stripe_provider) as billing:
        yield billing


@pytest.fixture
async def logged(
    storage_url: str, proxied_stripe_provider: StripeProvider
) -> AsyncIterator[Billing]:
    async with Billing(
        storage=storage_url, provider=proxied_stripe_provider, provider_sync_errors="log"
    ) as billing:
        yield billing


async def pro_plan(billing: Billing) -> Plan:
    return await billing.plans.create(
        slug("pro"), "Pro", description="For teams", metadata={"tier": "2"}
    )


class TestStripe:
    async def test_plan_and_price_reach_stripe(
        self, synced: Billing, stripe_sdk: stripe.StripeClient
    ) -> None:
        plan = await pro_plan(synced)
        product_id = plan.provider_plan_ids["stripe"]
        product = (await stripe_sdk.v1.products.retrieve_async(product_id)).to_dict()
        assert (product["name"], product["description"], product["active"]) == (
            "Pro",
            "For teams",
            True,
        )
        assert product["metadata"] == {"tier": "2", "qzpay_plan_id": plan.id}
        price = await synced.prices.create(
            plan.id, currency="usd", unit_amount=1999, interval="month", lookup_key=slug("pro-m")
        )
        remote = (
            await stripe_sdk.v1.prices.retrieve_async(price.provider_price_ids["stripe"])
        ).to_dict()
        assert remote["product"] == product_id
        assert (remote["currency"], remote["unit_amount"]) == ("usd", 1999)
        assert remote["recurring"]["interval"] == "month"
        assert remote["lookup_key"] == price.lookup_key
        assert remote["metadata"]["qzpay_price_id"] == price.id
        assert await synced.prices.get(price.id) == price
        assert (
            await synced.prices.get_by_external_id(
                price.provider_price_ids["stripe"], provider="stripe"
            )
            == price
        )

    async def test_updates_reach_stripe(
        self, synced: Billing, stripe_sdk: stripe.StripeClient
    ) -> None:
        plan = await pro_plan(synced)
        await synced.plans.update(plan.id, name="Pro+", metadata={"tier": None, "x": "1"})
        product = (
            await stripe_sdk.v1.products.retrieve_async(plan.provider_plan_ids["stripe"])
        ).to_dict()
        assert product["name"] == "Pro+"
        assert product["metadata"] == {"x": "1", "qzpay_plan_id": plan.id}
        price = await synced.prices.create(
            plan.id, currency="usd", unit_amount=500, interval="year"
        )
        key = slug("annual")
        await synced.prices.update(price.id, lookup_key=key, metadata={"a": "b"})
        remote = (
            await stripe_sdk.v1.prices.retrieve_async(price.provider_price_ids["stripe"])
        ).to_dict()
        assert remote["lookup_key"] == key
        assert remote["metadata"]["a"] == "b"

    async def test_archive_reaches_stripe(
        self, synced: Billing, stripe_sdk: stripe.StripeClient
    ) -> None:
        plan = await pro_plan(synced)
        first = await synced.prices.create(
            plan.id, currency="usd", unit_amount=900, interval="month"
        )
        second = await synced.prices.create(
            plan.id, currency="usd", unit_amount=0, interval="month"
        )
        archived = await synced.prices.archive(first.id)
        assert not archived.active
        remote = await stripe_sdk.v1.prices.retrieve_async(first.provider_price_ids["stripe"])
        assert remote.to_dict()["active"] is False
        events = [e.type async for e in _events(synced)]
        assert "price.archived" in events

        archived_plan = await synced.plans.archive(plan.id)
        assert not archived_plan.active
        product = await stripe_sdk.v1.products.retrieve_async(plan.provider_plan_ids["stripe"])
        assert product.to_dict()["active"] is False
        remote = await stripe_sdk.v1.prices.retrieve_async(second.provider_price_ids["stripe"])
        assert remote.to_dict()["active"] is False
        stored = await synced.prices.get(second.id)
        assert stored is not None
        assert not stored.active
        with pytest.raises(ConflictError) as refused:
            await synced.prices.create(plan.id, currency="usd", unit_amount=1, interval="month")
        assert refused.value.code == "plan_archived"

    async def test_ambiguous_plan_create_makes_one_product(
        self, synced: Billing, fault_proxy: FaultProxy, stripe_sdk: stripe.StripeClient
    ) -> None:
        fault_proxy.inject(Fault.drop(), method="POST", path="/v1/products")
        plan = await pro_plan(synced)
        assert await products_of(stripe_sdk, plan) == [plan.provider_plan_ids["stripe"]]

    async def test_ambiguous_price_create_makes_one_price(
        self, synced: Billing, fault_proxy: FaultProxy, stripe_sdk: stripe.StripeClient
    ) -> None:
        plan = await pro_plan(synced)
        fault_proxy.inject(Fault.drop(), method="POST", path="/v1/prices")
        price = await synced.prices.create(
            plan.id, currency="usd", unit_amount=700, interval="week"
        )
        assert await prices_of(stripe_sdk, price) == [price.provider_price_ids["stripe"]]

    async def test_clean_failure_leaves_nothing(
        self, synced: Billing, fault_proxy: FaultProxy
    ) -> None:
        fault_proxy.inject(Fault.respond(400), method="POST", path="/v1/products")
        key = slug("refused")
        with pytest.raises(ProviderSyncError):
            await synced.plans.create(key, "Refused")
        assert await synced.plans.get_by_key(key) is None
        report = await synced.catalog.sync_pending()
        assert report.completed == 0

    async def test_duplicate_key_is_refused_before_stripe(
        self, synced: Billing, fault_proxy: FaultProxy
    ) -> None:
        plan = await pro_plan(synced)
        before = len(fault_proxy.matching("POST", "/v1/products"))
        with pytest.raises(ConflictError) as refused:
            await synced.plans.create(plan.key, "Again")
        assert refused.value.code == "plan_key_taken"
        assert len(fault_proxy.matching("POST", "/v1/products")) == before

    async def test_idempotent_create_replays(self, synced: Billing) -> None:
        key = slug("pk")
        first = await synced.plans.create(key, "Once", idempotency_key=f"idem-{key}")
        again = await synced.plans.create(key, "Once", idempotency_key=f"idem-{key}")
        assert again == first

    async def test_price_of_plan_not_at_stripe_fails_cleanly(
        self, tmp_path: Any, stripe_provider: StripeProvider
    ) -> None:
        storage_url = f"sqlite:///{tmp_path / 'two.db'}"
        async with Billing(storage=storage_url) as local:
            plan = await pro_plan(local)
        async with Billing(storage=storage_url, provider=stripe_provider) as synced:
            with pytest.raises(PlanNotAtProvider) as refused:
                await synced.prices.create(plan.id, currency="usd", unit_amount=1, interval="day")
            assert refused.value.code == "plan_not_at_provider"
            assert (await synced.prices.list(plan_id=plan.id)).total == 0


class TestLogMode:
    async def test_local_commit_then_sync_pending(
        self, logged: Billing, fault_proxy: FaultProxy, stripe_sdk: stripe.StripeClient
    ) -> None:
        async with fault_proxy.refusing():
            plan = await pro_plan(logged)
            price = await logged.prices.create(
                plan.id, currency="usd", unit_amount=1200, interval="month"
            )
        assert plan.provider_plan_ids == {}
        assert price.provider_price_ids == {}
        assert await logged.plans.get(plan.id) == plan

        report = await logged.catalog.sync_pending()
        assert (report.completed, report.failed) == (2, 0)
        synced_plan = await logged.plans.get(plan.id)
        synced_price = await logged.prices.get(price.id)
        assert synced_plan is not None
        assert synced_price is not None
        assert await products_of(stripe_sdk, plan) == [synced_plan.provider_plan_ids["stripe"]]
        assert await prices_of(stripe_sdk, price) == [synced_price.provider_price_ids["stripe"]]

    async def test_archive_in_log_mode_is_pushed_later(
        self, logged: Billing, fault_proxy: FaultProxy, stripe_sdk: stripe.StripeClient
    ) -> None:
        plan = await pro_plan(logged)
        price = await logged.prices.create(plan.id, currency="usd", unit_amount=300, interval="day")
        async with fault_proxy.refusing():
            archived = await logged.prices.archive(price.id)
        assert not archived.active
        remote = await stripe_sdk.v1.prices.retrieve_async(price.provider_price_ids["stripe"])
        assert remote.to_dict()["active"] is True
        report = await logged.prices.sync_pending()
        assert report.completed == 1
        remote = await stripe_sdk.v1.prices.retrieve_async(price.provider_price_ids["stripe"])
        assert remote.to_dict()["active"] is False


class TestStripeWebhooks:
    async def test_dashboard_changes_are_applied(
        self, synced: Billing, stripe_sdk: stripe.StripeClient
    ) -> None:
        plan = await pro_plan(synced)
        price = await synced.prices.create(
            plan.id, currency="usd", unit_amount=100, interval="month"
        )
        product_id = plan.provider_plan_ids["stripe"]
        await stripe_sdk.v1.products.update_async(
            product_id, {"name": "Renamed at Stripe", "metadata": {"tier": "3"}}
        )
        payload, headers = signed("product.updated", "product", product_id)
        result = await synced.webhooks.handle("stripe", payload, headers)
        assert (result.status, result.record_id) == ("applied", plan.id)
        stored = await synced.plans.get(plan.id)
        assert stored is not None
        assert (stored.name, stored.metadata) == ("Renamed at Stripe", {"tier": "3"})
        assert (await synced.webhooks.handle("stripe", payload, headers)).status == "duplicate"

        price_id = price.provider_price_ids["stripe"]
        await stripe_sdk.v1.prices.update_async(price_id, {"active": False})
        payload, headers = signed("price.updated", "price", price_id)
        result = await synced.webhooks.handle("stripe", payload, headers)
        assert (result.status, result.record_id) == ("applied", price.id)
        archived = await synced.prices.get(price.id)
        assert archived is not None
        assert not archived.active
        types = [e.type async for e in _events(synced)]
        assert types[-1] == "price.archived"

    async def test_unknown_product_is_ignored(self, synced: Billing) -> None:
        payload, headers = signed("product.updated", "product", "prod_unknown")
        assert (await synced.webhooks.handle("stripe", payload, headers)).status == "ignored"


class TestMercadoPago:
    async def test_paid_price_is_a_preapproval_plan_and_free_has_none(
        self,
        storage_url: str,
        make_mercadopago_provider: Any,
        fake_mercadopago: FakeMercadoPago,
    ) -> None:
        provider: MercadoPagoProvider = make_mercadopago_provider(back_url=BACK_URL)
        async with Billing(storage=storage_url, provider=provider) as billing:
            plan = await pro_plan(billing)
            assert plan.provider_plan_ids == {}
            paid = await billing.prices.create(
                plan.id, currency="brl", unit_amount=4990, interval="month", trial_days=7
            )
            free = await billing.prices.create(
                plan.id, currency="BRL", unit_amount=0, interval="month"
            )
            copies = fake_mercadopago.preapproval_plans(external_reference=paid.id)
            assert [c["id"] for c in copies] == [paid.provider_price_ids["mercadopago"]]
            assert copies[0]["auto_recurring"]["transaction_amount"] == 49.9
            assert copies[0]["auto_recurring"]["currency_id"] == "BRL"
            assert free.provider_price_ids == {}
            assert fake_mercadopago.preapproval_plans(external_reference=free.id) == []

            await billing.prices.archive(paid.id)
            (copy,) = fake_mercadopago.preapproval_plans(external_reference=paid.id)
            assert copy["status"] == "cancelled"


async def _events(billing: Billing) -> AsyncIterator[Any]:
    """Every event, in commit order."""
    after = None
    while True:
        batch = await billing.events.list(after=after, limit=100)
        for event in batch:
            yield event
        if len(batch) < 100:
            return
        after = batch[-1].id


class TestLookupKeyMovedAtStripe:
    async def test_the_takers_delivery_first_moves_the_key_here_too(
        self, synced: Billing, stripe_sdk: stripe.StripeClient
    ) -> None:
        """Regression: Stripe's ``transfer_lookup_key`` moves a key between prices and sends
        ``price.updated`` for both, in any order; applying the taker's first used to fail on
        the local one-active-holder rule (lookup_key_taken), now the holder gives it up."""
        plan = await pro_plan(synced)
        key = slug("moving")
        holder = await synced.prices.create(
            plan.id, currency="usd", unit_amount=100, interval="month", lookup_key=key
        )
        taker = await synced.prices.create(
            plan.id, currency="usd", unit_amount=200, interval="month"
        )
        taker_id = taker.provider_price_ids["stripe"]
        await stripe_sdk.v1.prices.update_async(
            taker_id, {"lookup_key": key, "transfer_lookup_key": True}
        )
        payload, headers = signed("price.updated", "price", taker_id)
        result = await synced.webhooks.handle("stripe", payload, headers)
        assert (result.status, result.record_id) == ("applied", taker.id)
        moved = await synced.prices.get_by_lookup_key(key)
        assert moved is not None
        assert moved.id == taker.id
        released = await synced.prices.get(holder.id)
        assert released is not None
        assert released.lookup_key is None
        holder_id = holder.provider_price_ids["stripe"]
        payload, headers = signed("price.updated", "price", holder_id)
        late = await synced.webhooks.handle("stripe", payload, headers)
        assert late.status in ("applied", "duplicate")
        assert (await synced.prices.get_by_lookup_key(key)) == moved


class TestApplyWithFaults:
    async def test_a_failure_mid_apply_leaves_no_duplicate_and_a_rerun_finishes(
        self, synced: Billing, fault_proxy: FaultProxy, stripe_sdk: stripe.StripeClient
    ) -> None:
        """catalog.apply with Stripe: the third Stripe price create fails (a 500, so it may
        have landed), apply raises; what was applied stays applied, and running apply again
        finishes the rest with exactly one Stripe object per plan and price."""
        key = slug("apply")
        spec: dict[str, Any] = {
            "plans": [
                {
                    "key": f"{key}-{n}",
                    "name": f"Plan {n}",
                    "prices": [
                        {
                            "lookup_key": f"{key}-{n}-{interval}",
                            "currency": "USD",
                            "unit_amount": 1000 * (n + 1),
                            "interval": interval,
                        }
                        for interval in ("month", "year")
                    ],
                }
                for n in range(2)
            ]
        }
        fault_proxy.inject(
            Fault.server_error(),
            method="POST",
            path="/v1/prices",
            where=lambda _: len(fault_proxy.matching("POST", "/v1/prices")) >= 3,
        )
        with pytest.raises(ProviderSyncError):
            await synced.catalog.apply(spec)
        remaining = await synced.catalog.diff(spec)
        assert 0 < len(remaining) < 6
        await synced.catalog.sync_pending()
        await synced.catalog.apply(spec)
        assert not await synced.catalog.diff(spec)
        for n in range(2):
            plan = await synced.plans.get_by_key(f"{key}-{n}")
            assert plan is not None
            assert await products_of(stripe_sdk, plan) == [plan.provider_plan_ids["stripe"]]
            for interval in ("month", "year"):
                price = await synced.prices.get_by_lookup_key(f"{key}-{n}-{interval}")
                assert price is not None
                assert await prices_of(stripe_sdk, price) == [price.provider_price_ids["stripe"]]
