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

from qzpay.catalog.models import Plan, Price
from qzpay.errors import ProviderSyncError
from qzpay.providers.base import PriceUpdate, ProviderPrice
from qzpay.providers.stripe.catalog_base import StripeCatalogAdapter
from qzpay.providers.stripe.catalog_mapping import (
    merge_price_remote,
    price_create_params,
    price_update_params,
    provider_price,
)
from qzpay.providers.stripe.resource import StripeResource
from qzpay.providers.stripe.transport import PROVIDER, StripeTransport


class StripePrices(StripeCatalogAdapter[ProviderPrice]):
    """``provider.prices`` of a StripeProvider."""

    _kind = "price"
    _noun = "price"

    def __init__(self, transport: StripeTransport, *, page_size: int) -> None:
        prices = transport.client.v1.prices
        super().__init__(StripeResource(transport, prices, provider_price, page_size=page_size))

    def holds(self, price: Price, /) -> bool:
        """Stripe holds every price, free ones included."""
        return True

    async def create(
        self, price: Price, /, *, plan: Plan, idempotency_key: str
    ) -> ProviderPrice | None:
        """Create it under the plan's product (``plan.provider_plan_ids["stripe"]``); a plan
        not yet at Stripe is a clean failure (nothing sent)."""
        product = _product(plan, "create_price")
        return await self._create(price_create_params(price, product), idempotency_key)

    async def update(
        self, provider_price_id: str, change: PriceUpdate, /, *, idempotency_key: str
    ) -> ProviderPrice:
        """Send what changed among lookup key, metadata and active flag; else only read."""
        params = price_update_params(change.before, change.after)
        return await self._update(provider_price_id, params, idempotency_key)

    async def delete(self, provider_price_id: str, /, *, idempotency_key: str) -> None:
        """Stripe's API cannot delete a price: undoing a create archives it."""
        await self.archive(provider_price_id, idempotency_key=idempotency_key)

    async def find(self, price: Price, /, *, plan: Plan) -> ProviderPrice | None:
        """The price of the plan's product whose ``metadata.qzpay_price_id`` is ``price.id``
        (the oldest if several). None when the plan has no Stripe product: no price of it can
        have been created."""
        product = plan.provider_plan_ids.get(PROVIDER)
        if product is None:
            return None
        return await self._api.find(
            "find_price", {"product": product}, lambda found: found.qzpay_price_id == price.id
        )

    def merge_remote(self, local: Price, remote: ProviderPrice, /) -> Price:
        """Stripe can change a price's active flag, lookup key and metadata."""
        return merge_price_remote(local, remote)


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
