"""Stripe's products as qzpay's plans, behind the PlanAdapter protocol.

A qzpay plan is a Stripe Product: name, description, active flag, metadata with
``qzpay_plan_id`` (field table in :mod:`~qzpay.providers.stripe.catalog_mapping`). Every
mutating call carries the caller's ``Idempotency-Key``.

Finding a plan by its qzpay id (after an ambiguous create) lists the account's products and
matches ``metadata.qzpay_plan_id``: Stripe's product list has no metadata filter, and its
Search API (``metadata['qzpay_plan_id']:'…'``) is eventually consistent — a product created
a moment ago may not be found yet, and resending would duplicate it. Listing is strongly
consistent; a catalog holds few products, so it is a few pages.
"""

from __future__ import annotations

import stripe

from qzpay.catalog.models import Plan
from qzpay.errors import ProviderSyncError
from qzpay.providers.base import ProviderPlan, merge_plan_remote
from qzpay.providers.stripe.catalog_base import StripeCatalogAdapter
from qzpay.providers.stripe.catalog_mapping import (
    product_create_params,
    product_update_params,
    provider_plan,
)
from qzpay.providers.stripe.resource import StripeResource
from qzpay.providers.stripe.transport import StripeTransport


class StripePlans(StripeCatalogAdapter[ProviderPlan]):
    """``provider.plans`` of a StripeProvider."""

    _kind = "plan"
    _noun = "product"

    def __init__(self, transport: StripeTransport, *, page_size: int) -> None:
        products = transport.client.v1.products
        super().__init__(StripeResource(transport, products, provider_plan, page_size=page_size))

    def _live(self, found: ProviderPlan) -> bool:
        return not found.deleted

    async def create(self, plan: Plan, /, *, idempotency_key: str) -> ProviderPlan:
        return await self._create(product_create_params(plan), idempotency_key)

    async def update(
        self, provider_plan_id: str, before: Plan, after: Plan, /, *, idempotency_key: str
    ) -> ProviderPlan:
        """Send only what changed, so edits made in the dashboard to other fields survive."""
        params = product_update_params(before, after)
        return await self._update(provider_plan_id, params, idempotency_key)

    async def delete(self, provider_plan_id: str, /, *, idempotency_key: str) -> None:
        """Delete the product; Stripe refuses (400) one that has prices, which is archived
        instead (with a key derived from the caller's, as it is another request)."""
        try:
            await self._api.delete("delete_plan", provider_plan_id, idempotency_key)
        except ProviderSyncError as failure:
            cause = failure.cause
            if failure.ambiguous or not (
                isinstance(cause, stripe.StripeError) and cause.http_status == 400
            ):
                raise
            await self.archive(provider_plan_id, idempotency_key=f"{idempotency_key}-archive")

    async def find(self, plan: Plan, /) -> ProviderPlan | None:
        """The product whose ``metadata.qzpay_plan_id`` is ``plan.id`` (the oldest if several;
        see the module docstring for why this lists instead of searching)."""
        return await self._api.find(
            "find_plan", {}, lambda found: found.qzpay_plan_id == plan.id and not found.deleted
        )

    def merge_remote(self, local: Plan, remote: ProviderPlan, /) -> Plan:
        """Stripe holds a plan's name, description, active flag and metadata."""
        return merge_plan_remote(local, remote)
