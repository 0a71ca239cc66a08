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

from collections.abc import AsyncIterator
from typing import Any

import stripe

from qzpay.catalog.models import Plan
from qzpay.errors import ProviderSyncError
from qzpay.providers.base import ProviderPlan, merge_plan_remote
from qzpay.providers.stripe.catalog_mapping import (
    product_create_params,
    product_update_params,
    provider_plan,
)
from qzpay.providers.stripe.paging import listed, oldest
from qzpay.providers.stripe.transport import PROVIDER, StripeTransport


class StripePlans:
    """``provider.plans`` of a StripeProvider."""

    def __init__(self, transport: StripeTransport, *, page_size: int) -> None:
        self._transport = transport
        self._products = transport.client.v1.products
        self._page_size = page_size

    async def create(self, plan: Plan, /, *, idempotency_key: str) -> ProviderPlan:
        created = await self._transport.call(
            "create_plan",
            self._products.create_async(
                product_create_params(plan), {"idempotency_key": idempotency_key}
            ),
        )
        return provider_plan(created.to_dict())

    async def update(
        self, provider_plan_id: str, before: Plan, after: Plan, /, *, idempotency_key: str
    ) -> ProviderPlan:
        """Send only what changed, so edits made in the dashboard to other fields survive."""
        params = product_update_params(before, after)
        if not params:
            current = await self.retrieve(provider_plan_id)
            if current is None:
                raise _missing("update_plan", provider_plan_id)
            return current
        updated = await self._transport.call(
            "update_plan",
            self._products.update_async(
                provider_plan_id, params, {"idempotency_key": idempotency_key}
            ),
        )
        return provider_plan(updated.to_dict())

    async def archive(self, provider_plan_id: str, /, *, idempotency_key: str) -> None:
        # A 404 means the product is gone: nothing is left to sell, the goal is met.
        await self._transport.call_or_none(
            "archive_plan",
            self._products.update_async(
                provider_plan_id, {"active": False}, {"idempotency_key": idempotency_key}
            ),
        )

    async def delete(self, provider_plan_id: str, /, *, idempotency_key: str) -> None:
        """Delete the product; Stripe refuses (400) one that has prices, which is archived
        instead (with a key derived from the caller's, as it is another request)."""
        try:
            await self._transport.call_or_none(
                "delete_plan",
                self._products.delete_async(
                    provider_plan_id, options={"idempotency_key": idempotency_key}
                ),
            )
        except ProviderSyncError as failure:
            cause = failure.cause
            if failure.ambiguous or not (
                isinstance(cause, stripe.StripeError) and cause.http_status == 400
            ):
                raise
            await self.archive(provider_plan_id, idempotency_key=f"{idempotency_key}-archive")

    async def retrieve(self, provider_plan_id: str, /) -> ProviderPlan | None:
        found = await self._transport.call_or_none(
            "retrieve_plan", self._products.retrieve_async(provider_plan_id)
        )
        if found is None:
            return None
        plan = provider_plan(found.to_dict())
        return None if plan.deleted else plan

    async def find(self, plan: Plan, /) -> ProviderPlan | None:
        """The product whose ``metadata.qzpay_plan_id`` is ``plan.id`` (the oldest if several;
        see the module docstring for why this lists instead of searching)."""
        matches: list[tuple[dict[str, Any], ProviderPlan]] = []
        async for data in self._list("find_plan"):
            found = provider_plan(data)
            if found.qzpay_plan_id == plan.id and not found.deleted:
                matches.append((data, found))
        return oldest(matches)

    def merge_remote(self, local: Plan, remote: ProviderPlan, /) -> Plan:
        """Stripe holds a plan's name, description, active flag and metadata."""
        return merge_plan_remote(local, remote)

    async def list(self) -> AsyncIterator[ProviderPlan]:
        async for data in self._list("list_plans"):
            yield provider_plan(data)

    def _list(self, operation: str) -> AsyncIterator[dict[str, Any]]:
        """Every product, active or not (no ``active`` filter lists both)."""
        return listed(
            self._transport,
            operation,
            lambda params: self._products.list_async(params),  # type: ignore[arg-type]
            {},
            page_size=self._page_size,
        )


def _missing(operation: str, provider_plan_id: str) -> ProviderSyncError:
    return ProviderSyncError(
        f"{PROVIDER} product {provider_plan_id} does not exist",
        provider=PROVIDER,
        operation=operation,
    )
