"""What Stripe's catalog adapters (products as plans, prices) do alike: create, update only
what changed, archive (``active: false``), retrieve and list one SDK resource.

A subclass names its resource (``_kind`` for the operation names, ``_noun`` for messages),
says how an SDK object reads (``_parse``) and may hide objects Stripe reports as deleted
(``_live``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

from qzpay.errors import ProviderSyncError
from qzpay.providers.stripe.paging import listed
from qzpay.providers.stripe.transport import PROVIDER, StripeTransport

R = TypeVar("R")
"""The provider-neutral view the adapter returns (``ProviderPlan``, ``ProviderPrice``)."""


class StripeCatalogAdapter(Generic[R]):
    """The shared flow of ``provider.plans`` and ``provider.prices`` of a StripeProvider."""

    _kind: str
    """``plan`` or ``price``: operations are ``create_plan``, ``update_price`` and so on."""
    _noun: str
    """What Stripe calls the object, for messages (``product``, ``price``)."""

    def __init__(self, transport: StripeTransport, resource: Any, *, page_size: int) -> None:
        self._transport = transport
        self._resource = resource
        self._page_size = page_size

    def _parse(self, data: dict[str, Any]) -> R:
        raise NotImplementedError

    def _live(self, found: R) -> bool:
        """Whether a retrieved object counts as existing (all do unless overridden)."""
        return True

    async def _create(self, params: Any, idempotency_key: str) -> R:
        created = await self._transport.call(
            f"create_{self._kind}",
            self._resource.create_async(params, {"idempotency_key": idempotency_key}),
        )
        return self._parse(created.to_dict())

    async def _update(self, provider_id: str, params: Any, idempotency_key: str) -> R:
        """Send ``params``; with nothing to send only read (a missing object is an error)."""
        operation = f"update_{self._kind}"
        if not params:
            current = await self.retrieve(provider_id)
            if current is None:
                raise ProviderSyncError(
                    f"{PROVIDER} {self._noun} {provider_id} does not exist",
                    provider=PROVIDER,
                    operation=operation,
                )
            return current
        updated = await self._transport.call(
            operation,
            self._resource.update_async(provider_id, params, {"idempotency_key": idempotency_key}),
        )
        return self._parse(updated.to_dict())

    async def archive(self, provider_id: str, /, *, idempotency_key: str) -> None:
        # A 404 means the object is gone: nothing is left to sell, the goal is met.
        await self._transport.call_or_none(
            f"archive_{self._kind}",
            self._resource.update_async(
                provider_id, {"active": False}, {"idempotency_key": idempotency_key}
            ),
        )

    async def retrieve(self, provider_id: str, /) -> R | None:
        found = await self._transport.call_or_none(
            f"retrieve_{self._kind}", self._resource.retrieve_async(provider_id)
        )
        if found is None:
            return None
        parsed = self._parse(found.to_dict())
        return parsed if self._live(parsed) else None

    async def list(self) -> AsyncIterator[R]:
        async for data in self._list(f"list_{self._kind}s"):
            yield self._parse(data)

    def _list(self, operation: str, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Objects matching ``filters``, active or not (no ``active`` filter lists both)."""
        return listed(
            self._transport,
            operation,
            lambda params: self._resource.list_async(params),
            filters,
            page_size=self._page_size,
        )
