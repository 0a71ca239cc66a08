"""Subscriptions billed by MercadoPago through Billing, on every backend: a preapproval made
pending for the customer's email, authorised by the payer, changed provider-first, kept current
by ``subscription_preapproval`` notifications; an ambiguous create leaves one preapproval."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from qzpay import Billing
from qzpay.errors import ConflictError, ProviderSyncError
from qzpay.events import Event
from qzpay.providers.subscriptions import SubscriptionChangeUnsupported
from qzpay.subscriptions.models import EntitlementsChange, Subscription
from tests.support.fake_mercadopago import FakeMercadoPago, unique_email
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.mercadopago_fixtures import MercadoPagoFactory

BACK_URL = "https://example.com/subscribed"
PREAPPROVAL = "/preapproval"


@pytest.fixture
async def billing_mp(
    storage_url: str, make_mercadopago_provider: MercadoPagoFactory, mercadopago_proxy: FaultProxy
) -> AsyncIterator[Billing]:
    provider = make_mercadopago_provider(back_url=BACK_URL, api_base=mercadopago_proxy.url)
    async with Billing(storage=storage_url, provider=provider) as billing:
        yield billing


class Shop:
    def __init__(self, billing: Billing) -> None:
        self.billing = billing

    async def setup(self) -> Shop:
        billing = self.billing
        plan = await billing.plans.create(
            f"pro-{unique_email('k')[:12]}".lower().replace(".", "-"),
            "Pro",
            entitlements=["api", "sso"],
        )
        self.plan = plan
        self.monthly = await billing.prices.create(
            plan.id, currency="BRL", unit_amount=2990, interval="month"
        )
        self.yearly = await billing.prices.create(
            plan.id, currency="BRL", unit_amount=29900, interval="year"
        )
        self.monthly_more = await billing.prices.create(
            plan.id, currency="BRL", unit_amount=3990, interval="month"
        )
        self.trial = await billing.prices.create(
            plan.id, currency="BRL", unit_amount=2990, interval="month", trial_days=7
        )
        free_plan = await billing.plans.create(
            f"free-{unique_email('k')[:12]}".lower().replace(".", "-"),
            "Free",
            entitlements=["api"],
        )
        self.free = await billing.prices.create(
            free_plan.id, currency="BRL", unit_amount=0, interval="month"
        )
        self.customer = await billing.customers.create(email=unique_email("sub"))
        return self


@pytest.fixture
async def shop(billing_mp: Billing) -> Shop:
    return await Shop(billing_mp).setup()


def recorder(billing: Billing) -> list[Event[Any]]:
    seen: list[Event[Any]] = []
    billing.on("subscription.*", seen.append)
    billing.on("customer.entitlements_changed", seen.append)
    return seen


async def notify(billing: Billing, fake: FakeMercadoPago) -> list[str]:
    """Deliver every notification the fake would have sent since the last call."""
    statuses: list[str] = []
    for notification in fake.preapproval_notifications():
        result = await billing.webhooks.handle(
            "mercadopago", notification.body, notification.headers, query=notification.query
        )
        statuses.append(result.status)
    return statuses


async def authorised(shop: Shop, fake: FakeMercadoPago, **create: Any) -> Subscription:
    billing = shop.billing
    sub = await billing.subscriptions.create(shop.customer.id, shop.monthly.id, **create)
    assert sub.provider_subscription_id is not None
    fake.authorize_preapproval(sub.provider_subscription_id)
    await notify(billing, fake)
    found = await billing.subscriptions.get(sub.id)
    assert found is not None
    assert found.status == "active"
    return found


class TestCreate:
    async def test_incomplete_until_the_payer_authorises(
        self, shop: Shop, fake_mercadopago: FakeMercadoPago
    ) -> None:
        billing = shop.billing
        fake_mercadopago.preapproval_notifications()  # forget earlier tests' changes
        seen = recorder(billing)
        sub = await billing.subscriptions.create(shop.customer.id, shop.monthly.id)
        assert sub.status == "incomplete"
        assert sub.provider == "mercadopago"
        assert sub.payment_url is not None
        assert sub.payment_url.startswith("http")
        copy = fake_mercadopago.preapproval(str(sub.provider_subscription_id))
        assert copy is not None
        assert copy["external_reference"] == sub.id
        assert copy["payer_email"] == shop.customer.email
        assert copy["auto_recurring"]["transaction_amount"] == 29.9
        assert copy.get("preapproval_plan_id") in (None, "")
        assert not await billing.entitlements.check(shop.customer.id, "api")
        assert await notify(billing, fake_mercadopago) in (["applied"], ["duplicate"], [])
        fake_mercadopago.authorize_preapproval(str(sub.provider_subscription_id))
        assert await notify(billing, fake_mercadopago) == ["applied"]
        active = await billing.subscriptions.get(sub.id)
        assert active is not None
        assert active.status == "active"
        assert active.payment_url is None
        assert await billing.entitlements.check(shop.customer.id, "sso")
        changes = [e.data for e in seen if isinstance(e.data, EntitlementsChange)]
        assert [(c.before, c.after) for c in changes] == [([], ["api", "sso"])]

    async def test_a_redelivery_changes_nothing(
        self, shop: Shop, fake_mercadopago: FakeMercadoPago
    ) -> None:
        billing = shop.billing
        sub = await authorised(shop, fake_mercadopago)
        note = fake_mercadopago.preapproval_notification(str(sub.provider_subscription_id))
        first = await billing.webhooks.handle(
            "mercadopago", note.body, note.headers, query=note.query
        )
        again = await billing.webhooks.handle(
            "mercadopago", note.body, note.headers, query=note.query
        )
        assert (first.status, again.status) == ("applied", "duplicate")

    async def test_free_price_never_reaches_mercadopago(
        self, shop: Shop, fake_mercadopago: FakeMercadoPago
    ) -> None:
        sub = await shop.billing.subscriptions.create(shop.customer.id, shop.free.id)
        assert sub.provider is None
        assert sub.status == "active"
        assert fake_mercadopago.preapprovals(external_reference=sub.id) == []

    async def test_trial_is_trialing_once_authorised(
        self, shop: Shop, fake_mercadopago: FakeMercadoPago
    ) -> None:
        billing = shop.billing
        sub = await billing.subscriptions.create(shop.customer.id, shop.trial.id)
        fake_mercadopago.authorize_preapproval(str(sub.provider_subscription_id))
        await notify(billing, fake_mercadopago)
        now = await billing.subscriptions.get(sub.id)
        assert now is not None
        assert now.status == "trialing"
        assert now.trial_end is not None
        assert await billing.entitlements.check(shop.customer.id, "api")

    async def test_ambiguous_create_leaves_exactly_one_preapproval(
        self, shop: Shop, fake_mercadopago: FakeMercadoPago, mercadopago_proxy: FaultProxy
    ) -> None:
        billing = shop.billing
        mercadopago_proxy.inject(Fault.drop(), method="POST", path=PREAPPROVAL)
        sub = await billing.subscriptions.create(
            shop.customer.id, shop.monthly.id, idempotency_key="mp-ambiguous"
        )
        assert sub.provider_subscription_id is not None
        assert len(fake_mercadopago.preapprovals(external_reference=sub.id)) == 1
        again = await billing.subscriptions.create(
            shop.customer.id, shop.monthly.id, idempotency_key="mp-ambiguous"
        )
        assert again == sub
        assert (await billing.subscriptions.list(customer_id=shop.customer.id)).total == 1

    async def test_a_clean_refusal_creates_nothing(
        self, shop: Shop, mercadopago_proxy: FaultProxy
    ) -> None:
        billing = shop.billing
        body = b'{"message": "Invalid value for back_url", "status": 400, "cause": []}'
        mercadopago_proxy.inject(Fault.respond(400, body), method="POST", path=PREAPPROVAL)
        with pytest.raises(ProviderSyncError) as caught:
            await billing.subscriptions.create(shop.customer.id, shop.monthly.id)
        assert not caught.value.ambiguous
        assert (await billing.subscriptions.list(customer_id=shop.customer.id)).total == 0
        assert (await billing.subscriptions.sync_pending()).remaining == 0


class TestChanges:
    async def test_cancel_at_period_end_sets_the_end_date_and_uncancel_clears_it(
        self, shop: Shop, fake_mercadopago: FakeMercadoPago
    ) -> None:
        billing = shop.billing
        sub = await authorised(shop, fake_mercadopago)
        scheduled = await billing.subscriptions.cancel(sub.id)
        assert scheduled.cancel_at_period_end
        assert scheduled.status == "active"
        copy = fake_mercadopago.preapproval(str(sub.provider_subscription_id))
        assert copy is not None
        assert copy["auto_recurring"].get("end_date")
        kept = await billing.subscriptions.uncancel(sub.id)
        assert not kept.cancel_at_period_end

    async def test_cancel_now_ends_access(
        self, shop: Shop, fake_mercadopago: FakeMercadoPago
    ) -> None:
        billing = shop.billing
        sub = await authorised(shop, fake_mercadopago)
        seen = recorder(billing)
        ended = await billing.subscriptions.cancel(sub.id, at_period_end=False)
        assert ended.status == "canceled"
        copy = fake_mercadopago.preapproval(str(sub.provider_subscription_id))
        assert copy is not None
        assert copy["status"] == "cancelled"
        assert [e.type for e in seen] == ["subscription.canceled", "customer.entitlements_changed"]
        assert not await billing.entitlements.check(shop.customer.id, "api")

    async def test_pause_and_resume(self, shop: Shop, fake_mercadopago: FakeMercadoPago) -> None:
        billing = shop.billing
        sub = await authorised(shop, fake_mercadopago)
        paused = await billing.subscriptions.pause(sub.id)
        assert paused.status == "paused"
        assert not await billing.entitlements.check(shop.customer.id, "api")
        resumed = await billing.subscriptions.resume(sub.id)
        assert resumed.status == "active"
        assert await billing.entitlements.check(shop.customer.id, "api")

    async def test_change_price_within_the_terms_and_refusal_outside(
        self, shop: Shop, fake_mercadopago: FakeMercadoPago
    ) -> None:
        billing = shop.billing
        sub = await authorised(shop, fake_mercadopago, quantity=2)
        moved = await billing.subscriptions.change_price(sub.id, shop.monthly_more.id)
        assert moved.price_id == shop.monthly_more.id
        assert moved.quantity == 2
        copy = fake_mercadopago.preapproval(str(sub.provider_subscription_id))
        assert copy is not None
        assert copy["auto_recurring"]["transaction_amount"] == 79.8
        with pytest.raises(SubscriptionChangeUnsupported):
            await billing.subscriptions.change_price(sub.id, shop.yearly.id)
        assert await billing.subscriptions.get(sub.id) == moved

    async def test_ended_subscriptions_refuse_changes(
        self, shop: Shop, fake_mercadopago: FakeMercadoPago
    ) -> None:
        billing = shop.billing
        sub = await authorised(shop, fake_mercadopago)
        await billing.subscriptions.cancel(sub.id, at_period_end=False)
        with pytest.raises(ConflictError) as caught:
            await billing.subscriptions.resume(sub.id)
        assert caught.value.code == "subscription_ended"


class TestReconcile:
    async def test_drift_is_reported_and_fixed_from_the_provider(
        self, shop: Shop, fake_mercadopago: FakeMercadoPago
    ) -> None:
        billing = shop.billing
        sub = await billing.subscriptions.create(shop.customer.id, shop.monthly.id)
        fake_mercadopago.authorize_preapproval(str(sub.provider_subscription_id))
        fake_mercadopago.preapproval_notifications()  # lost: never delivered
        report = await billing.subscriptions.reconcile("mercadopago")
        assert not report.in_sync
        drifted = [d for d in report.drift if d.subscription_id == sub.id]
        assert drifted
        assert drifted[0].fields["status"] == ("incomplete", "active")
        fixed = await billing.subscriptions.reconcile("mercadopago", fix=True)
        assert sub.id in fixed.fixed
        now = await billing.subscriptions.get(sub.id)
        assert now is not None
        assert now.status == "active"
