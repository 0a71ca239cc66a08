"""The provider-neutral contract of subscriptions at a payment provider.

A provider that bills subscriptions is a :class:`SupportsSubscriptions`
(``provider.subscriptions``, a :class:`SubscriptionAdapter`); :func:`subscriptions_of` gives
it or None. Unlike customers and the catalog, a subscription lives at exactly one provider,
and that provider owns its billing state: every call returns the provider's copy after the
call (:class:`ProviderSubscription`), which qzpay stores as it is.

Every failing call raises :class:`qzpay.errors.ProviderSyncError` (``ambiguous`` set when the
provider may have applied it: a timeout, a dropped response, a 5xx). Writes take an
``idempotency_key``: a retry with the same key cannot apply twice where the provider honours
keys (Stripe); MercadoPago has none, so its ``create`` is made safe by :meth:`find` (the
``external_reference`` is the qzpay id). What a provider cannot do is a
:class:`SubscriptionChangeUnsupported`, never a silent local-only change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from qzpay.catalog.models import Plan, Price
from qzpay.customers.models import Customer
from qzpay.errors import ConflictError, ProviderSyncError
from qzpay.providers.base import ProviderEvent
from qzpay.subscriptions.models import Proration, Subscription, SubscriptionStatus

QZPAY_SUBSCRIPTION_ID_KEY = "qzpay_subscription_id"
"""Metadata key that ties a provider subscription to its qzpay subscription (Stripe;
MercadoPago uses ``external_reference``)."""


@dataclass(frozen=True, slots=True)
class ProviderSubscription:
    """The provider's copy of a subscription, in qzpay's terms (no SDK type).

    ``status`` is already one of qzpay's statuses (each adapter documents its mapping).
    ``provider_price_id`` is the provider's price object, where it has one (Stripe; None for a
    MercadoPago preapproval, which carries its terms itself: ``unit_amount``, ``currency``).
    ``metadata`` excludes the qzpay id key.
    """

    id: str
    qzpay_subscription_id: str | None
    provider_customer_id: str | None
    provider_price_id: str | None
    quantity: int
    status: SubscriptionStatus
    current_period_start: datetime
    current_period_end: datetime
    trial_start: datetime | None = None
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = None
    ended_at: datetime | None = None
    payment_url: str | None = None
    unit_amount: int | None = None
    currency: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubscriptionTerms:
    """What a create asks the provider for: the qzpay subscription (its id, quantity and
    metadata), its customer and price as stored in qzpay (with their provider links), the
    price's plan, and the trial in days (None or 0: none)."""

    subscription: Subscription
    customer: Customer
    price: Price
    plan: Plan
    trial_days: int | None = None


@dataclass(frozen=True, slots=True)
class PriceChange:
    """What a price change asks the provider to bill from now on: ``price`` as stored in qzpay
    (with its provider links), its plan, the quantity, and how to charge for the rest of the
    current period (``proration``, where the provider prorates)."""

    price: Price
    plan: Plan
    quantity: int
    proration: Proration


class SubscriptionChangeUnsupported(ConflictError, ProviderSyncError):
    """The provider cannot make this change (MercadoPago cannot switch a preapproval's
    currency or billing period): nothing was sent, nothing changes."""

    code = "provider_change_unsupported"

    def __init__(self, provider: str, operation: str, reason: str) -> None:
        message = f"{provider} cannot {operation} this subscription: {reason}"
        super().__init__(message, provider=provider, operation=operation, ambiguous=False)


class SubscriptionAdapter(Protocol):
    """A provider's subscriptions (see the module docstring)."""

    async def create(
        self, terms: SubscriptionTerms, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """Start the subscription at the provider, tied to ``terms.subscription.id``. It is
        ``incomplete`` (with ``payment_url``) until the provider has been paid or authorised;
        never ``active`` before the provider says so."""
        ...

    async def retrieve(self, provider_subscription_id: str, /) -> ProviderSubscription | None:
        """The provider's current copy, or None when it does not exist."""
        ...

    async def find(self, terms: SubscriptionTerms, /) -> ProviderSubscription | None:
        """The provider subscription carrying ``terms.subscription.id`` as its qzpay id (the
        oldest if several), to resolve an ambiguous create without creating twice."""
        ...

    async def cancel(
        self, provider_subscription_id: str, /, *, at_period_end: bool, idempotency_key: str
    ) -> ProviderSubscription:
        """Cancel now, or stop billing when the current period ends (``at_period_end``)."""
        ...

    async def uncancel(
        self, provider_subscription_id: str, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """Undo a cancellation at period end, before the period ends."""
        ...

    async def change_price(
        self, provider_subscription_id: str, change: PriceChange, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """Bill ``change.price`` at ``change.quantity`` from now on;
        :class:`SubscriptionChangeUnsupported` when the provider cannot."""
        ...

    async def pause(
        self, provider_subscription_id: str, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """Stop collecting payments (the copy reports ``paused``)."""
        ...

    async def resume(
        self, provider_subscription_id: str, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """Collect payments again after :meth:`pause`."""
        ...

    def list(self) -> AsyncIterator[ProviderSubscription]:
        """Every subscription at the provider, ended ones included, page by page (for
        reconcile)."""
        ...

    def subscription_of(self, event: ProviderEvent, /) -> str | None:
        """The provider subscription id a verified webhook delivery is about (Stripe's
        ``customer.subscription.*``, ``invoice.paid``, ``invoice.payment_failed``;
        MercadoPago's ``subscription_preapproval``), or None when it is about none. Pure: no
        I/O; the caller re-fetches the subscription."""
        ...


@runtime_checkable
class SupportsSubscriptions(Protocol):
    """A provider that bills subscriptions (``provider.subscriptions``)."""

    @property
    def subscriptions(self) -> SubscriptionAdapter: ...


def subscriptions_of(provider: object) -> SubscriptionAdapter | None:
    """``provider.subscriptions``, or None for a provider that bills no subscriptions."""
    return provider.subscriptions if isinstance(provider, SupportsSubscriptions) else None
