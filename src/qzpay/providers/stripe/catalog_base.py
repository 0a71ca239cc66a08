"""What Stripe's catalog adapters (products as plans, prices) do alike: create, update only
what changed, archive (``active: false``), retrieve and list one SDK resource.

A subclass names its resource (``_kind`` for the operation names, ``_noun`` for messages),
passes its :class:`~qzpay.providers.stripe.resource.StripeResource` and may hide objects Stripe
reports as deleted (``_live``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

from qzpay.providers.common import missing
from qzpay.providers.stripe.resource import StripeResource
from qzpay.providers.stripe.transport import PROVIDER

R = TypeVar("R")
"""The provider-neutral view the adapter returns (``ProviderPlan``, ``ProviderPrice``)."""


class StripeCatalogAdapter(Generic[R]):
    """The shared flow of ``provider.plans`` and ``provider.prices`` of a StripeProvider."""

    _kind: str
    """``plan`` or ``price``: operations are ``create_plan``, ``update_price`` and so on."""
    _noun: str
    """What Stripe calls the object, for messages (``product``, ``price``)."""

    def __init__(self, api: StripeResource[R]) -> None:
        self._api = api

    def _live(self, found: R) -> bool:
        """Whether a retrieved object counts as existing (all do unless overridden)."""
        return True

    async def _create(self, params: Any, idempotency_key: str) -> R:
        return await self._api.create(f"create_{self._kind}", params, idempotency_key)

    async def _update(self, provider_id: str, params: Any, idempotency_key: str) -> R:
        """Send ``params``; with nothing to send only read (a missing object is an error)."""
        operation = f"update_{self._kind}"
        if not params:
            current = await self.retrieve(provider_id)
            if current is None:
                raise missing(PROVIDER, operation, self._noun, provider_id)
            return current
        return await self._api.update(operation, provider_id, params, idempotency_key)

    async def archive(self, provider_id: str, /, *, idempotency_key: str) -> None:
        # A 404 means the object is gone: nothing is left to sell, the goal is met.
        await self._api.transport.call_or_none(
            f"archive_{self._kind}",
            self._api.sdk.update_async(
                provider_id, {"active": False}, {"idempotency_key": idempotency_key}
            ),
        )

    async def retrieve(self, provider_id: str, /) -> R | None:
        found = await self._api.retrieve(f"retrieve_{self._kind}", provider_id)
        return found if found is not None and self._live(found) else None

    async def list(self) -> AsyncIterator[R]:
        async for data in self._list(f"list_{self._kind}s"):
            yield self._api.parse(data)

    def _list(self, operation: str, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Objects matching ``filters``, active or not (no ``active`` filter lists both)."""
        return self._api.listed(operation, filters)
