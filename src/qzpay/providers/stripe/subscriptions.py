"""Stripe's subscriptions behind the SubscriptionAdapter protocol.

A qzpay subscription is a Stripe Subscription of one item: the price's Stripe price
(``price.provider_price_ids["stripe"]``) at the subscription's quantity, for the customer's
Stripe customer, with ``metadata.qzpay_subscription_id``. It is created with
``payment_behavior=allow_incomplete``: Stripe charges the customer's default payment method at
once; when there is none, or the card is declined or needs authentication, the subscription
is ``incomplete`` and ``payment_url`` is the first invoice's ``hosted_invoice_url``, where the
customer pays. It is never reported ``active`` before Stripe says so.

Statuses are Stripe's own names, except that a subscription whose collection is paused
(``pause_collection`` set, which :meth:`~StripeSubscriptions.pause` does with ``behavior:
void``) is ``paused``: Stripe keeps such a subscription ``active`` (or ``trialing``,
``past_due``) and voids its invoices, while for qzpay a subscription that is not paid for
grants nothing. Ended subscriptions stay ``canceled``/``incomplete_expired`` whatever their
collection. A status Stripe may add later reads as ``unpaid``: it grants nothing and is not
final, so a later webhook or reconcile can still move it.

Periods: API versions since 2025-03-31 report ``current_period_start``/``current_period_end``
on the subscription item only, older ones on the subscription; the item's are read first.
Stripe's epoch seconds become aware UTC datetimes. A cancellation at period end is
``cancel_at_period_end`` with ``canceled_at`` set to when it was asked (Stripe's meaning);
``ended_at`` is set once the subscription has ended.

Every write carries the caller's ``Idempotency-Key``; Stripe replays a retry with the same
key instead of applying it twice. :meth:`~StripeSubscriptions.find` lists the customer's
subscriptions of every status (``GET /v1/subscriptions?customer=…&status=all``, strongly
consistent, unlike the Search API) and matches ``metadata.qzpay_subscription_id``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final, cast

from stripe.params import SubscriptionCreateParams, SubscriptionUpdateParams

from qzpay.errors import ProviderSyncError
from qzpay.providers.base import ProviderEvent
from qzpay.providers.common import missing
from qzpay.providers.stripe.fields import metadata as stored_metadata
from qzpay.providers.stripe.fields import text
from qzpay.providers.stripe.resource import StripeResource
from qzpay.providers.stripe.transport import PROVIDER, StripeTransport
from qzpay.providers.subscriptions import (
    QZPAY_SUBSCRIPTION_ID_KEY,
    PriceChange,
    ProviderSubscription,
    SubscriptionChangeUnsupported,
    SubscriptionTerms,
)
from qzpay.subscriptions.models import ENDED, STATUSES, SubscriptionStatus

_EXPAND: Final = ["latest_invoice"]
_EVERY_STATUS: Final = {"status": "all", "expand": ["data.latest_invoice"]}
"""What every listing asks for: subscriptions of every status, latest invoices expanded."""
_PAUSABLE: Final = ("trialing", "active", "past_due", "unpaid")
"""Stripe statuses that read ``paused`` while collection is paused."""
SUBSCRIPTION_INVOICE_EVENTS: Final = ("invoice.paid", "invoice.payment_failed")
"""The invoice events :func:`subscription_id_of_event` reads a subscription id from."""


class StripeSubscriptions:
    """``provider.subscriptions`` of a StripeProvider (see the module docstring)."""

    def __init__(self, transport: StripeTransport, *, page_size: int) -> None:
        subscriptions = transport.client.v1.subscriptions
        self._api = StripeResource(
            transport, subscriptions, provider_subscription, page_size=page_size
        )

    async def create(
        self, terms: SubscriptionTerms, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """Create it at Stripe; ``incomplete`` with ``payment_url`` until the first invoice is
        paid. The customer and the price must already be at Stripe (ValueError otherwise: the
        caller checks that before)."""
        params = create_params(terms)
        return await self._api.create("create_subscription", params, idempotency_key)

    async def retrieve(self, provider_subscription_id: str, /) -> ProviderSubscription | None:
        """Stripe's copy, ended ones included (Stripe keeps them); None on 404."""
        expand = {"expand": _EXPAND}
        return await self._api.retrieve("retrieve_subscription", provider_subscription_id, expand)

    async def find(self, terms: SubscriptionTerms, /) -> ProviderSubscription | None:
        """The customer's subscription (any status) whose ``metadata.qzpay_subscription_id`` is
        ``terms.subscription.id``, the oldest if several; None when the customer is not at
        Stripe (no subscription of it can have been created)."""
        customer = terms.customer.provider_customer_ids.get(PROVIDER)
        if customer is None:
            return None
        wanted = terms.subscription.id
        return await self._api.find(
            "find_subscription",
            {"customer": customer, **_EVERY_STATUS},
            lambda found: found.qzpay_subscription_id == wanted,
        )

    async def cancel(
        self, provider_subscription_id: str, /, *, at_period_end: bool, idempotency_key: str
    ) -> ProviderSubscription:
        """``cancel_at_period_end=true``, or cancel now (``DELETE``). A subscription that has
        already ended meets either goal: its copy is returned (Stripe refuses both, with a 400
        for the update and a 404 "No such subscription" for the ``DELETE``)."""
        operation = "cancel_subscription"
        try:
            if at_period_end:
                params: SubscriptionUpdateParams = {
                    "cancel_at_period_end": True,
                    "expand": _EXPAND,
                }
                return await self._api.update(
                    operation, provider_subscription_id, params, idempotency_key
                )
            canceled = await self._api.transport.call_or_none(
                operation,
                self._api.sdk.cancel_async(
                    provider_subscription_id,
                    {"expand": _EXPAND},
                    {"idempotency_key": idempotency_key},
                ),
            )
        except ProviderSyncError as exc:
            return await self._ended_after(exc, provider_subscription_id)
        if canceled is not None:
            return provider_subscription(canceled.to_dict())
        current = provider_subscription(await self._read(operation, provider_subscription_id))
        if current.status not in ENDED:
            raise ProviderSyncError(
                f"{PROVIDER} answered 404 to canceling subscription {provider_subscription_id}, "
                f"which is {current.status}",
                provider=PROVIDER,
                operation=operation,
            )
        return current

    async def uncancel(
        self, provider_subscription_id: str, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """``cancel_at_period_end=false``. A subscription that has already ended cannot be
        undone: a non-ambiguous ProviderSyncError saying so."""
        params: SubscriptionUpdateParams = {"cancel_at_period_end": False, "expand": _EXPAND}
        try:
            return await self._api.update(
                "uncancel_subscription", provider_subscription_id, params, idempotency_key
            )
        except ProviderSyncError as exc:
            ended = await self._ended_after(exc, provider_subscription_id)
            raise ProviderSyncError(
                f"{PROVIDER} subscription {provider_subscription_id} has already ended "
                f"({ended.status}); only a cancellation at period end can be undone, "
                "before the period ends",
                provider=PROVIDER,
                operation="uncancel_subscription",
                cause=exc,
            ) from exc

    async def change_price(
        self, provider_subscription_id: str, change: PriceChange, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """Replace the price of the subscription's item (same item id) and its quantity, with
        Stripe's ``proration_behavior`` of the same name. A Stripe subscription bills in one
        currency: a price in another is :class:`SubscriptionChangeUnsupported` (nothing sent).
        """
        operation, price = "change_subscription_price", change.price
        stripe_price = _stripe_id(price.provider_price_ids, "price", price.id)
        current = await self._read(operation, provider_subscription_id)
        items = current.get("items")
        data = items.get("data") if isinstance(items, Mapping) else None
        item = data[0] if isinstance(data, list) and data else None
        item_id = text(item.get("id")) if isinstance(item, Mapping) else None
        if item_id is None:
            raise ProviderSyncError(
                f"{PROVIDER} subscription {provider_subscription_id} has no item to change",
                provider=PROVIDER,
                operation=operation,
            )
        currency = text(current.get("currency"))
        if currency is not None and currency.upper() != price.currency.upper():
            raise SubscriptionChangeUnsupported(
                PROVIDER,
                "change the price of",
                f"it bills in {currency.upper()} and price {price.id} is in "
                f"{price.currency.upper()}; a Stripe subscription's currency cannot change",
            )
        params: SubscriptionUpdateParams = {
            "items": [{"id": item_id, "price": stripe_price, "quantity": change.quantity}],
            "proration_behavior": change.proration,
            "expand": _EXPAND,
        }
        return await self._api.update(operation, provider_subscription_id, params, idempotency_key)

    async def pause(
        self, provider_subscription_id: str, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """``pause_collection[behavior]=void``: Stripe keeps the subscription and voids its
        invoices; the copy reads ``paused``."""
        params: SubscriptionUpdateParams = {
            "pause_collection": {"behavior": "void"},
            "expand": _EXPAND,
        }
        return await self._api.update(
            "pause_subscription", provider_subscription_id, params, idempotency_key
        )

    async def resume(
        self, provider_subscription_id: str, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """``pause_collection=""``: Stripe collects payments again."""
        params: SubscriptionUpdateParams = {"pause_collection": "", "expand": _EXPAND}
        return await self._api.update(
            "resume_subscription", provider_subscription_id, params, idempotency_key
        )

    def subscription_of(self, event: ProviderEvent, /) -> str | None:
        """The Stripe subscription a verified delivery is about (see
        :func:`subscription_id_of_event`), or None."""
        return subscription_id_of_event(event.raw)

    async def list(self) -> AsyncIterator[ProviderSubscription]:
        """Every subscription at Stripe, ended ones included, one page request at a time."""
        async for data in self._api.listed("list_subscriptions", _EVERY_STATUS):
            yield provider_subscription(data)

    # -- internals -------------------------------------------------------------------------

    async def _read(self, operation: str, provider_subscription_id: str) -> dict[str, Any]:
        """The subscription as a dict, read before a write: a failure here sent no write, so
        it is never ambiguous; a missing subscription is an error."""
        try:
            found = await self._api.fetch(operation, provider_subscription_id)
        except ProviderSyncError as exc:
            cause = type(exc.cause).__name__ if exc.cause is not None else "error"
            raise ProviderSyncError(
                f"{PROVIDER} {operation} failed: reading subscription {provider_subscription_id} "
                f"first failed ({cause}); nothing was changed",
                provider=PROVIDER,
                operation=operation,
                cause=exc.cause,
            ) from exc
        if found is None:
            raise missing(PROVIDER, operation, "subscription", provider_subscription_id)
        return found

    async def _ended_after(
        self, refusal: ProviderSyncError, provider_subscription_id: str
    ) -> ProviderSubscription:
        """After Stripe failed a write: the copy if the subscription has ended, else
        ``refusal`` again (an ambiguous failure, or a failed read, is what the caller reports)."""
        if refusal.ambiguous:
            raise refusal
        try:
            found = await self.retrieve(provider_subscription_id)
        except ProviderSyncError:
            found = None
        if found is None or found.status not in ENDED:
            raise refusal
        return found


# -- mapping --------------------------------------------------------------------------------


def create_params(terms: SubscriptionTerms) -> SubscriptionCreateParams:
    """What :meth:`StripeSubscriptions.create` sends."""
    subscription = terms.subscription
    params: SubscriptionCreateParams = {
        "customer": _stripe_id(terms.customer.provider_customer_ids, "customer", terms.customer.id),
        "items": [
            {
                "price": _stripe_id(terms.price.provider_price_ids, "price", terms.price.id),
                "quantity": subscription.quantity,
            }
        ],
        "metadata": {**subscription.metadata, QZPAY_SUBSCRIPTION_ID_KEY: subscription.id},
        "payment_behavior": "allow_incomplete",
        "expand": _EXPAND,
    }
    if terms.trial_days:
        params["trial_period_days"] = terms.trial_days
    return params


def provider_subscription(data: Mapping[str, Any]) -> ProviderSubscription:
    """A Stripe subscription (as a dict, ``latest_invoice`` expanded or not) as the
    provider-neutral ProviderSubscription.

    Never raises on a field it cannot read (the call it answers may have been applied): a
    missing period falls back to the start date, a missing quantity to 1.
    """
    metadata = stored_metadata(data.get("metadata"))
    qzpay_id = metadata.pop(QZPAY_SUBSCRIPTION_ID_KEY, None)
    items = data.get("items")
    listed_items = items.get("data") if isinstance(items, Mapping) else None
    item = listed_items[0] if isinstance(listed_items, list) and listed_items else {}
    item = item if isinstance(item, Mapping) else {}
    price = item.get("price")
    price_data: Mapping[str, Any] = price if isinstance(price, Mapping) else {}
    status = qzpay_status(data)
    started = _time(data.get("start_date")) or _time(data.get("created")) or datetime.now(UTC)
    period_start = (
        _time(item.get("current_period_start"))
        or _time(data.get("current_period_start"))
        or started
    )
    period_end = (
        _time(item.get("current_period_end")) or _time(data.get("current_period_end")) or started
    )
    latest = data.get("latest_invoice")
    payment_url = (
        text(latest.get("hosted_invoice_url"))
        if status == "incomplete" and isinstance(latest, Mapping)
        else None
    )
    quantity = item.get("quantity")
    amount = price_data.get("unit_amount")
    currency = text(price_data.get("currency")) or text(data.get("currency"))
    customer = data.get("customer")
    return ProviderSubscription(
        id=str(data["id"]),
        qzpay_subscription_id=qzpay_id,
        provider_customer_id=text(
            customer.get("id") if isinstance(customer, Mapping) else customer
        ),
        provider_price_id=text(price_data.get("id")) if price_data else text(price),
        quantity=quantity if isinstance(quantity, int) else 1,
        status=status,
        current_period_start=period_start,
        current_period_end=period_end,
        trial_start=_time(data.get("trial_start")),
        trial_end=_time(data.get("trial_end")),
        cancel_at_period_end=data.get("cancel_at_period_end") is True,
        canceled_at=_time(data.get("canceled_at")),
        ended_at=_time(data.get("ended_at")),
        payment_url=payment_url,
        unit_amount=amount if isinstance(amount, int) else None,
        currency=currency.upper() if currency is not None else None,
        metadata=metadata,
    )


def qzpay_status(data: Mapping[str, Any]) -> SubscriptionStatus:
    """Stripe's status in qzpay's terms (see the module docstring)."""
    status = data.get("status")
    mapped = cast(SubscriptionStatus, status) if status in STATUSES else "unpaid"
    if data.get("pause_collection") and mapped in _PAUSABLE:
        return "paused"
    return mapped


def subscription_id_of_event(raw: Mapping[str, Any]) -> str | None:
    """The Stripe subscription a webhook event is about, or None: the object of a
    ``customer.subscription.*`` event; for ``invoice.paid`` and ``invoice.payment_failed``
    the invoice's ``subscription`` (API versions before 2025-03-31) or
    ``parent.subscription_details.subscription`` (later ones). Pure: reads the parsed event
    (``ProviderEvent.raw``) only."""
    kind = raw.get("type")
    data = raw.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(kind, str) or not isinstance(obj, Mapping):
        return None
    if kind.startswith("customer.subscription."):
        return text(obj.get("id"))
    if kind not in SUBSCRIPTION_INVOICE_EVENTS:
        return None
    found = _id(obj.get("subscription"))
    if found is None:
        parent = obj.get("parent")
        details = parent.get("subscription_details") if isinstance(parent, Mapping) else None
        found = _id(details.get("subscription")) if isinstance(details, Mapping) else None
    return found


def _id(value: object) -> str | None:
    """An object's id, whether the field holds the id or the expanded object."""
    return text(value.get("id")) if isinstance(value, Mapping) else text(value)


def _stripe_id(links: Mapping[str, str], noun: str, qzpay_id: str) -> str:
    found = links.get(PROVIDER)
    if found is None:
        raise ValueError(f"{noun} {qzpay_id} is not at Stripe yet (no Stripe {noun} id)")
    return found


def _time(value: object) -> datetime | None:
    """Stripe's epoch seconds as an aware UTC datetime (None when unset)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, UTC)
