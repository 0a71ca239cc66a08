"""One MercadoPago SDK resource (``sdk.customer()``, ``sdk.plan()``, ``sdk.preapproval()``) as
every adapter uses it: requests on the shared client, answers read into the adapter's
provider-neutral view, searches walked page by page, and the failures that mean "no such
object" or "no readable object" worded alike. The adapters keep only their own rules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any, Generic, TypeVar

from qzpay.errors import ProviderSyncError
from qzpay.providers.common import missing
from qzpay.providers.mercadopago.paging import Found, Resource, each_once, fetched, searched
from qzpay.providers.mercadopago.transport import PROVIDER, Answer, MercadoPagoClient, answered

T = TypeVar("T")
SortKey = tuple[str, str]
"""``(date_created, id)``: the order a search walk reports objects in."""


@dataclass(frozen=True, slots=True)
class MercadoPagoResource(Generic[Found]):
    """``select(sdk)`` is the SDK's resource; ``read(operation, data)`` reads one object.

    ``noun`` is what an answer lacks when it has no object ("without a plan"), ``label`` what
    a missing object is called ("subscription plan ... does not exist").
    """

    client: MercadoPagoClient
    select: Resource
    read: Callable[[str, Mapping[str, Any]], Found]
    _: KW_ONLY
    noun: str
    label: str
    page_size: int

    def parsed(self, operation: str, answer: Answer) -> Found:
        """The object a success answered (an ambiguous failure when it answered none)."""
        return self.read(operation, answered(operation, answer, self.noun))

    def missing(self, operation: str, object_id: str) -> ProviderSyncError:
        return missing(PROVIDER, operation, self.label, object_id)

    async def get(self, operation: str, object_id: str) -> Found | None:
        """The object, or None for a 404."""
        return await fetched(self.client, operation, self.select, object_id, self.parsed)

    async def create(self, operation: str, body: dict[str, Any], key: str) -> Answer:
        return await self.client.call(
            operation, lambda sdk, options: self.select(sdk).create(body, options), key=key
        )

    async def update(
        self, operation: str, object_id: str, body: dict[str, Any], key: str
    ) -> Answer:
        return await self.client.call(
            operation,
            lambda sdk, options: self.select(sdk).update(object_id, body, options),
            key=key,
        )

    async def delete(self, operation: str, object_id: str, key: str) -> Answer:
        return await self.client.call(
            operation, lambda sdk, options: self.select(sdk).delete(object_id, options), key=key
        )

    def items(
        self, operation: str, filters: Mapping[str, Any]
    ) -> AsyncIterator[tuple[SortKey, dict[str, Any]]]:
        """Every object the search returns for ``filters``, unread, with its sort key."""
        return searched(self.client, operation, self.select, filters, page_size=self.page_size)

    async def search(
        self, operation: str, filters: Mapping[str, Any]
    ) -> AsyncIterator[tuple[SortKey, Found]]:
        """As :meth:`items`, each object read."""
        async for sort_key, item in self.items(operation, filters):
            yield sort_key, self.read(operation, item)

    def listed(self, operation: str, filters: Mapping[str, Any]) -> AsyncIterator[Found]:
        """Every object of a search walk, each once (see :func:`each_once`)."""
        return each_once(self.search(operation, filters))


def oldest(matches: list[tuple[SortKey, T]]) -> T | None:
    """The match created first (ties by id), so every caller settles on the same one."""
    return min(matches, key=lambda match: match[0])[1] if matches else None
