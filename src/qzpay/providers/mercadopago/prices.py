"""MercadoPago's subscription plans (``preapproval_plan``) as qzpay's prices, behind the
PriceAdapter protocol (field table in :mod:`~qzpay.providers.mercadopago.catalog_mapping`).

* A free price has no MercadoPago object: :meth:`MercadoPagoPrices.holds` is False and
  :meth:`~MercadoPagoPrices.create` returns None without sending anything.
* A currency MercadoPago cannot charge is a
  :class:`~qzpay.providers.base.ProviderCurrencyUnsupported` (code
  ``provider_currency_unsupported``): before sending for one its subscription API does not
  document, and from its answer ("Invalid value for currency_id", "Cannot operate with this
  currency_id in this site") for one this account's site does not charge.
* Find by qzpay id: ``external_reference`` is the one free field MercadoPago lets us set on a
  ``preapproval_plan`` ("Reference to sync with your system"), and the plan search documents no
  filter on it (only ``status``, a free-text ``q`` over unspecified fields, ``sort``,
  ``criteria``, ``offset``, ``limit``). So :meth:`~MercadoPagoPrices.find` pages through the
  search, oldest first, and matches ``external_reference`` exactly; a free-text match is
  never trusted.
* Archiving is ``status: cancelled`` ("plan not available to create subscriptions"); the
  API has no delete, so undoing a create archives too.
* Every write carries a deterministic ``X-Idempotency-Key`` derived from the caller's key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

from qzpay.catalog.models import Plan, Price
from qzpay.providers.base import PriceUpdate, ProviderCurrencyUnsupported, ProviderPrice
from qzpay.providers.mercadopago import catalog_mapping as mapping
from qzpay.providers.mercadopago.resource import MercadoPagoResource, oldest
from qzpay.providers.mercadopago.transport import (
    MercadoPagoClient,
    currency_unsupported,
    needs_back_url,
    refused_currency,
    status_error,
)
from qzpay.providers.mercadopago.transport import (
    idempotency_key as _key,  # the methods' ``idempotency_key`` parameter hides the name
)

_OLDEST_FIRST: Final = {"sort": "date_created", "criteria": "asc"}
_CURRENCY_REFUSALS: Final = (
    "invalid value for currency_id",
    "cannot operate with this currency_id",
)


class MercadoPagoPrices:
    """``provider.prices`` of a MercadoPagoProvider."""

    def __init__(self, client: MercadoPagoClient, *, page_size: int, back_url: str | None) -> None:
        self._api = MercadoPagoResource(
            client, _plans, _read, noun="plan", label="subscription plan", page_size=page_size
        )
        self._back_url = back_url

    def holds(self, price: Price, /) -> bool:
        """Only prices with a positive amount: MercadoPago needs one."""
        return mapping.holds(price)

    async def create(
        self, price: Price, /, *, plan: Plan, idempotency_key: str
    ) -> ProviderPrice | None:
        """Create the ``preapproval_plan``; None (nothing sent) for a free price."""
        operation = "create_price"
        if not mapping.holds(price):
            return None
        if price.currency not in mapping.SUBSCRIPTION_CURRENCIES:
            raise _unsupported(price.currency, "its subscription plans do not take it")
        if self._back_url is None:
            raise needs_back_url(operation, "subscription plans")
        body = mapping.create_body(price, plan, self._back_url)
        answer = await self._api.create(operation, body, _key("create", price.id, idempotency_key))
        if answer.ok:
            return self._api.parsed(operation, answer)
        if refused_currency(answer, _CURRENCY_REFUSALS):
            raise _unsupported(price.currency, "this account's site does not charge it")
        raise status_error(operation, answer)

    async def update(
        self, provider_price_id: str, change: PriceUpdate, /, *, idempotency_key: str
    ) -> ProviderPrice:
        """Send the status if the active flag changed, the plan's name as ``reason`` and the
        amount and currency if MercadoPago shows others; else only read (lookup key and
        metadata are not held)."""
        operation = "update_price"
        before, after, plan = change.before, change.after, change.plan
        current = await self._api.get(operation, provider_price_id)
        if current is None:
            raise self._api.missing(operation, provider_price_id)
        body: dict[str, Any] = {}
        if before.active != after.active and current.active != after.active:
            body["status"] = mapping.status(after.active)
        if current.name != plan.name:
            body["reason"] = plan.name
        if (current.unit_amount, current.currency) != (after.unit_amount, after.currency):
            # qzpay's amount never changes: a copy charging another one (edited in the
            # dashboard) is put back. Its billing period cannot be changed at MercadoPago.
            body["auto_recurring"] = {
                "transaction_amount": mapping.transaction_amount(after),
                "currency_id": after.currency,
            }
        if not body:
            return current
        key = _key("update", after.id, idempotency_key)
        answer = await self._api.update(operation, provider_price_id, body, key)
        if answer.status == 404:
            raise self._api.missing(operation, provider_price_id)
        if not answer.ok:
            raise status_error(operation, answer)
        return self._api.parsed(operation, answer)

    async def archive(self, provider_price_id: str, /, *, idempotency_key: str) -> None:
        operation = "archive_price"
        key = _key("archive", provider_price_id, idempotency_key)
        body = {"status": mapping.CANCELLED}
        answer = await self._api.update(operation, provider_price_id, body, key)
        if not answer.ok and answer.status != 404:  # 404: gone, nothing left to sell
            raise status_error(operation, answer)

    async def delete(self, provider_price_id: str, /, *, idempotency_key: str) -> None:
        """MercadoPago's API cannot delete a plan: undoing a create cancels it."""
        await self.archive(provider_price_id, idempotency_key=idempotency_key)

    async def retrieve(self, provider_price_id: str, /) -> ProviderPrice | None:
        return await self._api.get("retrieve_price", provider_price_id)

    async def find(self, price: Price, /, *, plan: Plan) -> ProviderPrice | None:
        """The plan whose ``external_reference`` is ``price.id`` (the oldest if several; see
        the module docstring). None for a free price, which is never created here."""
        if not mapping.holds(price):
            return None
        matches = [
            found
            async for found in self._api.search("find_price", _OLDEST_FIRST)
            if found[1].qzpay_price_id == price.id
        ]
        return oldest(matches)

    def merge_remote(self, local: Price, remote: ProviderPrice, /) -> Price:
        """MercadoPago can change a price's active flag only (see the mapping)."""
        return mapping.merge_remote(local, remote)

    def list(self) -> AsyncIterator[ProviderPrice]:
        """Every subscription plan, oldest first (offset paging: see the customers' list)."""
        return self._api.listed("list_prices", _OLDEST_FIRST)


def _plans(sdk: Any) -> Any:
    return sdk.plan()


def _read(operation: str, data: Mapping[str, Any]) -> ProviderPrice:
    return mapping.provider_price(data)


def _unsupported(currency: str, why: str) -> ProviderCurrencyUnsupported:
    return currency_unsupported(
        currency, what="subscription plans", why=why, operation="create_price"
    )
