"""What only Stripe does in the catalog: plans as Products (round trip, partial updates,
archive, delete refused once it has prices, find after an ambiguous create), the price wire
format (form fields, lookup key transfer), and the events of the extended localstripe
(``tests/support/localstripe_prices.py``) driven through the official SDK.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable

import aiohttp
import pytest
import stripe

from qzpay.errors import ProviderSyncError
from qzpay.providers.base import QZPAY_PLAN_ID_KEY, PriceUpdate, plans_of, prices_of
from qzpay.providers.stripe import StripeProvider
from tests.factories import idempotency_key as key
from tests.providers.catalog_factories import changed, stored_plan, stored_price
from tests.providers.contract.kit import SDK_WARNING
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.localstripe import mute_webhook, register_webhook
from tests.support.stripe_fixtures import WEBHOOK_SECRET
from tests.support.stripe_sdk import stripe_sdk
from tests.support.webhook_receiver import Delivery, WebhookReceiver

__all__ = ["stripe_sdk"]

pytestmark = pytest.mark.filterwarnings(SDK_WARNING)


async def test_a_plan_is_a_product_with_our_id(stripe_provider: StripeProvider) -> None:
    plan = stored_plan(description="Everything")

    created = await stripe_provider.plans.create(plan, idempotency_key=key())

    assert (created.name, created.description, created.active) == ("Pro", "Everything", True)
    assert created.metadata == {"tier": "gold", QZPAY_PLAN_ID_KEY: plan.id}
    assert created.qzpay_plan_id == plan.id
    assert await stripe_provider.plans.retrieve(created.id) == created
    assert await stripe_provider.plans.find(plan) == created
    assert stripe_provider.plans.merge_remote(plan, created) == plan
    assert plans_of(stripe_provider) is stripe_provider.plans
    assert prices_of(stripe_provider) is stripe_provider.prices


async def test_a_plan_update_sends_only_what_changed(
    stripe_provider: StripeProvider,
    proxied_stripe_provider: StripeProvider,
    fault_proxy: FaultProxy,
) -> None:
    before = stored_plan(metadata={"tier": "gold", "old": "1"})
    created = await stripe_provider.plans.create(before, idempotency_key=key())
    after = changed(
        before,
        description=None,
        metadata={"tier": "platinum"},
        entitlements=["api"],  # kept in qzpay only
        limits={"seats": 50},
    )

    updated = await proxied_stripe_provider.plans.update(
        created.id, before, after, idempotency_key=key()
    )

    [sent] = [r for r in fault_proxy.requests if r.method == "POST"]
    assert sent.form() == {"description": "", "metadata[tier]": "platinum", "metadata[old]": ""}
    assert (updated.description, updated.metadata) == (
        None,
        {"tier": "platinum", QZPAY_PLAN_ID_KEY: before.id},
    )
    assert stripe_provider.plans.merge_remote(after, updated) == after


async def test_archive_and_dashboard_drift_are_merged(
    stripe_provider: StripeProvider, stripe_sdk: stripe.StripeClient
) -> None:
    plan = stored_plan()
    created = await stripe_provider.plans.create(plan, idempotency_key=key())
    await stripe_sdk.v1.products.update_async(created.id, {"name": "Pro (2025)"})
    await stripe_provider.plans.archive(created.id, idempotency_key=key())

    remote = await stripe_provider.plans.retrieve(created.id)

    assert remote is not None
    merged = stripe_provider.plans.merge_remote(plan, remote)
    assert (merged.name, merged.active, merged.key) == ("Pro (2025)", False, plan.key)
    assert remote.id in [p.id async for p in stripe_provider.plans.list()]


async def test_undoing_a_plan_create_deletes_it_or_archives_one_with_prices(
    stripe_provider: StripeProvider,
) -> None:
    bare = await stripe_provider.plans.create(stored_plan(), idempotency_key=key())
    await stripe_provider.plans.delete(bare.id, idempotency_key=key())
    assert await stripe_provider.plans.retrieve(bare.id) is None

    plan = stored_plan()
    made = await stripe_provider.plans.create(plan, idempotency_key=key())
    linked = plan.model_copy(update={"provider_plan_ids": {"stripe": made.id}})
    await stripe_provider.prices.create(stored_price(linked), plan=linked, idempotency_key=key())
    await stripe_provider.plans.delete(made.id, idempotency_key=key())  # refused: archived

    remote = await stripe_provider.plans.retrieve(made.id)
    assert remote is not None
    assert remote.active is False


@pytest.mark.parametrize("spec", ["drop", "reset", 500], ids=["drop", "reset", "500"])
async def test_an_ambiguous_plan_create_is_found_not_duplicated(
    stripe_provider: StripeProvider,
    proxied_stripe_provider: StripeProvider,
    fault_proxy: FaultProxy,
    spec: str | int,
) -> None:
    plan = stored_plan()
    injected = Fault.drop() if spec == "drop" else Fault.reset() if spec == "reset" else None
    fault_proxy.inject(injected or Fault.server_error(), method="POST", path="/v1/products")

    with pytest.raises(ProviderSyncError) as caught:
        await proxied_stripe_provider.plans.create(plan, idempotency_key=key())

    assert (caught.value.operation, caught.value.ambiguous) == ("create_plan", True)
    found = await stripe_provider.plans.find(plan)
    assert (found is not None) == (spec == "drop")
    if found is None:  # the sync machinery creates only after looking
        found = await stripe_provider.plans.create(plan, idempotency_key=key())
    matching = [p.id async for p in stripe_provider.plans.list() if p.qzpay_plan_id == plan.id]
    assert matching == [found.id]


async def test_a_price_on_the_wire(
    stripe_provider: StripeProvider,
    proxied_stripe_provider: StripeProvider,
    fault_proxy: FaultProxy,
) -> None:
    made = await stripe_provider.plans.create(stored_plan(), idempotency_key=key())
    plan = stored_plan(provider_plan_ids={"stripe": made.id})
    lookup = f"pro_monthly_{os.urandom(4).hex()}"
    price = stored_price(
        plan, currency="JPY", unit_amount=1500, interval="week", interval_count=2, trial_days=7
    )
    price = price.model_copy(update={"lookup_key": lookup})

    created = await proxied_stripe_provider.prices.create(price, plan=plan, idempotency_key="k-1")

    [sent] = fault_proxy.matching("POST", "/v1/prices")
    assert sent.headers["idempotency-key"] == "k-1"
    assert sent.form() == {
        "product": made.id,
        "currency": "jpy",
        "unit_amount": "1500",
        "recurring[interval]": "week",
        "recurring[interval_count]": "2",
        "active": "true",
        "metadata[campaign]": "launch",
        "metadata[qzpay_price_id]": price.id,
        "lookup_key": lookup,
        "transfer_lookup_key": "true",
    }  # no trial: Stripe deprecated price-level trials
    assert created is not None
    assert (created.currency, created.unit_amount, created.interval) == ("JPY", 1500, "week")
    assert (created.provider_plan_id, created.lookup_key, created.trial_days) == (
        made.id,
        lookup,
        None,
    )


async def test_a_lookup_key_moves_to_a_replacement_price(
    stripe_provider: StripeProvider, stripe_sdk: stripe.StripeClient
) -> None:
    made = await stripe_provider.plans.create(stored_plan(), idempotency_key=key())
    plan = stored_plan(provider_plan_ids={"stripe": made.id})
    lookup = f"pro_{os.urandom(4).hex()}"
    old = stored_price(plan, lookup_key=lookup)
    old_copy = await stripe_provider.prices.create(old, plan=plan, idempotency_key=key())
    assert old_copy is not None
    await stripe_provider.prices.archive(old_copy.id, idempotency_key=key())

    new = stored_price(plan, unit_amount=2499, lookup_key=lookup)
    new_copy = await stripe_provider.prices.create(new, plan=plan, idempotency_key=key())

    assert new_copy is not None
    listed = await stripe_sdk.v1.prices.list_async({"lookup_keys": [lookup]})
    assert [p.id for p in listed.data] == [new_copy.id]
    old_remote = await stripe_provider.prices.retrieve(old_copy.id)
    assert old_remote is not None
    assert stripe_provider.prices.merge_remote(old, old_remote).lookup_key is None

    renamed = await stripe_provider.prices.update(
        new_copy.id,
        PriceUpdate(new, changed(new, lookup_key=None, metadata={}), plan),
        idempotency_key=key(),
    )
    assert (renamed.lookup_key, renamed.metadata) == (None, {"qzpay_price_id": new.id})


async def test_a_price_needs_its_plan_at_stripe_first(
    proxied_stripe_provider: StripeProvider, fault_proxy: FaultProxy
) -> None:
    plan = stored_plan()  # not linked to a product

    with pytest.raises(ProviderSyncError) as caught:
        await proxied_stripe_provider.prices.create(
            stored_price(plan), plan=plan, idempotency_key=key()
        )

    assert (caught.value.operation, caught.value.ambiguous) == ("create_price", False)
    assert fault_proxy.requests == []
    assert await proxied_stripe_provider.prices.find(stored_price(plan), plan=plan) is None


async def test_localstripe_sends_price_and_product_events(
    stripe_provider: StripeProvider, stripe_sdk: stripe.StripeClient, localstripe_url: str
) -> None:
    name = f"qzpay-catalog-{os.urandom(4).hex()}"
    wanted = ["price.updated", "price.deleted", "product.updated"]
    async with WebhookReceiver() as receiver:
        await register_webhook(
            localstripe_url, name, url=receiver.url, secret=WEBHOOK_SECRET, events=wanted
        )
        try:
            made = await stripe_provider.plans.create(stored_plan(), idempotency_key=key())
            plan = stored_plan(provider_plan_ids={"stripe": made.id})
            price = await stripe_provider.prices.create(
                stored_price(plan), plan=plan, idempotency_key=key()
            )
            assert price is not None
            await stripe_sdk.v1.products.update_async(made.id, {"name": "Renamed"})
            await stripe_sdk.v1.prices.update_async(price.id, {"active": False})
            dashboard_delete = f"{localstripe_url}/_config/prices/{price.id}"
            async with aiohttp.ClientSession() as session, session.delete(dashboard_delete) as r:
                assert r.status == 200
            async with asyncio.timeout(10):
                product_event = await receiver.wait_for(_about("product.updated", made.id))
                price_event = await receiver.wait_for(_about("price.updated", price.id))
                deleted = await receiver.wait_for(_about("price.deleted", price.id))
        finally:
            await mute_webhook(localstripe_url, name)

    product_body = json.loads(product_event.body)
    assert product_body["data"]["object"]["id"] == made.id
    assert product_body["data"]["previous_attributes"] == {"name": "Pro"}
    price_body = json.loads(price_event.body)
    assert price_body["data"]["object"]["id"] == price.id
    assert price_body["data"]["previous_attributes"] == {"active": True}
    event = stripe_provider.parse_webhook(price_event.body, price_event.headers)
    assert event.type == "price.updated"
    assert json.loads(deleted.body)["data"]["object"]["id"] == price.id
    assert await stripe_provider.prices.retrieve(price.id) is None


def _about(kind: str, object_id: str) -> Callable[[Delivery], bool]:
    def matches(delivery: Delivery) -> bool:
        event = json.loads(delivery.body)
        return bool(event["type"] == kind and event["data"]["object"]["id"] == object_id)

    return matches
