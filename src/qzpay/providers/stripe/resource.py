"""One Stripe SDK resource (customers, products, prices, subscriptions) as every adapter uses
it: each write sends the caller's ``Idempotency-Key``, each answer is read into the adapter's
provider-neutral view, and a 404 on a read is None. The adapters keep only their own rules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from qzpay.providers.stripe.paging import listed, oldest
from qzpay.providers.stripe.transport import StripeTransport

R = TypeVar("R")
"""The provider-neutral view the adapter returns (``ProviderCustomer``, ``ProviderPlan``...)."""


@dataclass(frozen=True, slots=True)
class StripeResource(Generic[R]):
    """``sdk`` is the SDK's service (``client.v1.customers``); ``parse`` reads one object."""

    transport: StripeTransport
    sdk: Any
    parse: Callable[[Mapping[str, Any]], R]
    page_size: int

    async def create(self, operation: str, params: Any, idempotency_key: str) -> R:
        created = await self.transport.call(
            operation, self.sdk.create_async(params, {"idempotency_key": idempotency_key})
        )
        return self.parse(created.to_dict())

    async def update(self, operation: str, object_id: str, params: Any, idempotency_key: str) -> R:
        updated = await self.transport.call(
            operation,
            self.sdk.update_async(object_id, params, {"idempotency_key": idempotency_key}),
        )
        return self.parse(updated.to_dict())

    async def delete(self, operation: str, object_id: str, idempotency_key: str) -> None:
        """Delete; a 404 means already gone, which meets the goal of the call."""
        await self.transport.call_or_none(
            operation,
            self.sdk.delete_async(object_id, options={"idempotency_key": idempotency_key}),
        )

    async def fetch(
        self, operation: str, object_id: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The object as a dict (``params``: expansions), or None on a 404."""
        found = await self.transport.call_or_none(
            operation, self.sdk.retrieve_async(object_id, params)
        )
        if found is None:
            return None
        data: dict[str, Any] = found.to_dict()
        return data

    async def retrieve(
        self, operation: str, object_id: str, params: Mapping[str, Any] | None = None
    ) -> R | None:
        """The object read into the view, or None on a 404."""
        data = await self.fetch(operation, object_id, params)
        return None if data is None else self.parse(data)

    def listed(self, operation: str, filters: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Every object matching ``filters``, one page request at a time."""
        return listed(
            self.transport,
            operation,
            lambda params: self.sdk.list_async(params),
            filters,
            page_size=self.page_size,
        )

    async def find(
        self, operation: str, filters: Mapping[str, Any], wanted: Callable[[R], bool]
    ) -> R | None:
        """The oldest object listed for ``filters`` that is ``wanted`` (the one every caller
        settles on): how an adapter finds its object by qzpay id, as lists are strongly
        consistent and the Search API is not."""
        matches: list[tuple[Mapping[str, Any], R]] = []
        async for data in self.listed(operation, filters):
            found = self.parse(data)
            if wanted(found):
                matches.append((data, found))
        return oldest(matches)
