"""``billing.catalog.reconcile``: plans and prices compared with a provider's, drift made
outside qzpay (through the Stripe SDK, or MercadoPago's fake), reported, fixed, then in sync.

Each Stripe test has a private localstripe (started in under a second), so that the report
covers every object there and ``in_sync`` can be asserted."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import stripe

from qzpay import Billing
from qzpay.catalog.models import Plan
from qzpay.errors import ValidationError
from qzpay.providers.stripe import StripeProvider
from tests.support.fake_mercadopago import ACCESS_TOKEN as MP_TOKEN
from tests.support.fake_mercadopago import FakeMercadoPago
from tests.support.localstripe import start_localstripe
from tests.support.stripe_sdk import stripe_sdk

__all__ = ["stripe_sdk"]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def localstripe_url() -> Iterator[str]:
    """A localstripe of this test's own (the session's is shared by every test)."""
    server = start_localstripe()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def synced(storage_url: str, stripe_provider: StripeProvider) -> AsyncIterator[Billing]:
    async with Billing(storage=storage_url, provider=stripe_provider) as billing:
        yield billing


def slug(label: str) -> str:
    return f"{label}-{os.urandom(4).hex()}"


async def unlink(billing: Billing, plan: Plan) -> None:
    """Forget the plan's Stripe link in the store only (as a lost write would)."""
    async with billing.storage.transaction() as tx:
        before = await tx.get_plan(plan.id)
        assert before is not None
        await tx.update_plan(before, before.model_copy(update={"provider_plan_ids": {}}))


async def test_reports_then_fixes_what_is_safe(
    synced: Billing, stripe_sdk: stripe.StripeClient
) -> None:
    kept = await synced.plans.create(slug("kept"), "Kept")
    kept_price = await synced.prices.create(
        kept.id, currency="usd", unit_amount=900, interval="month"
    )
    renamed = await synced.plans.create(slug("renamed"), "Local name")
    deactivated = await synced.prices.create(
        renamed.id, currency="usd", unit_amount=100, interval="year"
    )
    relinked = await synced.plans.create(slug("relinked"), "Relinked")
    gone_here = await synced.plans.create(slug("gone"), "Archived here")
    assert (await synced.catalog.reconcile("stripe")).in_sync

    await stripe_sdk.v1.products.update_async(
        renamed.provider_plan_ids["stripe"], {"name": "Edited at Stripe"}
    )
    await stripe_sdk.v1.prices.update_async(
        deactivated.provider_price_ids["stripe"], {"active": False}
    )
    twin = await stripe_sdk.v1.products.create_async(
        {"name": "Kept again", "metadata": {"qzpay_plan_id": kept.id}}
    )
    stranger = await stripe_sdk.v1.products.create_async(
        {"name": "Stranger", "metadata": {"qzpay_plan_id": "plan_nobodyknowsme000000000"}}
    )
    outside = await stripe_sdk.v1.products.create_async({"name": "Made in the dashboard"})
    await unlink(synced, relinked)
    async with synced.storage.transaction() as tx:  # archived without telling Stripe
        before = await tx.get_plan(gone_here.id)
        assert before is not None
        await tx.update_plan(before, before.model_copy(update={"active": False}))

    report = await synced.catalog.reconcile("stripe")
    assert not report.in_sync
    assert (report.local_plans, report.provider_plans) == (4, 7)
    assert (report.local_prices, report.provider_prices) == (2, 2)
    assert report.unlinked == [relinked.id]
    assert report.duplicates.keys() == {kept.id}
    assert sorted(report.duplicates[kept.id]) == sorted([kept.provider_plan_ids["stripe"], twin.id])
    assert report.missing_locally == [stranger.id]
    assert report.unmanaged == [outside.id]
    assert report.archived_locally_active_at_provider == [gone_here.id]
    drift = {d.record_id: (d.kind, d.fields) for d in report.drift}
    assert drift == {
        renamed.id: ("plan", {"name": ("Local name", "Edited at Stripe")}),
        deactivated.id: ("price", {"active": (True, False)}),
    }
    assert report.missing_at_provider == []
    assert report.fixed == []
    assert kept_price.id not in str(report)

    fixed = await synced.catalog.reconcile("stripe", fix=True)
    assert sorted(fixed.fixed) == sorted(
        [
            f"linked {relinked.id} to {relinked.provider_plan_ids['stripe']}",
            f"pushed name of {renamed.id} to stripe",
            f"archived {deactivated.id}: its stripe copy is archived",
            f"archived stripe copy {gone_here.provider_plan_ids['stripe']} "
            f"of archived {gone_here.id}",
        ]
    )
    product = await stripe_sdk.v1.products.retrieve_async(renamed.provider_plan_ids["stripe"])
    assert product.to_dict()["name"] == "Local name"
    # Archived at Stripe, so archived here (as the webhook would), with its event; not revived.
    price = await stripe_sdk.v1.prices.retrieve_async(deactivated.provider_price_ids["stripe"])
    assert price.to_dict()["active"] is False
    stored = await synced.prices.get(deactivated.id)
    assert stored is not None
    assert stored.active is False
    log = await synced.events.list(limit=1000)
    assert deactivated.id in {e.data.id for e in log if e.type == "price.archived"}
    archived = await stripe_sdk.v1.products.retrieve_async(gone_here.provider_plan_ids["stripe"])
    assert archived.to_dict()["active"] is False
    assert (await _stored(synced, relinked.id)).provider_plan_ids == relinked.provider_plan_ids

    # Not safe to repair: still reported. Once they are dealt with by hand, all is in sync.
    after = await synced.catalog.reconcile("stripe")
    assert (list(after.duplicates), after.missing_locally) == ([kept.id], [stranger.id])
    assert after.unlinked == []
    assert after.drift == []
    assert after.archived_locally_active_at_provider == []
    for extra in (twin.id, stranger.id):
        await stripe_sdk.v1.products.update_async(extra, {"active": False})
    final = await synced.catalog.reconcile("stripe")
    assert final.in_sync, final
    assert final.unmanaged == [outside.id]  # reported, never a difference


async def test_fix_creates_what_is_missing_at_stripe(
    storage_url: str, stripe_provider: StripeProvider, stripe_sdk: stripe.StripeClient
) -> None:
    """A plan and its price made before Stripe was configured are created there by fix (the
    plan first: the price needs its product)."""
    if storage_url == "memory://":
        pytest.skip("needs two Billing instances on one store")
    async with Billing(storage=storage_url) as local:
        plan = await local.plans.create(slug("offline"), "Offline", metadata={"a": "b"})
        price = await local.prices.create(plan.id, currency="eur", unit_amount=500, interval="week")
        async with Billing(storage=storage_url, provider=stripe_provider) as synced:
            report = await synced.catalog.reconcile("stripe")
            assert report.unlinked == [plan.id, price.id]
            fixed = await synced.catalog.reconcile("stripe", fix=True)
            assert not fixed.conflicts
            stored_plan, stored_price = (
                await synced.plans.get(plan.id),
                await synced.prices.get(price.id),
            )
            assert stored_plan is not None
            assert stored_price is not None
            product_id = stored_plan.provider_plan_ids["stripe"]
            remote = (
                await stripe_sdk.v1.prices.retrieve_async(stored_price.provider_price_ids["stripe"])
            ).to_dict()
            assert (remote["product"], remote["unit_amount"]) == (product_id, 500)
            assert remote["metadata"]["qzpay_price_id"] == price.id
            assert fixed.fixed == [
                f"created stripe plan {product_id} for {plan.id}",
                f"created stripe price {remote['id']} for {price.id}",
            ]
            assert (await synced.catalog.reconcile("stripe")).in_sync


async def test_unknown_provider_is_a_validation_error(synced: Billing) -> None:
    with pytest.raises(ValidationError):
        await synced.catalog.reconcile("mercadopago")


async def test_mercadopago_paid_price_missing_there_is_created(
    storage_url: str, make_mercadopago_provider: Any, isolated_mercadopago: FakeMercadoPago
) -> None:
    """MercadoPago has no plans and no object for a free price: only the paid price is
    compared, and fix creates it."""
    if storage_url == "memory://":
        pytest.skip("needs two Billing instances on one store")
    fake = isolated_mercadopago
    provider = make_mercadopago_provider(api_base=fake.url, back_url="https://shop.example/b")
    async with Billing(storage=storage_url) as local:
        plan = await local.plans.create(slug("mp"), "MP plan")
        paid = await local.prices.create(
            plan.id, currency="BRL", unit_amount=4990, interval="month"
        )
        await local.prices.create(plan.id, currency="BRL", unit_amount=0, interval="month")
    async with Billing(storage=storage_url, provider=provider) as billing:
        report = await billing.catalog.reconcile("mercadopago")
        assert report.unlinked == [paid.id]
        assert (report.local_plans, report.local_prices) == (0, 1)
        fixed = await billing.catalog.reconcile("mercadopago", fix=True)
        (copy,) = fake.preapproval_plans(external_reference=paid.id)
        assert fixed.fixed == [f"created mercadopago price {copy['id']} for {paid.id}"]
        stored = await billing.prices.get(paid.id)
        assert stored is not None
        assert stored.provider_price_ids == {"mercadopago": copy["id"]}
        assert copy["auto_recurring"]["transaction_amount"] == 49.9
        assert (await billing.catalog.reconcile("mercadopago")).in_sync


async def _stored(billing: Billing, plan_id: str) -> Plan:
    stored = await billing.plans.get(plan_id)
    assert stored is not None
    return stored


async def test_mercadopago_amount_edited_there_is_drift_and_put_back(
    storage_url: str, make_mercadopago_provider: Any, isolated_mercadopago: FakeMercadoPago
) -> None:
    """A price's terms never change in qzpay: a MercadoPago copy charging another amount (an
    edit in its dashboard) is drift, and fix puts qzpay's amount back."""
    fake = isolated_mercadopago
    provider = make_mercadopago_provider(api_base=fake.url, back_url="https://shop.example/b")
    async with Billing(storage=storage_url, provider=provider) as billing:
        plan = await billing.plans.create(slug("mp-terms"), "MP terms")
        price = await billing.prices.create(
            plan.id, currency="BRL", unit_amount=4990, interval="month"
        )
        remote_id = price.provider_price_ids["mercadopago"]
        body = {"auto_recurring": {"transaction_amount": 59.9}}
        assert (
            await asyncio.to_thread(_put, f"{fake.url}/preapproval_plan/{remote_id}", body) == 200
        )
        report = await billing.catalog.reconcile("mercadopago")
        assert not report.in_sync
        (drift,) = [d for d in report.drift if d.record_id == price.id]
        assert drift.fields == {"unit_amount": (4990, 5990)}
        fixed = await billing.catalog.reconcile("mercadopago", fix=True)
        assert f"pushed unit_amount of {price.id} to mercadopago" in fixed.fixed
        assert fixed.conflicts == {}
        copy = fake.preapproval_plan(remote_id)
        assert copy is not None
        assert copy["auto_recurring"]["transaction_amount"] == 49.9
        assert (await billing.catalog.reconcile("mercadopago")).in_sync


def _put(url: str, body: dict[str, Any]) -> int:
    """A PUT to the loopback fake, as its dashboard would edit an object; the status."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {MP_TOKEN}", "Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(request) as answer:  # the loopback fake only
        return int(answer.status)
