"""Walking a Stripe list endpoint page by page (``starting_after``), for the catalog adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from qzpay.providers.stripe.transport import StripeTransport

ListCall = Callable[[dict[str, Any]], Awaitable[Any]]
"""``call(params)``: one SDK list request, such as ``client.v1.prices.list_async``."""

T = TypeVar("T")


async def listed(
    transport: StripeTransport,
    operation: str,
    call: ListCall,
    filters: Mapping[str, Any],
    *,
    page_size: int,
) -> AsyncIterator[dict[str, Any]]:
    """Every object the list endpoint returns for ``filters``, one page request at a time.

    Stripe's list endpoints are strongly consistent (unlike its Search API, which lags), so an
    object created a moment ago is listed.
    """
    starting_after: str | None = None
    while True:
        params: dict[str, Any] = {**filters, "limit": page_size}
        if starting_after is not None:
            params["starting_after"] = starting_after
        page = await transport.call(operation, call(params))
        items = [item.to_dict() for item in page.data]
        for item in items:
            yield item
        if not page.has_more or not items:
            return
        starting_after = str(items[-1]["id"])


def oldest(matches: Sequence[tuple[Mapping[str, Any], T]]) -> T | None:
    """The match created first (ties by id), so every caller settles on the same one."""
    if not matches:
        return None

    def order(match: tuple[Mapping[str, Any], T]) -> tuple[int, str]:
        created = match[0].get("created")
        return (created if isinstance(created, int) else 0, str(match[0].get("id")))

    return min(matches, key=order)[1]
