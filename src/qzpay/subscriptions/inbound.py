"""What a provider's webhook says about a subscription: re-fetched, then applied.

A delivery is a trigger, not data (deliveries arrive late, twice and out of order): the
subscription it names is re-fetched and the provider's current copy applied, with the delivery
id recorded in the same transaction (a redelivery changes nothing). So whatever the order of
deliveries, the stored subscription ends as the provider's current state.

* A subscription qzpay knows (by its provider id, or by the qzpay id the provider copy carries,
  for one created in "log" mode whose link is not committed yet) is updated.
* One whose create is still under way here (an intent) is refused with ConflictError
  ``operation_in_progress``: the provider delivers it again later, by which time the create
  has committed (the HTTP edge answers 409, a provider retries non-2xx answers).
* One created outside qzpay (Stripe Checkout, the dashboard) for a customer and a price qzpay
  knows at that provider is **adopted**: stored with ``subscription.created``. Anything else is
  ignored (its delivery recorded).
"""

from __future__ import annotations

from typing import Literal

from qzpay._time import utcnow
from qzpay.errors import ConflictError
from qzpay.providers.subscriptions import ProviderSubscription, SubscriptionAdapter
from qzpay.subscriptions import ledger
from qzpay.subscriptions.billed import Billed
from qzpay.subscriptions.models import Subscription, subscription_ids
from qzpay.subscriptions.remote_state import absorb, price_of

Outcome = tuple[Literal["applied", "ignored", "duplicate"], str | None]
"""What a delivery did, and the qzpay subscription id it applied to."""


async def apply_delivery(
    billed: Billed,
    provider: str,
    adapter: SubscriptionAdapter,
    provider_subscription_id: str,
    event_id: str,
) -> Outcome:
    storage = billed.storage
    found = await storage.find_subscriptions_by_provider_id(
        provider_subscription_id, provider=provider
    )
    remote = await adapter.retrieve(provider_subscription_id)
    local = found[0] if found else None
    if local is None and remote is not None and remote.qzpay_subscription_id is not None:
        local = await storage.get_subscription(remote.qzpay_subscription_id)
        if local is None and await _creating(billed, remote.qzpay_subscription_id):
            raise ConflictError(
                f"subscription {remote.qzpay_subscription_id} is still being created; "
                "deliver again later",
                code="operation_in_progress",
            )
    delivery = (provider, event_id)
    if local is not None and remote is not None and local.provider == provider:
        applied = await billed.apply(local.id, remote, delivery=delivery)
        return ("duplicate", None) if applied is None else ("applied", local.id)
    if local is None and remote is not None and remote.qzpay_subscription_id is None:
        adopted = await _adopt(billed, provider, remote, event_id)
        if adopted is not None:
            return adopted
    return await _ignore(billed, delivery)


async def _creating(billed: Billed, subscription_id: str) -> bool:
    """Whether a create of ``subscription_id`` is under way here (its intent is stored)."""
    async with billed.units() as work:
        return await work.tx.get_sync_task(subscription_id) is not None


async def _ignore(billed: Billed, delivery: tuple[str, str]) -> Outcome:
    async with billed.units() as work:
        recorded = await work.tx.record_webhook_event(delivery[0], delivery[1], utcnow())
    return ("ignored" if recorded else "duplicate"), None


async def _adopt(
    billed: Billed, provider: str, remote: ProviderSubscription, event_id: str
) -> Outcome | None:
    """Adopt with the delivery recorded in the same transaction; None when qzpay does not
    know the subscription's customer or price at that provider."""
    record = await adoptable(billed, provider, remote)
    if record is None:
        return None
    async with billed.units() as work:
        if not await work.tx.record_webhook_event(provider, event_id, utcnow()):
            return "duplicate", None
        await ledger.write(work, None, record)
    return "applied", record.id


async def adopt(billed: Billed, provider: str, remote: ProviderSubscription) -> str | None:
    """Store a provider subscription made outside qzpay (reconcile's repair); its new id,
    or None when qzpay does not know its customer or price at that provider."""
    record = await adoptable(billed, provider, remote)
    if record is None:
        return None
    async with billed.units() as work:
        await ledger.write(work, None, record)
    return record.id


async def adoptable(
    billed: Billed, provider: str, remote: ProviderSubscription
) -> Subscription | None:
    """The subscription adopting ``remote`` would store, if qzpay knows its customer (live)
    and its price at that provider."""
    storage = billed.storage
    if remote.provider_customer_id is None or remote.provider_price_id is None:
        return None
    customers = await storage.find_customers_by_provider_id(
        remote.provider_customer_id, provider=provider
    )
    price = await price_of(storage, provider, remote.provider_price_id)
    if not customers or price is None or customers[0].deleted_at is not None:
        return None
    now = utcnow()
    record = Subscription(
        id=subscription_ids.new(),
        customer_id=customers[0].id,
        price_id=price.id,
        plan_id=price.plan_id,
        quantity=remote.quantity,
        status=remote.status,
        current_period_start=remote.current_period_start,
        current_period_end=remote.current_period_end,
        provider=provider,
        metadata=dict(remote.metadata),
        created_at=now,
        updated_at=now,
    )
    return await absorb(storage, record, remote, now=now, price=price)
