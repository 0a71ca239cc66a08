"""Subscriptions billed by Stripe through Billing, on every backend, against the extended
localstripe with real signed deliveries: incomplete until Stripe says it is paid, trials,
changes provider-first, deliveries duplicated and out of order, an ambiguous create, a
subscription made outside qzpay adopted, reconcile, and "log" mode."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import stripe

from qzpay import Billing
from qzpay.errors import ConflictError, ProviderSyncError
from qzpay.events import Event
from qzpay.providers.stripe import StripeProvider
from qzpay.providers.stripe.subscriptions import subscription_id_of_event
from qzpay.subscriptions.models import EntitlementsChange, Subscription
from tests.providers.contract.kit import SDK_WARNING
from tests.providers.test_stripe_subscriptions import advance, give_card, post
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.localstripe import mute_webhook, register_webhook
from tests.support.stripe_fixtures import WEBHOOK_SECRET, ProviderFactory, unique_email
from tests.support.stripe_sdk import stripe_sdk
from tests.support.webhook_receiver import Delivery, WebhookReceiver

__all__ = ["stripe_sdk"]

pytestmark = pytest.mark.filterwarnings(SDK_WARNING)

EVENTS = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
]
SUBSCRIPTIONS = "/v1/subscriptions"


@contextlib.asynccontextmanager
async def stripe_billing(
    storage_url: str, provider: StripeProvider, localstripe_url: str, **options: Any
) -> AsyncIterator[tuple[Billing, WebhookReceiver]]:
    name = f"qzpay-billed-{os.urandom(4).hex()}"
    async with WebhookReceiver() as receiver:
        await register_webhook(
            localstripe_url, name, url=receiver.url, secret=WEBHOOK_SECRET, events=EVENTS
        )
        try:
            async with Billing(storage=storage_url, provider=provider, **options) as billing:
                yield billing, receiver
        finally:
            await mute_webhook(localstripe_url, name)


class Shop:
    """A Billing on localstripe (through a fault proxy), a customer and a catalog."""

    def __init__(self, billing: Billing, receiver: WebhookReceiver) -> None:
        self.billing = billing
        self.receiver = receiver

    async def setup(self) -> Shop:
        billing = self.billing
        tag = os.urandom(3).hex()
        self.plan = await billing.plans.create(
            f"pro-{tag}", "Pro", entitlements=["api", "sso"], limits={"seats": 5}
        )
        self.monthly = await billing.prices.create(
            self.plan.id, currency="usd", unit_amount=1999, interval="month"
        )
        self.trial = await billing.prices.create(
            self.plan.id, currency="usd", unit_amount=1999, interval="month", trial_days=14
        )
        team = await billing.plans.create(f"team-{tag}", "Team", entitlements=["api", "audit"])
        self.team_monthly = await billing.prices.create(
            team.id, currency="usd", unit_amount=4999, interval="month"
        )
        self.customer = await billing.customers.create(email=unique_email("sub"))
        return self

    @property
    def stripe_customer(self) -> str:
        return self.customer.provider_customer_ids["stripe"]

    async def deliver(self, kind: str, remote_id: str) -> str:
        """Wait for localstripe's delivery of ``kind`` about ``remote_id``; hand it to Billing."""

        def matches(delivery: Delivery) -> bool:
            event = json.loads(delivery.body)
            return event["type"] == kind and subscription_id_of_event(event) == remote_id

        async with asyncio.timeout(15):
            found = await self.receiver.wait_for(matches)
        self.receiver.deliveries.remove(found)
        result = await self.billing.webhooks.handle("stripe", found.body, found.headers)
        return result.status


@pytest.fixture
async def shop(
    storage_url: str,
    make_stripe_provider: ProviderFactory,
    fault_proxy: FaultProxy,
    localstripe_url: str,
) -> AsyncIterator[Shop]:
    provider = make_stripe_provider(api_base=fault_proxy.url)
    async with stripe_billing(storage_url, provider, localstripe_url) as (billing, receiver):
        yield await Shop(billing, receiver).setup()


def access(events: list[Event[Any]]) -> list[tuple[list[str], list[str]]]:
    return [(e.data.before, e.data.after) for e in events if isinstance(e.data, EntitlementsChange)]


def recorder(billing: Billing) -> list[Event[Any]]:
    seen: list[Event[Any]] = []
    billing.on("subscription.*", seen.append)
    billing.on("customer.entitlements_changed", seen.append)
    return seen


async def active(shop: Shop, stripe_sdk: stripe.StripeClient, **create: Any) -> Subscription:
    await give_card(stripe_sdk, shop.stripe_customer)
    sub = await shop.billing.subscriptions.create(shop.customer.id, shop.monthly.id, **create)
    assert sub.status == "active"
    return sub


class TestFirstPayment:
    async def test_incomplete_until_stripe_says_it_is_paid(self, shop: Shop) -> None:
        billing = shop.billing
        seen = recorder(billing)
        sub = await billing.subscriptions.create(shop.customer.id, shop.monthly.id, quantity=2)
        assert sub.status == "incomplete"
        assert sub.provider == "stripe"
        assert sub.payment_url is not None
        assert sub.provider_subscription_id is not None
        assert not await billing.entitlements.check(shop.customer.id, "api")
        remote_id = sub.provider_subscription_id
        assert await shop.deliver("customer.subscription.created", remote_id) == "applied"
        still = await billing.subscriptions.get(sub.id)
        assert still is not None
        assert still.status == "incomplete"
        status, _ = await post(f"{sub.payment_url}/pay")
        assert status == 200
        assert await shop.deliver("customer.subscription.updated", remote_id) == "applied"
        assert await shop.deliver("invoice.paid", remote_id) == "applied"
        paid = await billing.subscriptions.get(sub.id)
        assert paid is not None
        assert (paid.status, paid.payment_url, paid.quantity) == ("active", None, 2)
        assert await billing.entitlements.list(shop.customer.id) == ["api", "sso"]
        assert access(seen) == [([], ["api", "sso"])]  # exactly once, when the status flipped

    async def test_a_default_card_pays_at_once(
        self, shop: Shop, stripe_sdk: stripe.StripeClient
    ) -> None:
        sub = await active(shop, stripe_sdk)
        assert sub.payment_url is None
        assert await shop.billing.entitlements.check(shop.customer.id, "sso")

    async def test_a_trial_grants_access_without_a_charge(self, shop: Shop) -> None:
        billing = shop.billing
        sub = await billing.subscriptions.create(shop.customer.id, shop.trial.id)
        assert sub.status == "trialing"
        assert sub.trial_end is not None
        assert sub.trial_start is not None
        assert sub.trial_end - sub.trial_start == timedelta(days=14)
        assert await billing.entitlements.check(shop.customer.id, "api")
        none = await billing.subscriptions.create(shop.customer.id, shop.trial.id, trial_days=0)
        assert none.status == "incomplete"
        assert none.trial_end is None

    async def test_an_unlinked_customer_is_refused_before_stripe(self, shop: Shop) -> None:
        billing = shop.billing
        await billing.customers.unlink(shop.customer.id, provider="stripe")
        with pytest.raises(ConflictError) as caught:
            await billing.subscriptions.create(shop.customer.id, shop.monthly.id)
        assert caught.value.code == "customer_not_linked"


class TestDeliveries:
    async def test_duplicated_and_out_of_order_deliveries_end_at_stripes_state(
        self, shop: Shop, localstripe_url: str
    ) -> None:
        billing = shop.billing
        sub = await billing.subscriptions.create(shop.customer.id, shop.trial.id)
        remote_id = str(sub.provider_subscription_id)
        await advance(localstripe_url, remote_id)  # the trial ends: billed, no card: fails
        await advance(localstripe_url, remote_id, decline="true")
        kinds = ["customer.subscription.created", "customer.subscription.updated"]
        found: list[Delivery] = []
        async with asyncio.timeout(15):
            while len(found) < 3:
                await asyncio.sleep(0.05)
                found = [
                    d
                    for d in shop.receiver.deliveries
                    if json.loads(d.body)["type"] in kinds
                    and subscription_id_of_event(json.loads(d.body)) == remote_id
                ]
        shuffled = found + found  # every delivery twice, in a shuffled order
        random.Random(7).shuffle(shuffled)
        statuses = [
            (await billing.webhooks.handle("stripe", d.body, d.headers)).status for d in shuffled
        ]
        assert statuses.count("duplicate") >= len(found)
        current = await shop.billing.subscriptions.get(sub.id)
        at_stripe = await billing.subscriptions.adapter_of("stripe").retrieve(remote_id)  # type: ignore[union-attr]
        assert current is not None
        assert at_stripe is not None
        assert (current.status, current.current_period_end) == (
            at_stripe.status,
            at_stripe.current_period_end,
        )

    async def test_a_subscription_made_outside_qzpay_is_adopted(
        self, shop: Shop, stripe_sdk: stripe.StripeClient
    ) -> None:
        await give_card(stripe_sdk, shop.stripe_customer)
        price = shop.monthly.provider_price_ids["stripe"]
        made = await stripe_sdk.v1.subscriptions.create_async(
            {"customer": shop.stripe_customer, "items": [{"price": price}]}
        )
        assert await shop.deliver("customer.subscription.created", made.id) == "applied"
        adopted = await shop.billing.subscriptions.get_by_external_id(made.id)
        assert adopted is not None
        assert (adopted.customer_id, adopted.price_id, adopted.status) == (
            shop.customer.id,
            shop.monthly.id,
            "active",
        )
        assert await shop.billing.entitlements.check(shop.customer.id, "api")


class TestChanges:
    async def test_cancel_at_period_end_then_the_period_ends(
        self, shop: Shop, stripe_sdk: stripe.StripeClient, localstripe_url: str
    ) -> None:
        billing = shop.billing
        sub = await active(shop, stripe_sdk)
        seen = recorder(billing)
        scheduled = await billing.subscriptions.cancel(sub.id)
        assert scheduled.cancel_at_period_end
        assert scheduled.status == "active"
        kept = await billing.subscriptions.uncancel(sub.id)
        assert not kept.cancel_at_period_end
        await billing.subscriptions.cancel(sub.id)
        remote_id = str(sub.provider_subscription_id)
        await advance(localstripe_url, remote_id)  # the period ends at Stripe
        assert await shop.deliver("customer.subscription.deleted", remote_id) == "applied"
        ended = await billing.subscriptions.get(sub.id)
        assert ended is not None
        assert ended.status == "canceled"
        assert access(seen) == [(["api", "sso"], [])]
        assert "subscription.canceled" in [e.type for e in seen]

    async def test_change_price_moves_plan_and_access(
        self, shop: Shop, stripe_sdk: stripe.StripeClient
    ) -> None:
        billing = shop.billing
        sub = await active(shop, stripe_sdk)
        seen = recorder(billing)
        moved = await billing.subscriptions.change_price(
            sub.id, shop.team_monthly.id, quantity=3, proration="none"
        )
        assert (moved.price_id, moved.quantity) == (shop.team_monthly.id, 3)
        assert access(seen) == [(["api", "sso"], ["api", "audit"])]

    async def test_pause_and_resume(self, shop: Shop, stripe_sdk: stripe.StripeClient) -> None:
        billing = shop.billing
        sub = await active(shop, stripe_sdk)
        assert (await billing.subscriptions.pause(sub.id)).status == "paused"
        assert await billing.entitlements.list(shop.customer.id) == []
        assert (await billing.subscriptions.resume(sub.id)).status == "active"
        assert await billing.entitlements.list(shop.customer.id) == ["api", "sso"]

    async def test_a_failed_change_leaves_both_sides_as_they_were(
        self, shop: Shop, stripe_sdk: stripe.StripeClient, fault_proxy: FaultProxy
    ) -> None:
        billing = shop.billing
        sub = await active(shop, stripe_sdk)
        fault_proxy.inject(Fault.server_error(), method="POST")
        with pytest.raises(ProviderSyncError):
            await billing.subscriptions.pause(sub.id)
        assert await billing.subscriptions.get(sub.id) == sub


class TestAmbiguity:
    async def test_an_ambiguous_change_is_settled_from_stripe_by_sync_pending(
        self, shop: Shop, stripe_sdk: stripe.StripeClient, fault_proxy: FaultProxy
    ) -> None:
        billing = shop.billing
        sub = await active(shop, stripe_sdk)
        fault_proxy.inject(Fault.drop(), method="POST")  # Stripe pauses it; no answer arrives
        with pytest.raises(ProviderSyncError) as caught:
            await billing.subscriptions.pause(sub.id)
        assert caught.value.ambiguous
        assert await billing.subscriptions.get(sub.id) == sub  # nothing stored unconfirmed
        report = await billing.subscriptions.sync_pending()
        assert (report.completed, report.failed) == (1, 0)
        settled = await billing.subscriptions.get(sub.id)
        assert settled is not None
        assert settled.status == "paused"
        assert await billing.entitlements.list(shop.customer.id) == []

    async def test_an_ambiguous_create_makes_exactly_one_stripe_subscription(
        self, shop: Shop, fault_proxy: FaultProxy, stripe_sdk: stripe.StripeClient
    ) -> None:
        billing = shop.billing
        fault_proxy.inject(Fault.drop(), method="POST", path=SUBSCRIPTIONS)
        sub = await billing.subscriptions.create(
            shop.customer.id, shop.monthly.id, idempotency_key=f"amb-{os.urandom(4).hex()}"
        )
        listed = await stripe_sdk.v1.subscriptions.list_async(
            {"customer": shop.stripe_customer, "status": "all"}
        )
        assert [s.id for s in listed.data] == [sub.provider_subscription_id]

    async def test_an_unanswered_create_is_finished_by_sync_pending(
        self, shop: Shop, fault_proxy: FaultProxy, stripe_sdk: stripe.StripeClient
    ) -> None:
        billing = shop.billing
        key = f"amb-{os.urandom(4).hex()}"
        fault_proxy.inject(Fault.reset(), method="POST", path=SUBSCRIPTIONS)
        fault_proxy.inject(Fault.reset(), method="GET", path=SUBSCRIPTIONS)  # find fails too
        with pytest.raises(ProviderSyncError) as caught:
            await billing.subscriptions.create(
                shop.customer.id, shop.monthly.id, idempotency_key=key
            )
        assert caught.value.ambiguous
        assert (await billing.subscriptions.list(customer_id=shop.customer.id)).total == 0
        report = await billing.subscriptions.sync_pending()
        assert report.completed == 1
        subs = await billing.subscriptions.list(customer_id=shop.customer.id)
        assert subs.total == 1
        again = await billing.subscriptions.create(
            shop.customer.id, shop.monthly.id, idempotency_key=key
        )
        assert again == subs.data[0]
        listed = await stripe_sdk.v1.subscriptions.list_async(
            {"customer": shop.stripe_customer, "status": "all"}
        )
        assert len(listed.data) == 1

    async def test_a_failed_look_up_after_an_ambiguous_create_keeps_the_intent(
        self, shop: Shop, fault_proxy: FaultProxy, stripe_sdk: stripe.StripeClient
    ) -> None:
        """Regression: the create lands at Stripe but its answer is lost, and the look-up that
        follows fails cleanly (a 400): the failure stays ambiguous and the intent stays, so
        sync_pending adopts the subscription instead of leaving it orphaned at Stripe."""
        billing = shop.billing
        fault_proxy.inject(Fault.drop(), method="POST", path=SUBSCRIPTIONS)
        fault_proxy.inject(Fault.respond(400), method="GET", path=SUBSCRIPTIONS)
        with pytest.raises(ProviderSyncError) as caught:
            await billing.subscriptions.create(shop.customer.id, shop.monthly.id)
        assert caught.value.ambiguous
        assert (await billing.subscriptions.sync_pending()).completed == 1
        (adopted,) = (await billing.subscriptions.list(customer_id=shop.customer.id)).data
        listed = await stripe_sdk.v1.subscriptions.list_async(
            {"customer": shop.stripe_customer, "status": "all"}
        )
        assert [s.id for s in listed.data] == [adopted.provider_subscription_id]

    async def test_a_create_finished_by_sync_pending_keeps_the_trial_asked_for(
        self, shop: Shop, fault_proxy: FaultProxy
    ) -> None:
        """Regression: the intent carries the requested trial (3 days, the price says 14), so a
        create finished later by sync_pending asks Stripe for the same trial."""
        billing = shop.billing
        key = f"trial-{os.urandom(4).hex()}"
        fault_proxy.inject(Fault.reset(), method="POST", path=SUBSCRIPTIONS)
        fault_proxy.inject(Fault.reset(), method="GET", path=SUBSCRIPTIONS)
        with pytest.raises(ProviderSyncError):
            await billing.subscriptions.create(
                shop.customer.id, shop.trial.id, trial_days=3, idempotency_key=key
            )
        assert (await billing.subscriptions.sync_pending()).completed == 1
        (done,) = (await billing.subscriptions.list(customer_id=shop.customer.id)).data
        assert done.status == "trialing"
        assert done.trial_start is not None
        assert done.trial_end is not None
        assert done.trial_end - done.trial_start == timedelta(days=3)


class TestReconcileAndLogMode:
    async def test_reconcile_reports_and_fixes_from_stripe(
        self, shop: Shop, stripe_sdk: stripe.StripeClient
    ) -> None:
        billing = shop.billing
        sub = await billing.subscriptions.create(shop.customer.id, shop.monthly.id)
        status, _ = await post(f"{sub.payment_url}/pay")  # paid; deliveries never handed over
        assert status == 200
        report = await billing.subscriptions.reconcile("stripe")
        drift = [d for d in report.drift if d.subscription_id == sub.id]
        assert drift
        assert drift[0].fields["status"] == ("incomplete", "active")
        assert not report.in_sync
        fixed = await billing.subscriptions.reconcile("stripe", fix=True)
        assert sub.id in fixed.fixed
        now = await billing.subscriptions.get(sub.id)
        assert now is not None
        assert now.status == "active"

    async def test_log_mode_commits_first_and_sync_pending_finishes(
        self,
        storage_url: str,
        make_stripe_provider: ProviderFactory,
        fault_proxy: FaultProxy,
        localstripe_url: str,
    ) -> None:
        provider = make_stripe_provider(api_base=fault_proxy.url)
        async with stripe_billing(
            storage_url, provider, localstripe_url, provider_sync_errors="log"
        ) as (billing, receiver):
            shop = await Shop(billing, receiver).setup()
            fault_proxy.inject(Fault.server_error(), method="POST", path=SUBSCRIPTIONS)
            sub = await billing.subscriptions.create(shop.customer.id, shop.monthly.id)
            assert sub.status == "incomplete"
            assert sub.provider_subscription_id is None
            assert (await billing.subscriptions.get(sub.id)) == sub
            report = await billing.subscriptions.sync_pending()
            assert report.completed == 1
            done = await billing.subscriptions.get(sub.id)
            assert done is not None
            assert done.provider_subscription_id is not None
            assert done.payment_url is not None
