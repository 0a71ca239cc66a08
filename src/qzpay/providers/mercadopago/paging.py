"""Reading MercadoPago's resources alike, for the customers and prices adapters: one object by
id (``/v1/customers/{id}``, ``/preapproval_plan/{id}``) and a search walked page by page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol, TypeVar

from qzpay.providers.mercadopago.transport import (
    Answer,
    MercadoPagoClient,
    SdkRequest,
    status_error,
)

T = TypeVar("T")


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


Found = TypeVar("Found", bound=_Identified)
"""A provider object (``ProviderCustomer``, ``ProviderPrice``)."""

Resource = Callable[[Any], Any]
"""``resource(sdk)``: the SDK's object for one resource, such as ``sdk.customer()``."""


async def fetched(
    client: MercadoPagoClient,
    operation: str,
    resource: Resource,
    object_id: str,
    parse: Callable[[str, Answer], T],
) -> T | None:
    """``GET`` of ``object_id``, read by ``parse(operation, answer)``: None for a 404, a
    ProviderSyncError for any other failure."""
    answer = await client.call(
        operation, lambda sdk, options: resource(sdk).get(object_id, options)
    )
    if answer.status == 404:
        return None
    if not answer.ok:
        raise status_error(operation, answer)
    return parse(operation, answer)


async def each_once(found: AsyncIterator[tuple[tuple[str, str], Found]]) -> AsyncIterator[Found]:
    """The objects of a :func:`searched` walk, each once: the search pages by offset, so an
    object deleted during the walk shifts the later pages, and one may come twice (and one be
    missed, which the next reconcile sees)."""
    seen: set[str] = set()
    async for _, item in found:
        if item.id not in seen:
            seen.add(item.id)
            yield item


async def searched(
    client: MercadoPagoClient,
    operation: str,
    resource: Resource,
    filters: Mapping[str, Any],
    *,
    page_size: int,
) -> AsyncIterator[tuple[tuple[str, str], dict[str, Any]]]:
    """Every object the search returns for ``filters``, with a sort key (date_created, id),
    one page request (``limit``/``offset``) at a time."""
    offset = 0
    while True:
        query: dict[str, Any] = {"limit": page_size, "offset": offset, **filters}
        answer = await client.call(operation, _search(resource, query))
        page = answer.object
        results = page.get("results") if page is not None else None
        if not answer.ok or not isinstance(results, list):
            raise status_error(operation, answer)
        for item in results:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                created = item.get("date_created")
                yield (created if isinstance(created, str) else "", item["id"]), item
        offset += len(results)
        paging = page.get("paging") if page is not None else None
        total = paging.get("total") if isinstance(paging, dict) else None
        if not results or (isinstance(total, int) and offset >= total):
            return


def _search(resource: Resource, query: dict[str, Any]) -> SdkRequest:
    return lambda sdk, options: resource(sdk).search(query, options)
