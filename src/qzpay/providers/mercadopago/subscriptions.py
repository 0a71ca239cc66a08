"""MercadoPago subscriptions behind the SubscriptionAdapter protocol: a qzpay subscription is
one ``preapproval`` created without ``preapproval_plan_id`` (field, status and period mapping
in :mod:`~qzpay.providers.mercadopago.subscription_mapping`).

* Create: only a preapproval without a plan may start ``pending`` without a card; the payer
  authorises it at ``init_point`` (the copy's ``payment_url``). A free price is refused before
  sending (SubscriptionChangeUnsupported: MercadoPago charges only a positive amount), as is a
  currency its subscriptions never take (ProviderCurrencyUnsupported, also recognised in
  MercadoPago's answer for a currency this account's site does not charge).
* Find by qzpay id: the search is asked for ``external_reference``, a filter the reference does
  not list and that integrators report MercadoPago at times ignores (answering every
  preapproval); so every page is read and ``external_reference`` matched exactly here, oldest
  first.
* Cancelling now is ``status: cancelled`` (final). MercadoPago has no cancellation at period
  end: ``cancel(at_period_end=True)`` sets ``auto_recurring.end_date`` to one second before the
  current period's end, so the charge due then is never made, and the copy reads
  ``cancel_at_period_end=True`` from then on. ``uncancel`` sends ``end_date: null``. The
  reference lists only ``transaction_amount`` and ``currency_id`` as updatable in
  ``auto_recurring``: where MercadoPago refuses ``end_date`` (a 400), both raise
  SubscriptionChangeUnsupported, nothing changed. So does every change MercadoPago refuses with
  a 400 (a cancelled preapproval cannot change; a paused one takes only a status change).
* Changing the price: same currency and billing period only (else SubscriptionChangeUnsupported,
  nothing sent); the new amount (price × quantity) applies from the next charge. MercadoPago
  never prorates, whatever ``proration`` asks.
* Pause is ``status: paused``, resume ``status: authorized``.
* Every write carries a deterministic ``X-Idempotency-Key`` from the caller's key (MercadoPago
  documents it for payments only; a create is made safe by :meth:`~MercadoPagoSubscriptions.find`).
* :func:`preapproval_id_of_notification` (``subscription_of``) reads the preapproval id of a
  ``subscription_preapproval`` notification.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from qzpay._time import utcnow
from qzpay.catalog.models import Price
from qzpay.errors import ProviderSyncError
from qzpay.providers.base import ProviderCurrencyUnsupported, ProviderEvent
from qzpay.providers.mercadopago import subscription_mapping as mapping
from qzpay.providers.mercadopago.catalog_mapping import SUBSCRIPTION_CURRENCIES, frequency
from qzpay.providers.mercadopago.mapping import text
from qzpay.providers.mercadopago.paging import fetched
from qzpay.providers.mercadopago.resource import MercadoPagoResource, oldest
from qzpay.providers.mercadopago.transport import (
    PROVIDER,
    Answer,
    MercadoPagoClient,
    currency_unsupported,
    needs_back_url,
    refused_currency,
    status_error,
)
from qzpay.providers.mercadopago.transport import idempotency_key as _key
from qzpay.providers.subscriptions import (
    PriceChange,
    ProviderSubscription,
    SubscriptionChangeUnsupported,
    SubscriptionTerms,
)

NOTIFICATION_TOPIC: Final = "subscription_preapproval"
T = TypeVar("T")
_OLDEST_FIRST: Final = {"sort": "date_created:asc"}
_ID: Final = re.compile(r"[a-f0-9-]+")  # what MercadoPago accepts as a preapproval id
_CURRENCY_REFUSALS: Final = (
    "invalid value for auto_recurring.currency_id",
    "cannot operate with this currency_id",
)
_ACTS: Final = {  # operation -> what SubscriptionChangeUnsupported says could not be done
    "create_subscription": "create",
    "cancel_subscription": "cancel",
    "cancel_subscription_at_period_end": "cancel at period end",
    "uncancel_subscription": "uncancel",
    "change_subscription_price": "change the price of",
    "pause_subscription": "pause",
    "resume_subscription": "resume",
}


def preapproval_id_of_notification(raw: Mapping[str, Any]) -> str | None:
    """The preapproval id a ``subscription_preapproval`` notification is about, else None.

    MercadoPago sends ``{"type": "subscription_preapproval", "entity": "preapproval", "action":
    "created"|"updated", "data": {"id": "<preapproval id>"}, …}`` (``topic`` is read when
    there is no ``type``). The signed ``data.id`` is checked against the body's by
    :func:`~qzpay.providers.mercadopago.webhooks.parse_webhook`.
    """
    kind = raw.get("type", raw.get("topic"))
    data = raw.get("data")
    if kind != NOTIFICATION_TOPIC or not isinstance(data, Mapping):
        return None
    found = data.get("id")
    if isinstance(found, int) and not isinstance(found, bool):
        return str(found)
    return found.strip() if isinstance(found, str) and found.strip() else None


class MercadoPagoSubscriptions:
    """``provider.subscriptions`` of a MercadoPagoProvider (see the module docstring)."""

    def __init__(
        self,
        client: MercadoPagoClient,
        *,
        page_size: int,
        back_url: str | None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._api = MercadoPagoResource(
            client,
            _preapprovals,
            self._read,
            noun="preapproval",
            label="subscription (preapproval)",
            page_size=page_size,
        )
        self._back_url = back_url
        self._clock = clock

    async def create(
        self, terms: SubscriptionTerms, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """A ``pending`` preapproval (incomplete, ``payment_url`` = ``init_point``)."""
        operation = "create_subscription"
        price, back_url = terms.price, self._back_url
        _check_chargeable(operation, price)
        if back_url is None:
            raise needs_back_url(operation, "subscriptions")
        body = _sendable(operation, lambda: mapping.create_body(terms, back_url))
        key = _key("create", terms.subscription.id, idempotency_key)
        answer = await self._api.create(operation, body, key)
        if answer.ok:
            return self._api.parsed(operation, answer)
        if refused_currency(answer, _CURRENCY_REFUSALS):
            raise _currency(price.currency, "this account's site does not charge it", operation)
        raise status_error(operation, answer)

    async def retrieve(self, provider_subscription_id: str, /) -> ProviderSubscription | None:
        """None when it does not exist (an id MercadoPago could not have issued included)."""
        if not _ID.fullmatch(provider_subscription_id):
            return None
        return await self._api.get("retrieve_subscription", provider_subscription_id)

    async def find(self, terms: SubscriptionTerms, /) -> ProviderSubscription | None:
        """The oldest preapproval whose ``external_reference`` is exactly the qzpay id.

        The search is asked to filter on ``external_reference``; a search that ignores the
        filter is still matched exactly here (see the module docstring).
        """
        wanted = terms.subscription.id
        filters = {**_OLDEST_FIRST, "external_reference": wanted}
        matches = [
            (sort_key, item)
            async for sort_key, item in self._api.items("find_subscription", filters)
            if text(item.get("external_reference")) == wanted
        ]
        found = oldest(matches)
        return None if found is None else self._read("find_subscription", found)

    async def cancel(
        self, provider_subscription_id: str, /, *, at_period_end: bool, idempotency_key: str
    ) -> ProviderSubscription:
        """Now (``status: cancelled``), or at the period end (``end_date``; module docstring)."""
        sub_id = provider_subscription_id
        if not at_period_end:
            key = _key("cancel", sub_id, idempotency_key)
            try:
                return await self._status("cancel_subscription", sub_id, "cancelled", key)
            except SubscriptionChangeUnsupported:  # refused: fine if already cancelled
                current = await self._current("cancel_subscription", sub_id)
                if current.status != "canceled":
                    raise
                return current
        operation = "cancel_subscription_at_period_end"
        current = await self._current(operation, sub_id)
        if current.status == "canceled" or current.cancel_at_period_end:
            return current
        end = current.current_period_end - timedelta(seconds=1)
        body = {"auto_recurring": {"end_date": mapping.iso(end)}}
        answer = await self._put(operation, sub_id, body, _key("end_at", sub_id, idempotency_key))
        return self._changed(operation, sub_id, answer)

    async def uncancel(
        self, provider_subscription_id: str, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """Clear ``end_date`` (``null``); a cancelled preapproval cannot come back."""
        operation, sub_id = "uncancel_subscription", provider_subscription_id
        current = await self._current(operation, sub_id)
        if current.status == "canceled":
            raise SubscriptionChangeUnsupported(
                PROVIDER, "uncancel", "a cancelled preapproval is final at MercadoPago"
            )
        if not current.cancel_at_period_end:
            return current
        body = {"auto_recurring": {"end_date": None}}
        answer = await self._put(operation, sub_id, body, _key("uncancel", sub_id, idempotency_key))
        return self._changed(operation, sub_id, answer)

    async def change_price(
        self, provider_subscription_id: str, change: PriceChange, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """A new amount (and ``reason``) for the same currency and billing period; MercadoPago
        never prorates (``change.proration`` is not applied), the amount applies from the next
        charge."""
        operation, sub_id = "change_subscription_price", provider_subscription_id
        price, quantity = change.price, change.quantity
        _check_chargeable(operation, price)
        current, raw = await self._current_raw(operation, sub_id)
        period = mapping.billing_period(raw)
        for differs, what in (
            (current.currency != price.currency, "currency"),
            (period != frequency(price.interval, price.interval_count), "billing period"),
        ):
            if differs:
                why = f"a preapproval's {what} cannot change"
                raise SubscriptionChangeUnsupported(PROVIDER, _ACTS[operation], why)
        body: dict[str, Any] = {}
        if current.unit_amount != price.unit_amount * quantity:
            amount = _sendable(operation, lambda: mapping.transaction_amount(price, quantity))
            body["auto_recurring"] = {"transaction_amount": amount, "currency_id": price.currency}
        if text(raw.get("reason")) != change.plan.name:
            body["reason"] = change.plan.name
        if not body:
            return current
        answer = await self._put(operation, sub_id, body, _key("reprice", sub_id, idempotency_key))
        return self._changed(operation, sub_id, answer)

    async def pause(
        self, provider_subscription_id: str, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """``status: paused``."""
        key = _key("pause", provider_subscription_id, idempotency_key)
        return await self._status("pause_subscription", provider_subscription_id, "paused", key)

    async def resume(
        self, provider_subscription_id: str, /, *, idempotency_key: str
    ) -> ProviderSubscription:
        """``status: authorized`` again."""
        key = _key("resume", provider_subscription_id, idempotency_key)
        return await self._status(
            "resume_subscription", provider_subscription_id, "authorized", key
        )

    def list(self) -> AsyncIterator[ProviderSubscription]:
        """Every preapproval, oldest first, cancelled ones included (offset paging: one may
        come twice, which is dropped, or be missed, which the next reconcile sees)."""
        return self._api.listed("list_subscriptions", _OLDEST_FIRST)

    def subscription_of(self, event: ProviderEvent, /) -> str | None:
        """The preapproval a ``subscription_preapproval`` notification is about (pure)."""
        return preapproval_id_of_notification(event.raw)

    # -- internals -------------------------------------------------------------------------

    async def _status(
        self, operation: str, sub_id: str, status: str, key: str
    ) -> ProviderSubscription:
        answer = await self._put(operation, sub_id, {"status": status}, key)
        return self._changed(operation, sub_id, answer)

    async def _put(self, operation: str, sub_id: str, body: dict[str, Any], key: str) -> Answer:
        if not _ID.fullmatch(sub_id):
            raise self._api.missing(operation, sub_id)
        return await self._api.update(operation, sub_id, body, key)

    def _changed(self, operation: str, sub_id: str, answer: Answer) -> ProviderSubscription:
        """The copy a change answered; a 400 is a change MercadoPago refuses (nothing done)."""
        if answer.status == 404:
            raise self._api.missing(operation, sub_id)
        if answer.status == 400:
            message = answer.message or "refused (HTTP 400)"
            raise SubscriptionChangeUnsupported(PROVIDER, _ACTS[operation], message)
        if not answer.ok:
            raise status_error(operation, answer)
        return self._api.parsed(operation, answer)

    async def _current(self, operation: str, sub_id: str) -> ProviderSubscription:
        return (await self._current_raw(operation, sub_id))[0]

    async def _current_raw(
        self, operation: str, sub_id: str
    ) -> tuple[ProviderSubscription, dict[str, Any]]:
        if not _ID.fullmatch(sub_id):
            raise self._api.missing(operation, sub_id)
        found = await fetched(
            self._api.client, operation, _preapprovals, sub_id,
            lambda op, answer: (self._api.parsed(op, answer), answer.object or {}),
        )  # fmt: skip
        if found is None:
            raise self._api.missing(operation, sub_id)
        return found

    def _read(self, operation: str, data: Mapping[str, Any]) -> ProviderSubscription:
        try:
            return mapping.provider_subscription(data, now=self._clock())
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderSyncError(
                f"{PROVIDER} {operation}: cannot read preapproval {data.get('id')}: {exc}",
                provider=PROVIDER,
                operation=operation,
            ) from exc


def _check_chargeable(operation: str, price: Price) -> None:
    """Refuse, before sending, what MercadoPago cannot charge."""
    if price.unit_amount <= 0:
        raise SubscriptionChangeUnsupported(
            PROVIDER,
            _ACTS[operation],
            "MercadoPago charges only a positive amount (a free price bills nothing there)",
        )
    if price.currency not in SUBSCRIPTION_CURRENCIES:
        raise _currency(price.currency, "its subscriptions do not take it", operation)


def _sendable(operation: str, build: Callable[[], T]) -> T:
    """``build()``; an amount that cannot be sent exactly is a clear, non-ambiguous error."""
    try:
        return build()
    except ValueError as exc:
        raise ProviderSyncError(
            f"{PROVIDER} {operation}: {exc}", provider=PROVIDER, operation=operation
        ) from exc


def _preapprovals(sdk: Any) -> Any:
    return sdk.preapproval()


def _currency(currency: str, why: str, operation: str) -> ProviderCurrencyUnsupported:
    return currency_unsupported(currency, what="subscriptions", why=why, operation=operation)
