"""The provider's copy of a subscription, taken as the truth for what the provider owns.

The billing state (status, periods, trial, cancellation, payment page, quantity) is the
provider's; so is the price when the provider names it (a Stripe dashboard change of the
subscription's price is a change of ``price_id`` and ``plan_id`` here, when qzpay knows that
provider price). A MercadoPago preapproval names no price object: its price changes only
through ``change_price``, which passes the price it set (``price``), and it holds no quantity
(only the amount per period), so qzpay's quantity is kept.
"""

from __future__ import annotations

from datetime import datetime

from qzpay.catalog.models import Price
from qzpay.providers.subscriptions import ProviderSubscription
from qzpay.storage.base import Storage
from qzpay.subscriptions.models import Subscription


async def price_of(storage: Storage, provider: str, provider_price_id: str) -> Price | None:
    """The qzpay price linked to ``provider_price_id`` at ``provider``, if any."""
    found = await storage.find_prices_by_provider_id(provider_price_id, provider=provider)
    return found[0] if found else None


async def absorb(
    storage: Storage,
    record: Subscription,
    remote: ProviderSubscription,
    *,
    now: datetime,
    price: Price | None = None,
) -> Subscription:
    """``record`` with the provider's values, stamped ``now``."""
    fields: dict[str, object] = {
        "provider_subscription_id": remote.id,
        "status": remote.status,
        "current_period_start": remote.current_period_start,
        "current_period_end": remote.current_period_end,
        "trial_start": remote.trial_start,
        "trial_end": remote.trial_end,
        "cancel_at_period_end": remote.cancel_at_period_end,
        "canceled_at": remote.canceled_at,
        "ended_at": remote.ended_at,
        "payment_url": remote.payment_url if remote.status == "incomplete" else None,
        "updated_at": now,
    }
    if remote.provider_price_id is not None:
        # A provider with price objects (Stripe) holds the quantity; one without (MercadoPago
        # bills an amount per period) does not, so qzpay's quantity stands.
        fields["quantity"] = remote.quantity
    if price is None and remote.provider_price_id is not None and record.provider is not None:
        current = await storage.get_price(record.price_id)
        linked = None if current is None else current.provider_price_ids.get(record.provider)
        if linked != remote.provider_price_id:
            price = await price_of(storage, record.provider, remote.provider_price_id)
    if price is not None:
        fields["price_id"] = price.id
        fields["plan_id"] = price.plan_id
    return record.model_copy(update=fields)
