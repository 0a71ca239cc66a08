"""Stripe's subscription adapter against the extended localstripe
(``tests/support/localstripe_subscriptions.py``), driven through the official SDK: the first
payment (at once, on the hosted invoice page, or not at all), trials, cancellation, price
changes, paused collection, renewals, finding after an ambiguous create, and the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import stripe

from qzpay.catalog.models import Plan, Price
from qzpay.customers.models import Customer
from qzpay.errors import ProviderSyncError
from qzpay.providers.stripe import StripeProvider
from qzpay.providers.stripe.subscriptions import (
    provider_subscription,
    qzpay_status,
    subscription_id_of_event,
)
from qzpay.providers.subscriptions import (
    QZPAY_SUBSCRIPTION_ID_KEY,
    PriceChange,
    ProviderSubscription,
    SubscriptionAdapter,
    SubscriptionChangeUnsupported,
    SubscriptionTerms,
    subscriptions_of,
)
from qzpay.subscriptions.models import Subscription, subscription_ids
from tests.factories import idempotency_key as key
from tests.factories import stored_customer
from tests.providers.catalog_factories import stored_plan, stored_price
from tests.providers.contract.kit import SDK_WARNING
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.localstripe import mute_webhook, register_webhook
from tests.support.stripe_fixtures import WEBHOOK_SECRET, ProviderFactory
from tests.support.stripe_sdk import stripe_sdk
from tests.support.webhook_receiver import Delivery, WebhookReceiver

__all__ = ["stripe_sdk"]

pytestmark = pytest.mark.filterwarnings(SDK_WARNING)

DECLINING_CARD = "pm_card_chargeCustomerFail"  # localstripe: attaches, then every charge fails
AUTHENTICATION_CARD = "4000002500003155"  # 3D Secure required


# -- setting up at localstripe ------------------------------------------------------------


@dataclass(frozen=True)
class Shop:
    """A customer, a plan and its price, all linked to their copies at localstripe."""

    customer: Customer
    plan: Plan
    price: Price

    def terms(self, trial_days: int | None = None, **fields: Any) -> SubscriptionTerms:
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "id": subscription_ids.new(),
            "customer_id": self.customer.id,
            "price_id": self.price.id,
            "plan_id": self.plan.id,
            "quantity": 2,
            "status": "incomplete",
            "current_period_start": now,
            "current_period_end": now,
            "metadata": {"team": "core"},
            "created_at": now,
            "updated_at": now,
        }
        values.update(fields)
        return SubscriptionTerms(
            Subscription(**values), self.customer, self.price, self.plan, trial_days
        )

    @property
    def stripe_customer(self) -> str:
        return self.customer.provider_customer_ids["stripe"]


async def open_shop(provider: StripeProvider, **price_fields: Any) -> Shop:
    local = stored_customer()
    made = await provider.customers.create(local, idempotency_key=key())
    customer = local.model_copy(update={"provider_customer_ids": {"stripe": made.id}})
    plan = await linked_plan(provider)
    return Shop(customer, plan, await linked_price(provider, plan, **price_fields))


async def linked_plan(provider: StripeProvider) -> Plan:
    plan = stored_plan()
    product = await provider.plans.create(plan, idempotency_key=key())
    return plan.model_copy(update={"provider_plan_ids": {"stripe": product.id}})


async def linked_price(provider: StripeProvider, plan: Plan, **fields: Any) -> Price:
    price = stored_price(plan, **fields)
    made = await provider.prices.create(price, plan=plan, idempotency_key=key())
    assert made is not None
    return price.model_copy(update={"provider_price_ids": {"stripe": made.id}})


async def give_card(sdk: stripe.StripeClient, customer: str, card: str = "pm_card_visa") -> None:
    """Attach ``card`` (a test payment method id, or a raw test card number) to the Stripe
    customer and make it the default for invoices."""
    if card.isdigit():
        details: Any = {"number": card, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
        made = await sdk.v1.payment_methods.create_async({"type": "card", "card": details})
        card = made.id
    attached = await sdk.v1.payment_methods.attach_async(card, {"customer": customer})
    settings: Any = {"default_payment_method": attached.id}
    await sdk.v1.customers.update_async(customer, {"invoice_settings": settings})


async def post(url: str, **form: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(url, data=form) as response:
        return response.status, await response.json()


async def advance(localstripe_url: str, provider_subscription_id: str, **form: str) -> None:
    """The test hook: the current period ends and the next is billed."""
    url = f"{localstripe_url}/_config/subscriptions/{provider_subscription_id}/advance"
    status, body = await post(url, **form)
    assert status == 200, body


async def latest_invoice(sdk: stripe.StripeClient, provider_subscription_id: str) -> Any:
    found = await sdk.v1.subscriptions.retrieve_async(
        provider_subscription_id, {"expand": ["latest_invoice"]}
    )
    return found.latest_invoice


@contextlib.asynccontextmanager
async def webhooks(localstripe_url: str, events: list[str]) -> AsyncIterator[WebhookReceiver]:
    name = f"qzpay-subscriptions-{os.urandom(4).hex()}"
    async with WebhookReceiver() as receiver:
        await register_webhook(
            localstripe_url, name, url=receiver.url, secret=WEBHOOK_SECRET, events=events
        )
        try:
            yield receiver
        finally:
            await mute_webhook(localstripe_url, name)


def about(kind: str, provider_subscription_id: str) -> Callable[[Delivery], bool]:
    def matches(delivery: Delivery) -> bool:
        event = json.loads(delivery.body)
        return event["type"] == kind and subscription_id_of_event(event) == provider_subscription_id

    return matches


# -- the first payment ----------------------------------------------------------------------


async def test_without_a_card_it_is_incomplete_until_paid_on_the_hosted_page(
    stripe_provider: StripeProvider, localstripe_url: str
) -> None:
    shop = await open_shop(stripe_provider)
    terms = shop.terms()
    adapter: SubscriptionAdapter = stripe_provider.subscriptions
    assert subscriptions_of(stripe_provider) is stripe_provider.subscriptions

    events = ["invoice.paid", "customer.subscription.updated"]
    async with webhooks(localstripe_url, events) as receiver:
        created = await adapter.create(terms, idempotency_key=key())

        assert created.status == "incomplete"
        assert created.qzpay_subscription_id == terms.subscription.id
        assert (created.provider_customer_id, created.provider_price_id, created.quantity) == (
            shop.stripe_customer,
            shop.price.provider_price_ids["stripe"],
            2,
        )
        assert (created.unit_amount, created.currency, created.metadata) == (
            1999,
            "USD",
            {"team": "core"},
        )
        assert created.current_period_start < created.current_period_end
        assert created.current_period_start.tzinfo is UTC
        assert created.payment_url is not None
        assert created.payment_url.startswith(f"{localstripe_url}/_config/hosted_invoices/in_")
        async with aiohttp.ClientSession() as session, session.get(created.payment_url) as page:
            assert page.status == 200
            assert "39.98 USD" in await page.text()

        status, paid = await post(f"{created.payment_url}/pay")
        assert (status, paid["status"], paid["amount_paid"]) == (200, "paid", 3998)

        current = await adapter.retrieve(created.id)
        assert current is not None
        assert (current.status, current.payment_url) == ("active", None)
        async with asyncio.timeout(10):
            invoice_paid = await receiver.wait_for(about("invoice.paid", created.id))
            updated = await receiver.wait_for(about("customer.subscription.updated", created.id))

    event = stripe_provider.parse_webhook(updated.body, updated.headers)
    assert event.provider_customer_id == shop.stripe_customer
    assert event.raw["data"]["previous_attributes"] == {"status": "incomplete"}
    assert event.raw["data"]["object"]["status"] == "active"
    assert adapter.subscription_of(event) == created.id
    paid_event = stripe_provider.parse_webhook(invoice_paid.body, invoice_paid.headers)
    assert paid_event.raw["data"]["object"]["id"] == paid["id"]
    assert adapter.subscription_of(paid_event) == created.id


async def test_a_working_default_card_makes_it_active_at_once(
    stripe_provider: StripeProvider, stripe_sdk: stripe.StripeClient
) -> None:
    shop = await open_shop(stripe_provider)
    await give_card(stripe_sdk, shop.stripe_customer)

    created = await stripe_provider.subscriptions.create(shop.terms(), idempotency_key=key())

    assert (created.status, created.payment_url) == ("active", None)
    invoice = await latest_invoice(stripe_sdk, created.id)
    assert (invoice.status, invoice.amount_paid, invoice.billing_reason) == (
        "paid",
        3998,
        "subscription_create",
    )


@pytest.mark.parametrize("card", [DECLINING_CARD, AUTHENTICATION_CARD], ids=["declined", "3ds"])
async def test_a_card_that_does_not_pay_leaves_it_incomplete(
    stripe_provider: StripeProvider, stripe_sdk: stripe.StripeClient, card: str
) -> None:
    shop = await open_shop(stripe_provider)
    await give_card(stripe_sdk, shop.stripe_customer, card)

    created = await stripe_provider.subscriptions.create(shop.terms(), idempotency_key=key())

    assert created.status == "incomplete"
    assert created.payment_url is not None
    invoice = await latest_invoice(stripe_sdk, created.id)
    assert (invoice.status, invoice.amount_paid) == ("open", 0)
    status, refused = await post(f"{created.payment_url}/pay", payment_method=DECLINING_CARD)
    assert (status, refused["error"]["code"]) == (402, "card_declined")
    still = await stripe_provider.subscriptions.retrieve(created.id)
    assert still is not None
    assert still.status == "incomplete"


async def test_a_trial_starts_at_once_without_a_charge(
    stripe_provider: StripeProvider, stripe_sdk: stripe.StripeClient, localstripe_url: str
) -> None:
    shop = await open_shop(stripe_provider)

    created = await stripe_provider.subscriptions.create(
        shop.terms(trial_days=14), idempotency_key=key()
    )

    assert (created.status, created.payment_url) == ("trialing", None)
    assert created.trial_start is not None
    assert created.trial_end is not None
    assert created.trial_end - created.trial_start == timedelta(days=14)
    assert created.current_period_end == created.trial_end
    invoice = await latest_invoice(stripe_sdk, created.id)
    assert (invoice.status, invoice.amount_due) == ("paid", 0)

    await give_card(stripe_sdk, shop.stripe_customer)
    await advance(localstripe_url, created.id)

    after = await stripe_provider.subscriptions.retrieve(created.id)
    assert after is not None
    assert (after.status, after.current_period_start) == ("active", created.trial_end)
    invoice = await latest_invoice(stripe_sdk, created.id)
    assert (invoice.status, invoice.amount_paid) == ("paid", 3998)


# -- cancellation ---------------------------------------------------------------------------


async def test_cancel_at_period_end_and_undo(
    stripe_provider: StripeProvider, stripe_sdk: stripe.StripeClient, localstripe_url: str
) -> None:
    shop = await open_shop(stripe_provider)
    await give_card(stripe_sdk, shop.stripe_customer)
    created = await stripe_provider.subscriptions.create(shop.terms(), idempotency_key=key())

    canceling = await stripe_provider.subscriptions.cancel(
        created.id, at_period_end=True, idempotency_key=key()
    )
    assert (canceling.status, canceling.cancel_at_period_end) == ("active", True)
    assert canceling.canceled_at is not None
    assert canceling.ended_at is None

    undone = await stripe_provider.subscriptions.uncancel(created.id, idempotency_key=key())
    assert (undone.status, undone.cancel_at_period_end, undone.canceled_at) == (
        "active",
        False,
        None,
    )

    await stripe_provider.subscriptions.cancel(
        created.id, at_period_end=True, idempotency_key=key()
    )
    await advance(localstripe_url, created.id)
    ended = await stripe_provider.subscriptions.retrieve(created.id)
    assert ended is not None
    assert (ended.status, ended.ended_at) == ("canceled", created.current_period_end)


async def test_cancel_now(stripe_provider: StripeProvider) -> None:
    shop = await open_shop(stripe_provider)
    created = await stripe_provider.subscriptions.create(shop.terms(), idempotency_key=key())

    canceled = await stripe_provider.subscriptions.cancel(
        created.id, at_period_end=False, idempotency_key=key()
    )

    assert canceled.status == "canceled"
    assert canceled.canceled_at is not None
    assert canceled.ended_at is not None
    assert await stripe_provider.subscriptions.retrieve(created.id) == canceled
    # Stripe answers 404 to canceling again: the goal is met, the copy comes back.
    again = await stripe_provider.subscriptions.cancel(
        created.id, at_period_end=False, idempotency_key=key()
    )
    assert again == canceled
    at_end = await stripe_provider.subscriptions.cancel(
        created.id, at_period_end=True, idempotency_key=key()
    )  # Stripe refuses the update (400): the subscription has ended, which meets the goal
    assert at_end == canceled
    with pytest.raises(ProviderSyncError) as caught:
        await stripe_provider.subscriptions.uncancel(created.id, idempotency_key=key())
    assert (caught.value.operation, caught.value.ambiguous) == ("uncancel_subscription", False)
    assert "already ended (canceled)" in str(caught.value)


async def test_deleting_the_customer_cancels_its_subscriptions(
    stripe_provider: StripeProvider,
) -> None:
    shop = await open_shop(stripe_provider)
    created = await stripe_provider.subscriptions.create(shop.terms(), idempotency_key=key())

    await stripe_provider.customers.delete(shop.stripe_customer, idempotency_key=key())

    gone = await stripe_provider.subscriptions.retrieve(created.id)
    assert gone is not None
    assert gone.status == "canceled"
    assert gone.ended_at is not None


async def test_an_unknown_subscription(stripe_provider: StripeProvider) -> None:
    assert await stripe_provider.subscriptions.retrieve("sub_unknown") is None
    with pytest.raises(ProviderSyncError) as caught:
        await stripe_provider.subscriptions.cancel(
            "sub_unknown", at_period_end=False, idempotency_key=key()
        )
    assert (caught.value.operation, caught.value.ambiguous) == ("cancel_subscription", False)


# -- changes --------------------------------------------------------------------------------


async def test_change_price_and_quantity(
    stripe_provider: StripeProvider,
    proxied_stripe_provider: StripeProvider,
    fault_proxy: FaultProxy,
    stripe_sdk: stripe.StripeClient,
) -> None:
    shop = await open_shop(stripe_provider)
    await give_card(stripe_sdk, shop.stripe_customer)
    created = await stripe_provider.subscriptions.create(shop.terms(), idempotency_key=key())
    item = (await stripe_sdk.v1.subscriptions.retrieve_async(created.id))["items"].data[0].id
    bigger = await linked_price(stripe_provider, shop.plan, unit_amount=4999)

    changed = await proxied_stripe_provider.subscriptions.change_price(
        created.id,
        PriceChange(bigger, shop.plan, quantity=3, proration="create_prorations"),
        idempotency_key="change-1",
    )

    [sent] = fault_proxy.matching("POST", f"/v1/subscriptions/{created.id}")
    assert sent.headers["idempotency-key"] == "change-1"
    assert sent.form() == {
        "items[0][id]": item,
        "items[0][price]": bigger.provider_price_ids["stripe"],
        "items[0][quantity]": "3",
        "proration_behavior": "create_prorations",
        "expand[0]": "latest_invoice",
    }
    assert (changed.provider_price_id, changed.quantity, changed.unit_amount) == (
        bigger.provider_price_ids["stripe"],
        3,
        4999,
    )
    assert (changed.status, changed.current_period_end) == ("active", created.current_period_end)
    pending = await stripe_sdk.v1.invoice_items.list_async({"customer": shop.stripe_customer})
    prorations = sorted(i.amount for i in pending.data if i.proration)
    assert len(prorations) == 2
    assert prorations[0] < 0 < prorations[1]


async def test_another_currency_is_unsupported_and_nothing_is_sent(
    stripe_provider: StripeProvider,
    proxied_stripe_provider: StripeProvider,
    fault_proxy: FaultProxy,
) -> None:
    shop = await open_shop(stripe_provider)
    created = await stripe_provider.subscriptions.create(shop.terms(), idempotency_key=key())
    euros = await linked_price(stripe_provider, shop.plan, currency="EUR")

    with pytest.raises(SubscriptionChangeUnsupported) as caught:
        await proxied_stripe_provider.subscriptions.change_price(
            created.id,
            PriceChange(euros, shop.plan, quantity=1, proration="none"),
            idempotency_key=key(),
        )

    assert caught.value.ambiguous is False
    assert fault_proxy.matching("POST") == []


async def test_a_failed_read_before_a_price_change_is_not_ambiguous(
    stripe_provider: StripeProvider,
    proxied_stripe_provider: StripeProvider,
    fault_proxy: FaultProxy,
) -> None:
    shop = await open_shop(stripe_provider)
    created = await stripe_provider.subscriptions.create(shop.terms(), idempotency_key=key())
    fault_proxy.inject(Fault.reset(), method="GET", path=f"/v1/subscriptions/{created.id}")

    with pytest.raises(ProviderSyncError) as caught:
        await proxied_stripe_provider.subscriptions.change_price(
            created.id,
            PriceChange(shop.price, shop.plan, quantity=5, proration="none"),
            idempotency_key=key(),
        )

    assert (caught.value.operation, caught.value.ambiguous) == ("change_subscription_price", False)
    assert "nothing was changed" in str(caught.value)
    assert fault_proxy.matching("POST") == []


async def test_pause_and_resume_collection(
    stripe_provider: StripeProvider,
    proxied_stripe_provider: StripeProvider,
    fault_proxy: FaultProxy,
    stripe_sdk: stripe.StripeClient,
    localstripe_url: str,
) -> None:
    shop = await open_shop(stripe_provider)
    await give_card(stripe_sdk, shop.stripe_customer)
    created = await stripe_provider.subscriptions.create(shop.terms(), idempotency_key=key())

    paused = await proxied_stripe_provider.subscriptions.pause(created.id, idempotency_key=key())

    assert paused.status == "paused"
    raw = await stripe_sdk.v1.subscriptions.retrieve_async(created.id)
    assert raw.status == "active"  # Stripe keeps it active while collection is paused
    await advance(localstripe_url, created.id)
    assert (await latest_invoice(stripe_sdk, created.id)).status == "void"

    resumed = await proxied_stripe_provider.subscriptions.resume(created.id, idempotency_key=key())

    assert resumed.status == "active"
    pause, resume = (r.form() for r in fault_proxy.matching("POST"))
    assert pause["pause_collection[behavior]"] == "void"
    assert resume["pause_collection"] == ""


# -- renewals -------------------------------------------------------------------------------


async def test_the_next_period_starts_exactly_at_the_old_end(
    stripe_provider: StripeProvider, stripe_sdk: stripe.StripeClient, localstripe_url: str
) -> None:
    shop = await open_shop(stripe_provider, interval="week")
    await give_card(stripe_sdk, shop.stripe_customer)
    created = await stripe_provider.subscriptions.create(shop.terms(), idempotency_key=key())
    assert created.current_period_end - created.current_period_start == timedelta(weeks=1)

    await advance(localstripe_url, created.id)

    renewed = await stripe_provider.subscriptions.retrieve(created.id)
    assert renewed is not None
    assert renewed.current_period_start == created.current_period_end
    assert renewed.current_period_end == created.current_period_end + timedelta(weeks=1)
    assert renewed.status == "active"
    invoice = await latest_invoice(stripe_sdk, created.id)
    assert (invoice.billing_reason, invoice.status, invoice.amount_paid) == (
        "subscription_cycle",
        "paid",
        3998,
    )


@pytest.mark.parametrize("how", ["declining card", "decline hook"])
async def test_a_failed_renewal_is_past_due_until_paid(
    stripe_provider: StripeProvider,
    stripe_sdk: stripe.StripeClient,
    localstripe_url: str,
    how: str,
) -> None:
    shop = await open_shop(stripe_provider)
    await give_card(stripe_sdk, shop.stripe_customer)
    created = await stripe_provider.subscriptions.create(shop.terms(), idempotency_key=key())
    if how == "declining card":
        await give_card(stripe_sdk, shop.stripe_customer, DECLINING_CARD)

    async with webhooks(localstripe_url, ["invoice.payment_failed"]) as receiver:
        await advance(localstripe_url, created.id, **({"decline": "true"} if "hook" in how else {}))
        async with asyncio.timeout(10):
            failed = await receiver.wait_for(about("invoice.payment_failed", created.id))

    late = await stripe_provider.subscriptions.retrieve(created.id)
    assert late is not None
    assert (late.status, late.payment_url) == ("past_due", None)
    invoice = json.loads(failed.body)["data"]["object"]
    assert (invoice["status"], invoice["billing_reason"]) == ("open", "subscription_cycle")
    status, _ = await post(f"{invoice['hosted_invoice_url']}/pay")
    assert status == 200
    paid = await stripe_provider.subscriptions.retrieve(created.id)
    assert paid is not None
    assert paid.status == "active"


# -- finding, idempotency, listing ----------------------------------------------------------


async def test_find_after_create(stripe_provider: StripeProvider) -> None:
    shop = await open_shop(stripe_provider)
    terms = shop.terms()
    created = await stripe_provider.subscriptions.create(terms, idempotency_key=key())

    assert await stripe_provider.subscriptions.find(terms) == created
    assert await stripe_provider.subscriptions.find(shop.terms()) is None  # another qzpay id
    elsewhere = SubscriptionTerms(
        terms.subscription, stored_customer(), shop.price, shop.plan, None
    )
    assert await stripe_provider.subscriptions.find(elsewhere) is None  # not at Stripe


@pytest.mark.parametrize("fault", ["drop", "reset"])
async def test_an_ambiguous_create_retried_with_its_key_makes_one_subscription(
    stripe_provider: StripeProvider,
    proxied_stripe_provider: StripeProvider,
    fault_proxy: FaultProxy,
    fault: str,
) -> None:
    shop = await open_shop(stripe_provider)
    terms = shop.terms()
    fault_proxy.inject(Fault(fault), method="POST", path="/v1/subscriptions")  # type: ignore[arg-type]
    same_key = key()

    with pytest.raises(ProviderSyncError) as caught:
        await proxied_stripe_provider.subscriptions.create(terms, idempotency_key=same_key)
    assert (caught.value.operation, caught.value.ambiguous) == ("create_subscription", True)

    retried = await proxied_stripe_provider.subscriptions.create(terms, idempotency_key=same_key)
    again = await proxied_stripe_provider.subscriptions.create(terms, idempotency_key=same_key)

    assert again == retried
    assert await stripe_provider.subscriptions.find(terms) == retried
    ours = [
        s.id
        async for s in stripe_provider.subscriptions.list()
        if s.provider_customer_id == shop.stripe_customer
    ]
    assert ours == [retried.id]


async def test_a_key_reused_for_another_request_is_refused(
    stripe_provider: StripeProvider,
) -> None:
    shop = await open_shop(stripe_provider)
    reused = key()
    await stripe_provider.subscriptions.create(shop.terms(), idempotency_key=reused)

    with pytest.raises(ProviderSyncError) as caught:
        await stripe_provider.subscriptions.create(shop.terms(), idempotency_key=reused)

    assert caught.value.ambiguous is False
    assert isinstance(caught.value.cause, stripe.IdempotencyError)
    assert "same parameters" in str(caught.value)


async def test_list_includes_ended_subscriptions(make_stripe_provider: ProviderFactory) -> None:
    provider = make_stripe_provider(page_size=2)
    shop = await open_shop(provider)
    made = [await provider.subscriptions.create(shop.terms(), idempotency_key=key()) for _ in "abc"]
    await provider.subscriptions.cancel(made[0].id, at_period_end=False, idempotency_key=key())

    listed = {s.id: s.status async for s in provider.subscriptions.list()}

    assert {s.id: listed.get(s.id) for s in made} == {
        made[0].id: "canceled",
        made[1].id: "incomplete",
        made[2].id: "incomplete",
    }


async def test_localstripe_refuses_what_stripe_refuses(
    stripe_provider: StripeProvider, stripe_sdk: stripe.StripeClient
) -> None:
    shop = await open_shop(stripe_provider)
    price = shop.price.provider_price_ids["stripe"]

    def params(behavior: str) -> Any:
        return {
            "customer": shop.stripe_customer,
            "items": [{"price": price}],
            "payment_behavior": behavior,
        }

    with pytest.raises(stripe.InvalidRequestError):  # no payment method
        await stripe_sdk.v1.subscriptions.create_async(params("error_if_incomplete"))
    await give_card(stripe_sdk, shop.stripe_customer, DECLINING_CARD)
    with pytest.raises(stripe.CardError):
        await stripe_sdk.v1.subscriptions.create_async(params("error_if_incomplete"))
    listed = await stripe_sdk.v1.subscriptions.list_async(
        {"customer": shop.stripe_customer, "status": "all"}
    )
    assert listed.data == []  # nothing was created

    await give_card(stripe_sdk, shop.stripe_customer)
    made = await stripe_sdk.v1.subscriptions.create_async(params("default_incomplete"))
    assert made.status == "incomplete"  # a good card, but never charged
    await stripe_sdk.v1.subscriptions.cancel_async(made.id)
    with pytest.raises(stripe.InvalidRequestError, match="can only update its cancellation"):
        await stripe_sdk.v1.subscriptions.update_async(made.id, {"cancel_at_period_end": False})
    updated = await stripe_sdk.v1.subscriptions.update_async(made.id, {"metadata": {"a": "b"}})
    assert (updated.status, updated.metadata.to_dict()) == ("canceled", {"a": "b"})


async def test_a_price_not_at_stripe_is_a_programming_error(
    proxied_stripe_provider: StripeProvider, fault_proxy: FaultProxy
) -> None:
    plan = stored_plan()
    shop = Shop(
        stored_customer(provider_customer_ids={"stripe": "cus_x"}), plan, stored_price(plan)
    )

    with pytest.raises(ValueError, match="not at Stripe yet"):
        await proxied_stripe_provider.subscriptions.create(shop.terms(), idempotency_key=key())

    assert fault_proxy.requests == []


async def test_the_create_request_on_the_wire(
    stripe_provider: StripeProvider,
    proxied_stripe_provider: StripeProvider,
    fault_proxy: FaultProxy,
) -> None:
    shop = await open_shop(stripe_provider)
    terms = shop.terms(trial_days=7)

    await proxied_stripe_provider.subscriptions.create(terms, idempotency_key="create-1")

    [sent] = fault_proxy.matching("POST", "/v1/subscriptions")
    assert sent.headers["idempotency-key"] == "create-1"
    assert sent.form() == {
        "customer": shop.stripe_customer,
        "items[0][price]": shop.price.provider_price_ids["stripe"],
        "items[0][quantity]": "2",
        "metadata[team]": "core",
        f"metadata[{QZPAY_SUBSCRIPTION_ID_KEY}]": terms.subscription.id,
        "payment_behavior": "allow_incomplete",
        "expand[0]": "latest_invoice",
        "trial_period_days": "7",
    }


# -- reading Stripe's objects (pure) --------------------------------------------------------

_ITEM_PERIOD = {"current_period_start": 1_700_000_000, "current_period_end": 1_702_592_000}


@pytest.mark.parametrize(
    ("stripe_status", "pause", "expected"),
    [
        ("active", None, "active"),
        ("active", {"behavior": "void"}, "paused"),
        ("trialing", {"behavior": "void"}, "paused"),
        ("past_due", None, "past_due"),
        ("canceled", {"behavior": "void"}, "canceled"),
        ("incomplete", None, "incomplete"),
        ("incomplete_expired", None, "incomplete_expired"),
        ("paused", None, "paused"),
        ("unpaid", None, "unpaid"),
        ("something_new", None, "unpaid"),
    ],
)
def test_status_mapping(stripe_status: str, pause: Any, expected: str) -> None:
    assert qzpay_status({"status": stripe_status, "pause_collection": pause}) == expected


def test_periods_are_read_from_the_item_or_from_the_subscription() -> None:
    newer = {"id": "sub_1", "status": "active", "items": {"data": [{"id": "si_1", **_ITEM_PERIOD}]}}
    older = {"id": "sub_1", "status": "active", "items": {"data": [{"id": "si_1"}]}, **_ITEM_PERIOD}

    copies = [provider_subscription(newer), provider_subscription(older)]

    expected = (
        datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        datetime(2023, 12, 14, 22, 13, 20, tzinfo=UTC),
    )
    assert [(c.current_period_start, c.current_period_end) for c in copies] == [expected] * 2


def test_a_sparse_object_still_reads() -> None:
    copy = provider_subscription(
        {
            "id": "sub_1",
            "status": "incomplete",
            "start_date": 1_700_000_000,
            "metadata": {QZPAY_SUBSCRIPTION_ID_KEY: "sub_q", "team": "core", "gone": ""},
            "latest_invoice": {"id": "in_1", "hosted_invoice_url": "https://pay.example/in_1"},
        }
    )
    assert copy == ProviderSubscription(
        id="sub_1",
        qzpay_subscription_id="sub_q",
        provider_customer_id=None,
        provider_price_id=None,
        quantity=1,
        status="incomplete",
        current_period_start=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        current_period_end=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        payment_url="https://pay.example/in_1",
        metadata={"team": "core"},
    )
    active = provider_subscription(
        {"id": "sub_1", "status": "active", "latest_invoice": {"hosted_invoice_url": "u"}}
    )
    assert active.payment_url is None


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"type": "customer.subscription.updated", "data": {"object": {"id": "sub_1"}}}, "sub_1"),
        ({"type": "customer.subscription.deleted", "data": {"object": {"id": "sub_1"}}}, "sub_1"),
        ({"type": "invoice.paid", "data": {"object": {"subscription": "sub_1"}}}, "sub_1"),
        (
            {
                "type": "invoice.payment_failed",
                "data": {
                    "object": {
                        "subscription": None,
                        "parent": {"subscription_details": {"subscription": "sub_1"}},
                    }
                },
            },
            "sub_1",
        ),
        ({"type": "invoice.paid", "data": {"object": {"subscription": {"id": "sub_1"}}}}, "sub_1"),
        ({"type": "invoice.paid", "data": {"object": {"parent": None}}}, None),
        ({"type": "invoice.created", "data": {"object": {"subscription": "sub_1"}}}, None),
        ({"type": "customer.updated", "data": {"object": {"id": "cus_1"}}}, None),
        ({"type": "invoice.paid", "data": "not an object"}, None),
    ],
)
def test_the_subscription_an_event_is_about(event: dict[str, Any], expected: str | None) -> None:
    assert subscription_id_of_event(event) == expected
