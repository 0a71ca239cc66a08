"""Inbound Stripe webhooks: real signed deliveries from localstripe, plus forged ones."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator

import pytest

from qzpay import Billing, Event
from qzpay.errors import ValidationError, WebhookSignatureError
from qzpay.providers.stripe import StripeProvider
from tests.support.localstripe import mute_webhook, register_webhook
from tests.support.stripe_fixtures import WEBHOOK_SECRET, unique_email
from tests.support.webhook_receiver import Delivery, WebhookReceiver

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def sign(payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@pytest.fixture
async def hooked(
    storage_url: str,
    stripe_provider: StripeProvider,
    localstripe_url: str,
    webhook_receiver: WebhookReceiver,
) -> AsyncIterator[Billing]:
    """A Billing on localstripe whose customer.* webhooks arrive at ``webhook_receiver``."""
    name = f"qzpay-sync-{os.urandom(4).hex()}"
    await register_webhook(
        localstripe_url,
        name,
        url=webhook_receiver.url,
        secret=WEBHOOK_SECRET,
        events=["customer.updated", "customer.deleted"],
    )
    try:
        async with Billing(storage=storage_url, provider=stripe_provider) as billing:
            yield billing
    finally:
        await mute_webhook(localstripe_url, name)


async def delivery_about(receiver: WebhookReceiver, stripe_id: str, kind: str) -> Delivery:
    def matches(delivery: Delivery) -> bool:
        body = json.loads(delivery.body)
        return bool(body["type"] == kind and body["data"]["object"]["id"] == stripe_id)

    async with asyncio.timeout(15):
        return await receiver.wait_for(matches)


class TestDashboardChanges:
    async def test_update_made_at_stripe_reaches_the_app_once(
        self, hooked: Billing, stripe_provider: StripeProvider, webhook_receiver: WebhookReceiver
    ) -> None:
        customer = await hooked.customers.create(email=unique_email(), name="Local")
        pcid = customer.provider_customer_ids["stripe"]
        edited = customer.model_copy(update={"name": "From Dashboard", "metadata": {"vip": "yes"}})
        await stripe_provider.customers.update(pcid, customer, edited, idempotency_key="dash-1")
        delivery = await delivery_about(webhook_receiver, pcid, "customer.updated")
        events: list[Event] = []
        hooked.on("customer.updated", events.append)

        result = await hooked.webhooks.handle("stripe", delivery.body, delivery.headers)
        assert (result.status, result.customer_id) == ("applied", customer.id)
        local = await hooked.customers.get(customer.id)
        assert local is not None
        assert (local.name, local.metadata) == ("From Dashboard", {"vip": "yes"})
        assert [e.previous for e in events] == [{"name": "Local", "metadata": {}}]

        replay = await hooked.webhooks.handle("stripe", delivery.body, delivery.headers)
        assert replay.status == "duplicate"
        assert len(events) == 1

    async def test_delete_made_at_stripe_soft_deletes(
        self, hooked: Billing, stripe_provider: StripeProvider, webhook_receiver: WebhookReceiver
    ) -> None:
        customer = await hooked.customers.create(email=unique_email())
        pcid = customer.provider_customer_ids["stripe"]
        await stripe_provider.customers.delete(pcid, idempotency_key="dash-del")
        delivery = await delivery_about(webhook_receiver, pcid, "customer.deleted")
        result = await hooked.webhooks.handle("stripe", delivery.body, delivery.headers)
        assert result.status == "applied"
        local = await hooked.customers.get(customer.id)
        assert local is not None
        assert local.deleted_at is not None
        assert [e.type for e in await hooked.events.list()][-1] == "customer.deleted"

    async def test_late_delivery_applies_the_current_state(
        self, hooked: Billing, stripe_provider: StripeProvider, webhook_receiver: WebhookReceiver
    ) -> None:
        customer = await hooked.customers.create(email=unique_email(), name="v0")
        pcid = customer.provider_customer_ids["stripe"]
        v1 = customer.model_copy(update={"name": "v1"})
        v2 = customer.model_copy(update={"name": "v2"})
        await stripe_provider.customers.update(pcid, customer, v1, idempotency_key="late-1")
        first = await delivery_about(webhook_receiver, pcid, "customer.updated")
        await stripe_provider.customers.update(pcid, v1, v2, idempotency_key="late-2")
        # The older delivery arrives after the newer change: the re-fetch wins.
        await hooked.webhooks.handle("stripe", first.body, first.headers)
        local = await hooked.customers.get(customer.id)
        assert local is not None
        assert local.name == "v2"


class TestUntrustedDeliveries:
    async def test_forged_stale_and_unsigned_change_nothing(self, hooked: Billing) -> None:
        customer = await hooked.customers.create(email=unique_email(), name="Safe")
        body = json.dumps(
            {
                "id": "evt_forged",
                "type": "customer.deleted",
                "data": {"object": {"id": customer.provider_customer_ids["stripe"]}},
            }
        ).encode()
        attempts = [
            {"Stripe-Signature": sign(body, secret="whsec_attacker")},
            {"Stripe-Signature": sign(body, timestamp=int(time.time()) - 3600)},
            {},
            {"Stripe-Signature": "garbage"},
        ]
        for headers in attempts:
            with pytest.raises(WebhookSignatureError):
                await hooked.webhooks.handle("stripe", body, headers)
        tampered = body.replace(b"customer.deleted", b"customer.updated")
        with pytest.raises(WebhookSignatureError):
            await hooked.webhooks.handle("stripe", tampered, {"stripe-signature": sign(body)})
        assert await hooked.customers.get(customer.id) == customer

    async def test_unknown_customer_is_recorded_and_ignored(self, hooked: Billing) -> None:
        body = json.dumps(
            {"id": "evt_stranger", "type": "customer.updated", "data": {"object": {"id": "cus_x"}}}
        ).encode()
        headers = {"stripe-signature": sign(body)}
        assert (await hooked.webhooks.handle("stripe", body, headers)).status == "ignored"
        assert (await hooked.webhooks.handle("stripe", body, headers)).status == "duplicate"
        assert await hooked.events.list() == []

    async def test_unknown_provider(self, hooked: Billing) -> None:
        with pytest.raises(ValidationError):
            await hooked.webhooks.handle("paypal", b"{}", {})
