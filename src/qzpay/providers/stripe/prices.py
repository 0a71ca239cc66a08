"""Stripe's prices behind the PriceAdapter protocol.

A qzpay price is a recurring Stripe Price of its plan's product (field table in
:mod:`~qzpay.providers.stripe.catalog_mapping`). Stripe holds every price, free ones
included (``unit_amount`` 0). Only the lookup key, metadata and active flag change; Stripe's
API cannot delete a price, so undoing a create archives it.

Finding a price by its qzpay id lists the prices of the plan's product (``GET /v1/prices
?product=…``, a strongly consistent list with a documented filter) and matches
``metadata.qzpay_price_id``, never the eventually consistent Search API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from qzpay.catalog.models import Plan, Price
from qzpay.errors import ProviderSyncError
from qzpay.providers.base import ProviderPrice
from qzpay.providers.stripe.catalog_mapping import (
    merge_price_remote,
    price_create_params,
    price_update_params,
    provider_price,
)
from qzpay.providers.stripe.paging import listed, oldest
from qzpay.providers.stripe.transport import PROVIDER, StripeTransport


class StripePrices:
    """``provider.prices`` of a StripeProvider."""

    def __init__(self, transport: StripeTransport, *, page_size: int) -> None:
        self._transport = transport
        self._prices = transport.client.v1.prices
        self._page_size = page_size

    def holds(self, price: Price, /) -> bool:
        """Stripe holds every price, free ones included."""
        return True

    async def create(
        self, price: Price, /, *, plan: Plan, idempotency_key: str
    ) -> ProviderPrice | None:
        """Create it under the plan's product (``plan.provider_plan_ids["stripe"]``); a plan
        not yet at Stripe is a clean failure (nothing sent)."""
        product = _product(plan, "create_price")
        created = await self._transport.call(
            "create_price",
            self._prices.create_async(
                price_create_params(price, product), {"idempotency_key": idempotency_key}
            ),
        )
        return provider_price(created.to_dict())

    async def update(
        self,
        provider_price_id: str,
        before: Price,
        after: Price,
        /,
        *,
        plan: Plan,
        idempotency_key: str,
    ) -> ProviderPrice:
        """Send what changed among lookup key, metadata and active flag; else only read."""
        params = price_update_params(before, after)
        if not params:
            current = await self.retrieve(provider_price_id)
            if current is None:
                raise _missing("update_price", provider_price_id)
            return current
        updated = await self._transport.call(
            "update_price",
            self._prices.update_async(
                provider_price_id, params, {"idempotency_key": idempotency_key}
            ),
        )
        return provider_price(updated.to_dict())

    async def archive(self, provider_price_id: str, /, *, idempotency_key: str) -> None:
        await self._transport.call_or_none(
            "archive_price",
            self._prices.update_async(
                provider_price_id, {"active": False}, {"idempotency_key": idempotency_key}
            ),
        )

    async def delete(self, provider_price_id: str, /, *, idempotency_key: str) -> None:
        """Stripe's API cannot delete a price: undoing a create archives it."""
        await self.archive(provider_price_id, idempotency_key=idempotency_key)

    async def retrieve(self, provider_price_id: str, /) -> ProviderPrice | None:
        found = await self._transport.call_or_none(
            "retrieve_price", self._prices.retrieve_async(provider_price_id)
        )
        return None if found is None else provider_price(found.to_dict())

    async def find(self, price: Price, /, *, plan: Plan) -> ProviderPrice | None:
        """The price of the plan's product whose ``metadata.qzpay_price_id`` is ``price.id``
        (the oldest if several). None when the plan has no Stripe product: no price of it can
        have been created."""
        product = plan.provider_plan_ids.get(PROVIDER)
        if product is None:
            return None
        matches: list[tuple[dict[str, Any], ProviderPrice]] = []
        async for data in self._list("find_price", product=product):
            found = provider_price(data)
            if found.qzpay_price_id == price.id:
                matches.append((data, found))
        return oldest(matches)

    def merge_remote(self, local: Price, remote: ProviderPrice, /) -> Price:
        """Stripe can change a price's active flag, lookup key and metadata."""
        return merge_price_remote(local, remote)

    async def list(self) -> AsyncIterator[ProviderPrice]:
        async for data in self._list("list_prices"):
            yield provider_price(data)

    def _list(self, operation: str, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Prices matching ``filters``, active or not (no ``active`` filter lists both)."""
        return listed(
            self._transport,
            operation,
            lambda params: self._prices.list_async(params),  # type: ignore[arg-type]
            filters,
            page_size=self._page_size,
        )


def _product(plan: Plan, operation: str) -> str:
    product = plan.provider_plan_ids.get(PROVIDER)
    if product is None:
        raise ProviderSyncError(
            f"{PROVIDER} {operation}: plan {plan.id} has no Stripe product yet; "
            "create the plan at Stripe first",
            provider=PROVIDER,
            operation=operation,
        )
    return product


def _missing(operation: str, provider_price_id: str) -> ProviderSyncError:
    return ProviderSyncError(
        f"{PROVIDER} price {provider_price_id} does not exist",
        provider=PROVIDER,
        operation=operation,
    )
